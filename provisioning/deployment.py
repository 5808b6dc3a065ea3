"""One configuration deployed to one stage in one region: every AWS name, image and bound, validated up front.

`resolve_deployment` is the only way to get a `Deployment`, and it checks everything that AWS would otherwise reject
minutes into a deploy (unknown image version, names too long, GPU reservations that cannot fit, a missing role) so
that each problem comes back as `file: field: why` before any AWS call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sagemaker.core import image_uris

from provisioning.config import Component, ConfigError, EndpointConfig
from provisioning.instances import INSTANCE_TYPES

STAGE_PATTERN = r"^[a-z][a-z0-9-]{0,15}$"  # template.yaml's Stage parameter
VARIANT_NAME = "AllTraffic"
SCALABLE_DIMENSION = "sagemaker:inference-component:DesiredCopyCount"
# LMI async mode: the only mode current LMI containers keep, and the one that runs the chat package's formatters.
LMI_ASYNC_OPTIONS = {
    "option.async_mode": "true",
    "option.rolling_batch": "disable",
    "option.entryPoint": "djl_python.lmi_vllm.vllm_async_service",
}
_OPTIONS_SET_BY_PACKAGE = {"OPTION_ASYNC_MODE", "OPTION_ENTRYPOINT", "OPTION_MODEL_ID"}
_REMOVED_ROLLING_BATCH = {"lmi-dist", "scheduler"}  # removed in LMI v15 (0.33.0)
_CUDA_13_AMI = "al2023-ami-sagemaker-inference-gpu-4-1"  # the only inference AMI with a CUDA 13 driver
_MAX_NAME = 63


@dataclass(frozen=True)
class ComponentTarget:
    """One inference component as deployed: its AWS names and container image."""

    key: str  # the name in the config file
    logical_id: str  # CloudFormation logical id prefix
    component_name: str  # the inference component's AWS name
    image_uri: str
    ssm_parameter: str
    settings: Component

    @property
    def resource_id(self) -> str:
        """Application Auto Scaling's id for this component's copy count."""
        return f"inference-component/{self.component_name}"

    @property
    def scales_to_zero(self) -> bool:
        return self.settings.autoscaling.min_copies == 0

    @property
    def needs_package(self) -> bool:
        return self.settings.container.kind == "lmi"


@dataclass(frozen=True)
class Deployment:
    config: EndpointConfig
    source: str
    stage: str
    region: str
    stack_name: str
    endpoint_name: str
    endpoint_ssm_parameter: str
    components: dict[str, ComponentTarget]

    @property
    def package_prefix(self) -> str:
        """Key prefix of this stage's packages; `delete` removes everything under it."""
        return f"{self.config.aws.package_prefix}/{self.stage}/"

    def package_bucket(self, account_id: str) -> str:
        return self.config.aws.package_bucket or default_package_bucket(
            self.config.endpoint.name, account_id, self.region
        )

    def component(self, key: str) -> ComponentTarget:
        if key not in self.components:
            raise ConfigError(
                self.source, [f"components.{key}: no such component; known: {', '.join(self.components)}"]
            )
        return self.components[key]


def default_package_bucket(endpoint_name: str, account_id: str, region: str) -> str:
    return f"{endpoint_name}-packages-{account_id}-{region}"


