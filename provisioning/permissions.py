"""The IAM actions whoever runs the CLI needs, derived from the rendered stack instead of kept by hand.

CloudFormation creates, updates, reads (drift, rollback) and deletes the stack's resources with the caller's
credentials, so the caller needs every action that the resource handlers of the template's types call. The
CloudFormation registry's resource-provider schemas list those per handler, and cfn-lint bundles them (the same
schemas it lints against). To those come the calls the CLI makes itself, and the checks Application Auto Scaling
makes on whoever registers a SageMaker scalable target.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import groupby
from typing import Any

from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

# CloudFormation runs create, update and delete, reads during drift detection and rollback, and lists on import.
_HANDLERS = ("create", "read", "update", "delete", "list")

# Registering a SageMaker scalable target (the stack's ScalableTarget, and `scale`) makes Application Auto Scaling
# check that the caller may itself describe and resize the endpoint and its components (Application Auto Scaling user
# guide, "Permissions required for API actions on target services and CloudWatch"; these are also the actions of its
# service-linked role's policy, AWSApplicationAutoscalingSageMakerEndpointPolicy). No resource schema lists them.
_SAGEMAKER_SCALING = (
    "sagemaker:DescribeEndpoint",
    "sagemaker:DescribeEndpointConfig",
    "sagemaker:DescribeInferenceComponent",
    "sagemaker:UpdateEndpointWeightsAndCapacities",
    "sagemaker:UpdateInferenceComponentRuntimeConfig",
)
_EXTRA_BY_RESOURCE_TYPE = {"AWS::ApplicationAutoScaling::ScalableTarget": _SAGEMAKER_SCALING}

# Every call the CLI makes itself, as (boto3 service name, operation) -> the IAM actions it needs. The operations
# tests record each call the CLI makes through the stubbed clients and fail on one missing here.
CLI_CALLS: dict[tuple[str, str], tuple[str, ...]] = {
    ("cloudformation", "CreateChangeSet"): ("cloudformation:CreateChangeSet",),
    ("cloudformation", "DescribeChangeSet"): ("cloudformation:DescribeChangeSet",),
    ("cloudformation", "ExecuteChangeSet"): ("cloudformation:ExecuteChangeSet",),
    ("cloudformation", "DeleteChangeSet"): ("cloudformation:DeleteChangeSet",),
    ("cloudformation", "DescribeStacks"): ("cloudformation:DescribeStacks",),
    ("cloudformation", "DescribeStackEvents"): ("cloudformation:DescribeStackEvents",),
    ("cloudformation", "DeleteStack"): ("cloudformation:DeleteStack",),
    ("sagemaker", "DescribeEndpoint"): ("sagemaker:DescribeEndpoint",),
    ("sagemaker", "DescribeInferenceComponent"): ("sagemaker:DescribeInferenceComponent",),
    ("application-autoscaling", "DescribeScalableTargets"): ("application-autoscaling:DescribeScalableTargets",),
    ("application-autoscaling", "RegisterScalableTarget"): (
        "application-autoscaling:RegisterScalableTarget",
        *_SAGEMAKER_SCALING,
    ),
    ("s3", "HeadBucket"): ("s3:ListBucket",),
    ("s3", "CreateBucket"): ("s3:CreateBucket",),
    ("s3", "PutPublicAccessBlock"): ("s3:PutBucketPublicAccessBlock",),
    ("s3", "HeadObject"): ("s3:GetObject",),
    ("s3", "PutObject"): ("s3:PutObject",),
    ("s3", "ListObjectsV2"): ("s3:ListBucket",),
    ("s3", "DeleteObjects"): ("s3:DeleteObject",),
    ("ssm", "GetParameters"): ("ssm:GetParameters",),
    ("sts", "GetCallerIdentity"): ("sts:GetCallerIdentity",),
}


def resource_type_actions(resource_type: str, region: str) -> set[str]:
    """What CloudFormation calls, with the caller's credentials, to manage one resource of `resource_type`."""
    handlers = PROVIDER_SCHEMA_MANAGER.get_resource_schema(region, resource_type).schema.get("handlers", {})
    actions = {action for name in _HANDLERS for action in handlers.get(name, {}).get("permissions", [])}
    return actions | set(_EXTRA_BY_RESOURCE_TYPE.get(resource_type, ()))


def template_actions(template: Mapping[str, Any], region: str) -> set[str]:
    resource_types = {resource["Type"] for resource in template["Resources"].values()}
    return {action for resource_type in resource_types for action in resource_type_actions(resource_type, region)}


def cli_actions() -> set[str]:
    return {action for actions in CLI_CALLS.values() for action in actions}


def deployer_actions(template: Mapping[str, Any], region: str) -> set[str]:
    """Everything `plan`, `deploy`, `status`, `scale` and `delete` need for this rendered template."""
    return template_actions(template, region) | cli_actions()


def by_service(actions: Iterable[str]) -> dict[str, list[str]]:
    """`{"iam": ["CreateRole", ...], ...}`, services and actions sorted."""
    ordered = sorted({tuple(action.split(":", 1)) for action in actions})
    return {service: [name for _, name in group] for service, group in groupby(ordered, key=lambda pair: pair[0])}


def policy_document(actions: Iterable[str]) -> dict[str, Any]:
    """An IAM policy allowing `actions`, one statement per service. Resource is `*`: narrow it to your names."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "".join(part.capitalize() for part in service.split("-")),
                "Effect": "Allow",
                "Action": [f"{service}:{name}" for name in names],
                "Resource": "*",
            }
            for service, names in by_service(actions).items()
        ],
    }


def summary(actions: Iterable[str]) -> str:
    """One Markdown bullet per service, as the README lists them."""
    return "\n".join(f"- `{service}`: {', '.join(names)}" for service, names in by_service(actions).items())
