"""The rendered endpoint stack: valid for cfn-lint, and wired the way SageMaker, autoscaling and the app need."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from provisioning.deployment import SCALABLE_DIMENSION
from provisioning.lint import lint_template
from provisioning.render import build_packages, render_template, to_yaml

VARIANT_NAMES = ["default", "scale-to-zero", "one-component", "two-instances"]
TEMPLATE_YAML = Path(__file__).resolve().parents[3] / "template.yaml"


def _render(deployment) -> dict[str, Any]:
    return render_template(deployment, build_packages(deployment))


def _of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template["Resources"].items() if res["Type"] == resource_type}


class _AnyTagLoader(yaml.SafeLoader):
    """Reads template.yaml's CloudFormation short tags (!Ref, !Sub ...) as plain values."""


_AnyTagLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_rendered_template_passes_cfn_lint(variant, raw_config, variants, deploy_config):
    # Given a configuration variant
    deployment = deploy_config(variants[variant](raw_config), stage="prod", region="eu-west-1")
    # When it is rendered and linted
    findings = lint_template(to_yaml(_render(deployment)), "eu-west-1")
    # Then cfn-lint reports nothing at all
    assert [str(finding) for finding in findings] == []


def test_lint_reports_a_broken_template(raw_config, deploy_config):
    # Given a rendered template with an unknown autoscaling metric
    template = _render(deploy_config(raw_config))
    policy = template["Resources"]["ChatTargetTracking"]["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    policy["PredefinedMetricSpecification"]["PredefinedMetricType"] = "Bogus"
    # When it is linted
    findings = lint_template(to_yaml(template), "us-east-1")
    # Then the error names the rule and where it is
    assert [finding.rule for finding in findings if finding.is_error] == ["E3030"]
    assert "ChatTargetTracking" in findings[0].location


def test_endpoint_config_hosts_components_not_models(raw_config, deploy_config):
    # Given the default configuration
    template = _render(deploy_config(raw_config))
    # When the endpoint config is read
    properties = template["Resources"]["EndpointConfig"]["Properties"]
    (variant,) = properties["ProductionVariants"]
    # Then the role is top-level and the variant has no model or weight but managed scaling and routing
    assert properties["ExecutionRoleArn"] == {"Fn::GetAtt": ["ExecutionRole", "Arn"]}
    assert "ModelName" not in variant and "InitialVariantWeight" not in variant
    assert variant["ManagedInstanceScaling"] == {"Status": "ENABLED", "MinInstanceCount": 1, "MaxInstanceCount": 2}
    assert variant["RoutingConfig"] == {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"}
    assert variant["InstanceType"] == raw_config["endpoint"]["instance_type"]


def test_each_component_gets_reservation_copies_and_autoscaling(raw_config, deploy_config):
    # Given the default configuration with two components
    template = _render(deploy_config(raw_config, stage="qa"))
    for key, settings in raw_config["components"].items():
        prefix = key.capitalize()
        name = f"genai-chatbot-qa-{key}"
        # When its inference component and scaling resources are read
        component = template["Resources"][f"{prefix}InferenceComponent"]["Properties"]
        target = template["Resources"][f"{prefix}ScalableTarget"]
        policy = template["Resources"][f"{prefix}TargetTracking"]["Properties"]
        # Then names carry the stage, the reservation and copies come from the config
        assert component["InferenceComponentName"] == name
        assert component["Specification"]["ModelName"] == {"Fn::GetAtt": [f"{prefix}Model", "ModelName"]}
        assert component["Specification"]["ComputeResourceRequirements"] == {
            "NumberOfCpuCoresRequired": settings["compute"]["cpu_cores"],
            "MinMemoryRequiredInMb": settings["compute"]["min_memory_mb"],
            "NumberOfAcceleratorDevicesRequired": settings["compute"]["accelerators"],
        }
        assert component["RuntimeConfig"] == {"CopyCount": settings["copies"]}
        # and the scalable target points at the literal name, after the component exists
        assert target["DependsOn"] == f"{prefix}InferenceComponent"
        assert target["Properties"]["ResourceId"] == f"inference-component/{name}"
        assert target["Properties"]["ScalableDimension"] == SCALABLE_DIMENSION
        assert (target["Properties"]["MinCapacity"], target["Properties"]["MaxCapacity"]) == (
            settings["autoscaling"]["min_copies"],
            settings["autoscaling"]["max_copies"],
        )
        tracking = policy["TargetTrackingScalingPolicyConfiguration"]
        assert tracking["TargetValue"] == settings["autoscaling"]["target_requests_per_copy"]
        assert (
            tracking["PredefinedMetricSpecification"]["PredefinedMetricType"]
            == "SageMakerInferenceComponentConcurrentRequestsPerCopyHighResolution"
        )


def test_invocations_metric_can_drive_autoscaling(raw_config, deploy_config):
    # Given a config that scales on invocations per copy
    raw_config["aws"]["scaling_metric"] = "invocations"
    # When rendered
    template = _render(deploy_config(raw_config))
    # Then every target-tracking policy uses that metric
    policies = _of_type(template, "AWS::ApplicationAutoScaling::ScalingPolicy").values()
    metrics = {
        p["Properties"]["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"][
            "PredefinedMetricType"
        ]
        for p in policies
    }
    assert metrics == {"SageMakerInferenceComponentInvocationsPerCopy"}


def test_models_use_pinned_images_and_their_environment(raw_config, deploy_config):
    # Given the default configuration
    template = _render(deploy_config(raw_config, region="eu-west-1"))
    chat = template["Resources"]["ChatModel"]["Properties"]["PrimaryContainer"]
    summarizer = template["Resources"]["SummarizerModel"]["Properties"]["PrimaryContainer"]
    # Then the chat model runs the pinned LMI image from its package, the summarizer the HF image by model id
    assert chat["Image"].startswith("763104351884.dkr.ecr.eu-west-1.amazonaws.com/djl-inference:")
    assert f":{raw_config['components']['chat']['container']['image_version']}-lmi" in chat["Image"]
    assert chat["ModelDataUrl"]["Fn::Sub"].endswith(".tar.gz")
    assert chat["Environment"]["SERVING_FAIL_FAST"] == "true"
    assert "huggingface-pytorch-inference:2.6.0-transformers4.51.3-gpu" in summarizer["Image"]
    assert summarizer["Environment"] == {"HF_MODEL_ID": "knkarthick/MEETING_SUMMARY", "HF_TASK": "summarization"}
    assert "ModelDataUrl" not in summarizer


def test_ssm_parameters_are_the_ones_the_app_template_reads(raw_config, deploy_config):
    # Given the app's template.yaml and the default endpoint config for the dev stage
    app_parameters = yaml.load(TEMPLATE_YAML.read_text(encoding="utf-8"), Loader=_AnyTagLoader)["Parameters"]
    template = _render(deploy_config(raw_config, stage="dev"))
    # When the SSM parameters of the endpoint stack are collected
    written = {
        res["Properties"]["Name"]: res["Properties"]["Value"]
        for res in _of_type(template, "AWS::SSM::Parameter").values()
    }
    # Then each name the app reads by default is written, with the endpoint and component names
    for parameter in ("EndpointName", "ChatComponentName", "SummarizerComponentName"):
        assert app_parameters[parameter]["Default"] in written
    assert written["/genai-chatbot/dev/endpoint-name"] == {"Fn::GetAtt": ["Endpoint", "EndpointName"]}
    assert written["/genai-chatbot/dev/components/chat"] == "genai-chatbot-dev-chat"
    assert written["/genai-chatbot/dev/components/summarizer"] == "genai-chatbot-dev-summarizer"


def test_scale_to_zero_adds_the_way_back_from_zero(raw_config, variants, deploy_config):
    # Given a scale-to-zero configuration
    template = _render(deploy_config(variants["scale-to-zero"](raw_config)))
    (variant,) = template["Resources"]["EndpointConfig"]["Properties"]["ProductionVariants"]
    # Then instances may reach 0 but start at 1, copies may reach 0
    assert variant["ManagedInstanceScaling"]["MinInstanceCount"] == 0
    assert variant["InitialInstanceCount"] == 1
    assert template["Resources"]["ChatScalableTarget"]["Properties"]["MinCapacity"] == 0
    # and a NoCapacityInvocationFailures alarm on each component triggers a +1 step policy
    for prefix, name in (("Chat", "genai-chatbot-dev-chat"), ("Summarizer", "genai-chatbot-dev-summarizer")):
        alarm = template["Resources"][f"{prefix}NoCapacityAlarm"]["Properties"]
        step = template["Resources"][f"{prefix}ScaleFromZero"]["Properties"]
        assert alarm["MetricName"] == "NoCapacityInvocationFailures"
        assert alarm["Dimensions"] == [{"Name": "InferenceComponentName", "Value": name}]
        assert alarm["AlarmActions"] == [{"Ref": f"{prefix}ScaleFromZero"}]
        assert step["PolicyType"] == "StepScaling"
        assert step["StepScalingPolicyConfiguration"]["StepAdjustments"] == [
            {"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}
        ]


def test_default_config_has_no_scale_from_zero_resources(raw_config, deploy_config):
    # Given the default configuration (copies never below 1)
    template = _render(deploy_config(raw_config))
    # Then there is no alarm and no step policy
    assert _of_type(template, "AWS::CloudWatch::Alarm") == {}
    assert all(
        res["Properties"]["PolicyType"] == "TargetTrackingScaling"
        for res in _of_type(template, "AWS::ApplicationAutoScaling::ScalingPolicy").values()
    )


def test_an_existing_role_replaces_the_created_one(raw_config, deploy_config):
    # Given a config naming an existing execution role
    arn = "arn:aws:iam::123456789012:role/sagemaker-endpoint"
    raw_config["aws"] |= {"create_execution_role": False, "execution_role_arn": arn}
    # When rendered
    template = _render(deploy_config(raw_config))
    # Then no role is created and every model and the endpoint config use the ARN
    assert _of_type(template, "AWS::IAM::Role") == {}
    assert template["Resources"]["EndpointConfig"]["Properties"]["ExecutionRoleArn"] == arn
    assert {m["Properties"]["ExecutionRoleArn"] for m in _of_type(template, "AWS::SageMaker::Model").values()} == {arn}


def test_created_role_reads_only_this_stages_packages(raw_config, deploy_config):
    # Given the default config (the stack creates the role) and an explicit bucket
    raw_config["aws"]["package_bucket"] = "my-packages"
    template = _render(deploy_config(raw_config, stage="qa"))
    statements = template["Resources"]["ExecutionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    # Then S3 access is limited to the stage's prefix of that bucket, and the chat package lives there
    (s3,) = [s for s in statements if s["Action"] == ["s3:GetObject"]]
    assert s3["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:s3:::my-packages/endpoint-packages/qa/*"}
    url = template["Resources"]["ChatModel"]["Properties"]["PrimaryContainer"]["ModelDataUrl"]
    assert url.startswith("s3://my-packages/endpoint-packages/qa/chat-")


def test_rendering_is_deterministic_and_follows_the_config(raw_config, deploy_config):
    # Given the same config rendered twice, and once with another chat setting
    first = to_yaml(_render(deploy_config(raw_config)))
    second = to_yaml(_render(deploy_config(raw_config)))
    raw_config["components"]["chat"]["container"]["environment"]["OPTION_MAX_MODEL_LEN"] = "2048"
    changed = _render(deploy_config(raw_config))
    # Then the same config gives the same text (a re-deploy is a no-op), and a chat setting changes the package key
    assert first == second
    before = yaml.safe_load(first)["Resources"]["ChatModel"]["Properties"]["PrimaryContainer"]["ModelDataUrl"]
    after = changed["Resources"]["ChatModel"]["Properties"]["PrimaryContainer"]["ModelDataUrl"]
    assert before != after


def test_yaml_has_no_aliases(raw_config, deploy_config):
    # Given a template in which the role ARN is used several times
    text = to_yaml(_render(deploy_config(raw_config)))
    # Then the YAML repeats it instead of using anchors, which CloudFormation rejects
    assert "&id" not in text and "*id" not in text
