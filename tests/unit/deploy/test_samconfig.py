"""samconfig.toml stays deployable: every override names a template parameter with an allowed value, and the
SSM parameter names are the ones `python -m provisioning deploy` writes for that stage."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from local.template import DEFAULT_TEMPLATE_PATH, Template
from provisioning.config import DEFAULT_CONFIG_PATH, load_config
from provisioning.deployment import resolve_deployment

SAMCONFIG = Path(DEFAULT_TEMPLATE_PATH).with_name("samconfig.toml")
ENVIRONMENTS = ("dev", "prod")


def overrides(environment: str) -> dict[str, str]:
    parameters = tomllib.loads(SAMCONFIG.read_text(encoding="utf-8"))[environment]["deploy"]["parameters"]
    return dict(item.split("=", 1) for item in parameters["parameter_overrides"])


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_override_is_a_template_parameter_with_an_allowed_value(environment):
    # Given the template's parameters
    parameters = Template(DEFAULT_TEMPLATE_PATH).raw["Parameters"]

    # When the environment's overrides are read
    values = overrides(environment)

    # Then each names a parameter and respects its AllowedValues and numeric bounds
    assert set(values) <= set(parameters), set(values) - set(parameters)
    for name, value in values.items():
        spec = parameters[name]
        if "AllowedValues" in spec:
            assert value in {str(allowed) for allowed in spec["AllowedValues"]}, name
        if spec["Type"] == "Number":
            assert spec.get("MinValue", float("-inf")) <= float(value) <= spec.get("MaxValue", float("inf")), name


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_stage_and_ssm_names_match_what_provisioning_writes(environment):
    # Given what `python -m provisioning deploy --stage <environment>` writes to SSM
    deployment = resolve_deployment(load_config(), DEFAULT_CONFIG_PATH, environment, "us-east-1")

    # When the environment's overrides are read
    values = overrides(environment)

    # Then the app reads exactly those names, for the same stage
    assert values["Stage"] == environment
    assert values["EndpointName"] == deployment.endpoint_ssm_parameter
    assert values["ChatComponentName"] == deployment.components["chat"].ssm_parameter
    assert values["SummarizerComponentName"] == deployment.components["summarizer"].ssm_parameter


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_each_environment_has_its_own_stack(environment):
    deploy = tomllib.loads(SAMCONFIG.read_text(encoding="utf-8"))[environment]["deploy"]["parameters"]
    assert deploy["stack_name"] == f"genai-chatbot-{environment}"
    assert set(deploy["capabilities"].split()) == {"CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"}
