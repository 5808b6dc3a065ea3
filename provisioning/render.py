"""Render the endpoint stack: models, endpoint config, endpoint, inference components, autoscaling, SSM names.

Pure functions of a validated `Deployment` (no AWS calls): the same config renders the same template, which is what
makes a second deploy a no-op. Models and the endpoint config get CloudFormation-generated names because every one
of their properties is create-only (a change replaces them); the endpoint and the components keep the literal names
that the app and Application Auto Scaling refer to.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import yaml

from provisioning.config import ScalingMetric
from provisioning.deployment import SCALABLE_DIMENSION, VARIANT_NAME, ComponentTarget, Deployment
from provisioning.packaging import ModelPackage, build_package, container_environment, huggingface_environment

_PREDEFINED_METRIC = {
    ScalingMetric.CONCURRENT_REQUESTS: "SageMakerInferenceComponentConcurrentRequestsPerCopyHighResolution",
    ScalingMetric.INVOCATIONS: "SageMakerInferenceComponentInvocationsPerCopy",
}
EXECUTION_ROLE = "ExecutionRole"


def build_packages(deployment: Deployment) -> dict[str, ModelPackage]:
    return {key: build_package(target) for key, target in deployment.components.items() if target.needs_package}


def render_template(deployment: Deployment, packages: Mapping[str, ModelPackage]) -> dict[str, Any]:
    config = deployment.config
    role_arn: Any = config.aws.execution_role_arn or {"Fn::GetAtt": [EXECUTION_ROLE, "Arn"]}
    resources: dict[str, Any] = {}
    if config.aws.create_execution_role:
        resources[EXECUTION_ROLE] = _execution_role(deployment)
    resources["EndpointConfig"] = _endpoint_config(deployment, role_arn)
    resources["Endpoint"] = {
        "Type": "AWS::SageMaker::Endpoint",
        "Properties": {
            "EndpointName": deployment.endpoint_name,
            "EndpointConfigName": {"Fn::GetAtt": ["EndpointConfig", "EndpointConfigName"]},
        },
    }
    resources["EndpointNameParameter"] = _ssm_parameter(
        deployment.endpoint_ssm_parameter, {"Fn::GetAtt": ["Endpoint", "EndpointName"]}, "The SageMaker endpoint name"
    )
    outputs: dict[str, Any] = {
        "EndpointName": {"Value": {"Fn::GetAtt": ["Endpoint", "EndpointName"]}},
        "EndpointNameParameter": {"Value": deployment.endpoint_ssm_parameter},
    }
    for target in deployment.components.values():
        model_data_url = _package_url(deployment, packages[target.key]) if target.needs_package else None
        resources |= _component_resources(deployment, target, role_arn, model_data_url)
        outputs[f"{target.logical_id}ComponentName"] = {"Value": target.component_name}
        outputs[f"{target.logical_id}ComponentArn"] = {"Value": {"Ref": f"{target.logical_id}InferenceComponent"}}
        outputs[f"{target.logical_id}ComponentParameter"] = {"Value": target.ssm_parameter}
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": (
            f"GenAI chatbot SageMaker endpoint, stage {deployment.stage}: one endpoint, "
            f"{len(deployment.components)} inference component(s). Rendered by `python -m provisioning` "
            "from the endpoint configuration; edit that file, not this template."
        ),
        "Metadata": {"ConfigSha256": config_sha256(deployment)},
        "Resources": resources,
        "Outputs": outputs,
    }


class _NoAliasDumper(yaml.SafeDumper):
    """CloudFormation rejects YAML anchors/aliases, which PyYAML writes for values used twice (the role ARN)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def to_yaml(template: Mapping[str, Any]) -> str:
    return yaml.dump(dict(template), Dumper=_NoAliasDumper, sort_keys=False, width=120)