def logical_id(name: str) -> str:
    """`summarizer` -> `Summarizer`, `chat-v2` -> `ChatV2` (logical ids are alphanumeric)."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("-"))


def resolve_deployment(config: EndpointConfig, source: Path | str, stage: str, region: str) -> Deployment:
    """Validate `config` for AWS and name everything; ConfigError lists every problem found."""
    problems: list[str] = []
    if not re.match(STAGE_PATTERN, stage):
        problems.append(f"--stage: {stage!r} must match {STAGE_PATTERN} (template.yaml's Stage parameter)")
    aws = config.aws
    if aws.regions and region not in aws.regions:
        problems.append(f"aws.regions: region {region!r} is not one of {', '.join(aws.regions)}")
    if aws.create_execution_role and aws.execution_role_arn:
        problems.append(
            "aws.execution_role_arn: set either execution_role_arn or create_execution_role: true, not both"
        )
    if not aws.create_execution_role and not aws.execution_role_arn:
        problems.append(
            "aws.execution_role_arn: missing: give the ARN of a role SageMaker can assume, "
            "or set create_execution_role: true to let the stack create one"
        )
    endpoint_name = f"{config.endpoint.name}-{stage}"
    if len(endpoint_name) > _MAX_NAME:
        problems.append(f"endpoint.name: {endpoint_name!r} (name-stage) is longer than {_MAX_NAME} characters")
    if not aws.package_bucket and len(default_package_bucket(config.endpoint.name, "0" * 12, region)) > _MAX_NAME:
        problems.append("aws.package_bucket: the default bucket name would exceed 63 characters; set package_bucket")
    problems += _instance_problems(config)

    components: dict[str, ComponentTarget] = {}
    seen_logical_ids: dict[str, str] = {}
    for key, component in config.components.items():
        field = f"components.{key}"
        component_name = f"{endpoint_name}-{key}"
        if len(component_name) > _MAX_NAME:
            problems.append(f"{field}: inference component name {component_name!r} is longer than {_MAX_NAME}")
        prefix = logical_id(key)
        if prefix in seen_logical_ids:
            problems.append(f"{field}: name collides with components.{seen_logical_ids[prefix]} in the template")
        seen_logical_ids[prefix] = key
        component_problems, image_uri = _component_problems(config, field, component, region)
        problems += component_problems
        components[key] = ComponentTarget(
            key=key,
            logical_id=prefix,
            component_name=component_name,
            image_uri=image_uri,
            ssm_parameter=f"{aws.ssm_prefix}/{stage}/components/{key}",
            settings=component,
        )
    if problems:
        raise ConfigError(source, list(dict.fromkeys(problems)))  # each problem once, in order
    return Deployment(
        config=config,
        source=str(source),
        stage=stage,
        region=region,
        stack_name=f"{config.endpoint.name}-endpoint-{stage}",
        endpoint_name=endpoint_name,
        endpoint_ssm_parameter=f"{aws.ssm_prefix}/{stage}/endpoint-name",
        components=components,
    )


def _instance_problems(config: EndpointConfig) -> list[str]:
    problems = []
    scaling = config.endpoint.scaling
    capacity = INSTANCE_TYPES[config.endpoint.instance_type]
    if scaling.min_instances == 0:
        pinned = [key for key, component in config.components.items() if component.autoscaling.min_copies > 0]
        if pinned:
            problems.append(
                "endpoint.scaling.min_instances: 0 (scale to zero) needs autoscaling.min_copies: 0 on every "
                f"component; not on: {', '.join(pinned)}"
            )
    # The initial copies must fit on the most instances managed scaling may start, or the deploy never settles.
    for field, available in (
        ("accelerators", capacity.accelerators),
        ("cpu_cores", capacity.cpu_cores),
        ("min_memory_mb", capacity.memory_mb),
    ):
        needed = sum(getattr(c.compute, field) * c.copies for c in config.components.values())
        if needed > available * scaling.max_instances:
            problems.append(
                f"components.*.compute.{field}: the configured copies need {needed:g} in total but "
                f"{scaling.max_instances} x {config.endpoint.instance_type} have {available * scaling.max_instances:g}"
            )
    return problems


def _component_problems(config: EndpointConfig, field: str, component: Component, region: str) -> tuple[list[str], str]:
    problems = []
    accelerators = component.compute.accelerators
    if accelerators and (accelerators != int(accelerators) or accelerators < 1):
        problems.append(f"{field}.compute.accelerators: {accelerators:g} must be 0 or a whole number of devices")
    container = component.container
    image_uri = ""
    try:
        image_uri = image_uri_for(component, config.endpoint.instance_type, region)
    except ValueError as exc:
        if str(exc).startswith("Unsupported region"):
            problems.append(f"--region: {region!r} has no {container.kind} image in the SageMaker SDK's tables")
        else:
            problems.append(f"{field}.container.image_version: {_without_sdk_advice(str(exc))}")
    if image_uri.endswith("-cu130") and config.aws.inference_ami_version != _CUDA_13_AMI:
        problems.append(
            f"{field}.container.image_version: {container.image_version} is a CUDA 13 image; it needs "
            f"aws.inference_ami_version: {_CUDA_13_AMI}, or pin a cu128 version (0.35.0 or older)"
        )
    if container.kind == "lmi":
        problems += _lmi_problems(field, component)
    elif "HF_MODEL_ID" in container.environment and container.environment["HF_MODEL_ID"] != container.model_id:
        problems.append(
            f"{field}.container.environment.HF_MODEL_ID: differs from container.model_id; keep only model_id"
        )
    return problems, image_uri


def _lmi_problems(field: str, component: Component) -> list[str]:
    problems = []
    environment = component.container.environment
    env_field = f"{field}.container.environment"
    rolling_batch = environment.get("OPTION_ROLLING_BATCH", "disable")
    if rolling_batch in _REMOVED_ROLLING_BATCH:
        problems.append(f"{env_field}.OPTION_ROLLING_BATCH: {rolling_batch!r} was removed in LMI v15; use 'disable'")
    elif rolling_batch != "disable":
        problems.append(
            f"{env_field}.OPTION_ROLLING_BATCH: {rolling_batch!r} conflicts with LMI async mode, which the chat "
            "package's formatters need (vLLM batches requests by itself); use 'disable'"
        )
    for name in sorted(_OPTIONS_SET_BY_PACKAGE & environment.keys()):
        problems.append(f"{env_field}.{name}: set by the chat package (serving.properties); remove it")
    degree = environment.get("OPTION_TENSOR_PARALLEL_DEGREE")
    if degree is not None and degree != "max":
        if not degree.isdigit() or int(degree) < 1:
            problems.append(f"{env_field}.OPTION_TENSOR_PARALLEL_DEGREE: {degree!r} must be a whole number or 'max'")
        elif int(degree) != component.compute.accelerators:
            problems.append(
                f"{env_field}.OPTION_TENSOR_PARALLEL_DEGREE: {degree} must equal compute.accelerators "
                f"({component.compute.accelerators:g}): each copy shards the model over the GPUs it reserves"
            )
    return problems


def image_uri_for(component: Component, instance_type: str, region: str) -> str:
    """The container image for `component`, from the SageMaker SDK's bundled tables (offline); ValueError if unknown."""
    container = component.container
    if container.image_version == "latest":
        raise ValueError("'latest' is not a pinned version; name an exact one")
    if container.kind == "lmi":
        return image_uris.retrieve(framework="djl-lmi", region=region, version=container.image_version)
    if not container.pytorch_version:
        raise ValueError("a huggingface container needs container.pytorch_version (e.g. 2.6.0)")
    return image_uris.retrieve(
        framework="huggingface",
        region=region,
        version=container.image_version,
        base_framework_version=f"pytorch{container.pytorch_version}",
        py_version="py312",
        instance_type=instance_type,
        image_scope="inference",
    )


def _without_sdk_advice(message: str) -> str:
    """Keep the SDK's reason and its list of supported values; drop its advice to upgrade the SDK."""
    return re.sub(r"\s*You may need to upgrade your SDK version .*? for newer [\w -]+\.", "", message).strip()
