"""template.yaml, read the way the local stack needs it: CloudFormation short tags, parameters and the
intrinsic functions resolved far enough to give every resource its local name.

Not a CloudFormation engine: it resolves what names and environment variables are built from
(!Ref, !Sub, !GetAtt, !Join, !Select, !Split, !If with conditions, !FindInMap) with the pseudo
parameters of a fixed local account and region.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE_PATH = PROJECT_ROOT / "template.yaml"
LOCAL_ACCOUNT_ID = "123456789012"
LOCAL_REGION = "us-east-1"
LOCAL_STACK_NAME = "genai-chatbot-local"

_SHORT_TAGS = {
    "Ref": "Ref",
    "Condition": "Condition",
    **{
        name: f"Fn::{name}"
        for name in (
            *("Sub", "GetAtt", "Join", "Select", "Split", "If", "Equals", "Not", "And", "Or"),
            *("FindInMap", "ImportValue", "Base64", "Cidr", "GetAZs", "Length"),
        )
    },
}
# Properties that hold a resource's physical name, by resource type.
_NAME_PROPERTIES = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::Serverless::Function": "FunctionName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Serverless::LayerVersion": "LayerName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::Cognito::UserPool": "UserPoolName",
    "AWS::Serverless::Api": "Name",
}
_SUB_VARIABLE = re.compile(r"\$\{([^}!]+)\}")


class TemplateError(ValueError):
    """The template uses something this local reader cannot resolve."""


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns CloudFormation short tags (!Ref, !Sub, ...) into their long JSON forms."""


def _construct_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    long_name = _SHORT_TAGS.get(tag_suffix)
    if long_name is None:
        raise TemplateError(f"unknown CloudFormation tag !{tag_suffix}")
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if long_name == "Fn::GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {long_name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path | str = DEFAULT_TEMPLATE_PATH) -> Template:
    return Template(path)


class Template:
    """A parsed template plus the local values of its parameters and pseudo parameters."""

    def __init__(self, path: Path | str = DEFAULT_TEMPLATE_PATH, parameters: Mapping[str, str] | None = None):
        self.path = Path(path).resolve()
        self.root = self.path.parent
        self.raw: dict[str, Any] = yaml.load(self.path.read_text(encoding="utf-8"), Loader=_CfnLoader)
        self.parameters = self._parameter_values(parameters or {})

    @property
    def resources(self) -> dict[str, Any]:
        return self.raw.get("Resources", {})

    @property
    def globals(self) -> dict[str, Any]:
        return self.raw.get("Globals", {})

    def resources_of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {name: res for name, res in self.resources.items() if res.get("Type") == resource_type}

    def physical_name(self, logical_id: str) -> str:
        """The name the resource gets locally (its name property resolved, else its logical id)."""
        resource = self.resources.get(logical_id)
        if resource is None:
            raise TemplateError(f"no resource {logical_id!r} in {self.path.name}")
        name_property = _NAME_PROPERTIES.get(resource.get("Type", ""))
        properties = resource.get("Properties") or {}
        if name_property and name_property in properties:
            return str(self.resolve(properties[name_property]))
        return logical_id

    def resolve(self, value: Any) -> Any:
        """`value` with every intrinsic function replaced by its local value."""
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self._ref(argument)
            if key.startswith("Fn::"):
                return self._function(key[4:], argument)
        return {key: self.resolve(item) for key, item in value.items()}

    def condition(self, name: str) -> bool:
        conditions = self.raw.get("Conditions", {})
        if name not in conditions:
            raise TemplateError(f"unknown condition {name!r}")
        return bool(self._evaluate_condition(conditions[name]))

    def _parameter_values(self, overrides: Mapping[str, str]) -> dict[str, Any]:
        declared = self.raw.get("Parameters", {})
        unknown = set(overrides) - set(declared)
        if unknown:
            raise TemplateError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
        values = {name: spec.get("Default") for name, spec in declared.items()}
        values.update(overrides)
        return values

    def _ref(self, name: str) -> Any:
        pseudo = {
            "AWS::AccountId": LOCAL_ACCOUNT_ID,
            "AWS::Region": LOCAL_REGION,
            "AWS::StackName": LOCAL_STACK_NAME,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.resources:
            return self.physical_name(name)
        raise TemplateError(f"!Ref {name}: neither a parameter nor a resource")

    def _get_att(self, logical_id: str, attribute: str) -> str:
        resource = self.resources.get(logical_id)
        if resource is None:
            raise TemplateError(f"!GetAtt {logical_id}.{attribute}: no such resource")
        name = self.physical_name(logical_id)
        if attribute != "Arn":
            return name if attribute.endswith("Name") else f"{name}.{attribute}"
        service_arns = {
            "AWS::DynamoDB::Table": f"dynamodb:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:table/{name}",
            "AWS::S3::Bucket": f"s3:::{name}",
            "AWS::SQS::Queue": f"sqs:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:{name}",
            "AWS::Logs::LogGroup": f"logs:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:log-group:{name}",
        }
        suffix = service_arns.get(resource.get("Type", ""), f"local:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:{name}")
        return f"arn:aws:{suffix}"

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])
        variables = {name: self.resolve(value) for name, value in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name:
                return self._get_att(*name.split(".", 1))
            return str(self._ref(name))

        return _SUB_VARIABLE.sub(replace, text)

    def _function(self, name: str, argument: Any) -> Any:
        if name == "Sub":
            return self._sub(argument)
        if name == "GetAtt":
            logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            return self._get_att(logical_id, self.resolve(attribute))
        if name == "Join":
            separator, items = argument
            return str(separator).join(str(item) for item in self.resolve(items))
        if name == "Select":
            index, items = self.resolve(argument)
            return items[int(index)]
        if name == "Split":
            separator, text = self.resolve(argument)
            return str(text).split(separator)
        if name == "If":
            condition, when_true, when_false = argument
            return self.resolve(when_true if self.condition(condition) else when_false)
        if name == "FindInMap":
            map_name, first, second = self.resolve(argument)
            return self.raw["Mappings"][map_name][first][second]
        raise TemplateError(f"Fn::{name} is not resolved locally")

    def _evaluate_condition(self, expression: Any) -> Any:
        if not isinstance(expression, dict) or len(expression) != 1:
            return self.resolve(expression)
        ((key, argument),) = expression.items()
        if key == "Condition":
            return self.condition(argument)
        if key == "Fn::Equals":
            left, right = (self._evaluate_condition(item) for item in argument)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not self._evaluate_condition(argument[0])
        if key == "Fn::And":
            return all(self._evaluate_condition(item) for item in argument)
        if key == "Fn::Or":
            return any(self._evaluate_condition(item) for item in argument)
        return self.resolve(expression)

    def function_environment(self, logical_id: str) -> dict[str, str]:
        """A function's environment variables (Globals merged with its own), resolved for local use."""
        global_env = ((self.globals.get("Function") or {}).get("Environment") or {}).get("Variables") or {}
        properties = self.resources[logical_id].get("Properties") or {}
        own_env = (properties.get("Environment") or {}).get("Variables") or {}
        resolved = self.resolve({**global_env, **own_env})
        return {name: "" if value is None else str(value) for name, value in resolved.items()}

    def function_property(self, logical_id: str, name: str) -> Any:
        """A function property, falling back to Globals.Function like SAM does."""
        properties = self.resources[logical_id].get("Properties") or {}
        if name in properties:
            return self.resolve(properties[name])
        return self.resolve((self.globals.get("Function") or {}).get(name))