def config_sha256(deployment: Deployment) -> str:
    return hashlib.sha256(json.dumps(deployment.config.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def package_bucket_reference(deployment: Deployment) -> Any:
    """The package bucket as the template names it: the account and region come from the stack itself."""
    return deployment.config.aws.package_bucket or {
        "Fn::Sub": f"{deployment.config.endpoint.name}-packages-${{AWS::AccountId}}-${{AWS::Region}}"
    }


def _package_url(deployment: Deployment, package: ModelPackage) -> Any:
    bucket = package_bucket_reference(deployment)
    key = package.key(deployment.package_prefix)
    if isinstance(bucket, str):
        return f"s3://{bucket}/{key}"
    return {"Fn::Sub": f"s3://{bucket['Fn::Sub']}/{key}"}


def _endpoint_config(deployment: Deployment, role_arn: Any) -> dict[str, Any]:
    endpoint = deployment.config.endpoint
    variant: dict[str, Any] = {
        # No ModelName and no weight: the models live in the inference components.
        "VariantName": VARIANT_NAME,
        "InstanceType": endpoint.instance_type,
        "InitialInstanceCount": max(1, endpoint.scaling.min_instances),
        "ManagedInstanceScaling": {
            "Status": "ENABLED",
            "MinInstanceCount": endpoint.scaling.min_instances,
            "MaxInstanceCount": endpoint.scaling.max_instances,
        },
        "RoutingConfig": {"RoutingStrategy": endpoint.routing_strategy.value},
    }
    if deployment.config.aws.inference_ami_version:
        variant["InferenceAmiVersion"] = deployment.config.aws.inference_ami_version
    return {
        "Type": "AWS::SageMaker::EndpointConfig",
        "Properties": {"ExecutionRoleArn": role_arn, "ProductionVariants": [variant]},
    }


def _component_resources(
    deployment: Deployment, target: ComponentTarget, role_arn: Any, model_data_url: Any
) -> dict[str, Any]:
    settings = target.settings
    aws = deployment.config.aws
    prefix = target.logical_id
    container: dict[str, Any] = {"Image": target.image_uri}
    if settings.container.kind == "lmi":
        container["ModelDataUrl"] = model_data_url
        container["Environment"] = container_environment(settings.container)
    else:
        container["Environment"] = huggingface_environment(settings.container)
    compute: dict[str, Any] = {
        "NumberOfCpuCoresRequired": settings.compute.cpu_cores,
        "MinMemoryRequiredInMb": settings.compute.min_memory_mb,
    }
    if settings.compute.accelerators:
        compute["NumberOfAcceleratorDevicesRequired"] = settings.compute.accelerators
    component_id = f"{prefix}InferenceComponent"
    target_id = f"{prefix}ScalableTarget"
    resources: dict[str, Any] = {
        f"{prefix}Model": {
            "Type": "AWS::SageMaker::Model",
            "Properties": {"ExecutionRoleArn": role_arn, "PrimaryContainer": container},
        },
        component_id: {
            "Type": "AWS::SageMaker::InferenceComponent",
            "Properties": {
                "InferenceComponentName": target.component_name,
                "EndpointName": {"Fn::GetAtt": ["Endpoint", "EndpointName"]},
                "VariantName": VARIANT_NAME,
                "Specification": {
                    "ModelName": {"Fn::GetAtt": [f"{prefix}Model", "ModelName"]},
                    "StartupParameters": {
                        "ModelDataDownloadTimeoutInSeconds": aws.model_download_timeout_s,
                        "ContainerStartupHealthCheckTimeoutInSeconds": aws.container_startup_timeout_s,
                    },
                    "ComputeResourceRequirements": compute,
                },
                "RuntimeConfig": {"CopyCount": settings.copies},
            },
        },
        # The component's name is not a GetAtt attribute: the literal name plus DependsOn orders the resources.
        target_id: {
            "Type": "AWS::ApplicationAutoScaling::ScalableTarget",
            "DependsOn": component_id,
            "Properties": {
                "ServiceNamespace": "sagemaker",
                "ResourceId": target.resource_id,
                "ScalableDimension": SCALABLE_DIMENSION,
                "MinCapacity": settings.autoscaling.min_copies,
                "MaxCapacity": settings.autoscaling.max_copies,
            },
        },
        f"{prefix}TargetTracking": {
            "Type": "AWS::ApplicationAutoScaling::ScalingPolicy",
            "Properties": {
                "PolicyName": f"{target.component_name}-target-tracking",
                "PolicyType": "TargetTrackingScaling",
                "ScalingTargetId": {"Ref": target_id},
                "TargetTrackingScalingPolicyConfiguration": {
                    "TargetValue": settings.autoscaling.target_requests_per_copy,
                    "PredefinedMetricSpecification": {"PredefinedMetricType": _PREDEFINED_METRIC[aws.scaling_metric]},
                    "ScaleInCooldown": aws.scale_in_cooldown_s,
                    "ScaleOutCooldown": aws.scale_out_cooldown_s,
                },
            },
        },
        f"{prefix}ComponentParameter": {
            **_ssm_parameter(target.ssm_parameter, target.component_name, f"The {target.key} inference component"),
            "DependsOn": component_id,
        },
    }
    if target.scales_to_zero:
        resources |= _scale_from_zero(target, target_id)
    return resources


def _scale_from_zero(target: ComponentTarget, target_id: str) -> dict[str, Any]:
    """Target tracking can scale in to zero copies but never out of it: a request that finds no copy raises the
    NoCapacityInvocationFailures alarm, whose step policy adds the first copy back."""
    prefix = target.logical_id
    return {
        f"{prefix}ScaleFromZero": {
            "Type": "AWS::ApplicationAutoScaling::ScalingPolicy",
            "Properties": {
                "PolicyName": f"{target.component_name}-scale-from-zero",
                "PolicyType": "StepScaling",
                "ScalingTargetId": {"Ref": target_id},
                "StepScalingPolicyConfiguration": {
                    "AdjustmentType": "ChangeInCapacity",
                    "MetricAggregationType": "Maximum",
                    "Cooldown": 60,
                    "StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}],
                },
            },
        },
        f"{prefix}NoCapacityAlarm": {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "AlarmDescription": f"Requests reached {target.component_name} while it had no copy: add one.",
                "Namespace": "AWS/SageMaker",
                "MetricName": "NoCapacityInvocationFailures",
                "Dimensions": [{"Name": "InferenceComponentName", "Value": target.component_name}],
                "Statistic": "Maximum",
                "Period": 60,
                "EvaluationPeriods": 1,
                "DatapointsToAlarm": 1,
                "Threshold": 1,
                "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                "TreatMissingData": "notBreaching",
                "AlarmActions": [{"Ref": f"{prefix}ScaleFromZero"}],
            },
        },
    }


def _ssm_parameter(name: str, value: Any, description: str) -> dict[str, Any]:
    return {
        "Type": "AWS::SSM::Parameter",
        "Properties": {
            "Name": name,
            "Type": "String",
            "Value": value,
            "Description": f"{description} (read by the app)",
        },
    }


def _execution_role(deployment: Deployment) -> dict[str, Any]:
    """What SageMaker needs to run the containers: pull their images, read our packages, write logs and metrics."""
    repositories = [
        {"Fn::Sub": arn} for arn in sorted({_ecr_repository_arn(t.image_uri) for t in deployment.components.values()})
    ]
    bucket = package_bucket_reference(deployment)
    bucket_sub = bucket if isinstance(bucket, str) else bucket["Fn::Sub"]
    statements = [
        {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        {
            "Effect": "Allow",
            "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
            "Resource": repositories,
        },
        {
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": {"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::{bucket_sub}/{deployment.package_prefix}*"},
        },
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            "Resource": {
                "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/sagemaker/*"
            },
        },
        {
            "Effect": "Allow",
            "Action": "cloudwatch:PutMetricData",
            "Resource": "*",
            "Condition": {"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*", "AWS/SageMaker"]}},
        },
    ]
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "Description": f"SageMaker execution role of the {deployment.endpoint_name} endpoint",
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "sagemaker.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            },
            "Policies": [
                {
                    "PolicyName": "serve-endpoint",
                    "PolicyDocument": {"Version": "2012-10-17", "Statement": statements},
                }
            ],
        },
    }


def _ecr_repository_arn(image_uri: str) -> str:
    """`<account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag>` -> that repository's ARN (a Fn::Sub string)."""
    registry, _, repository_and_tag = image_uri.partition("/")
    account = registry.split(".", 1)[0]
    repository = repository_and_tag.split(":", 1)[0]
    return f"arn:${{AWS::Partition}}:ecr:${{AWS::Region}}:{account}:repository/{repository}"
