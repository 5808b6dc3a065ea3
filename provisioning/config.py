"""The endpoint configuration file, loaded into typed, validated objects.

One file (`provisioning/endpoint.yaml`) describes the endpoint and its inference components for both
the local endpoint and AWS provisioning. Every problem is reported as `file: field: what is wrong`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from provisioning.instances import INSTANCE_TYPES

DEFAULT_CONFIG_PATH = Path(__file__).with_name("endpoint.yaml")
ENV_PREFIX = "CHATBOT_LOCAL_"

# SageMaker's name patterns (CreateEndpoint / CreateInferenceComponent)
_ENDPOINT_NAME = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"
_COMPONENT_NAME = r"^[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?$"


class ConfigError(ValueError):
    """The configuration file is invalid; `problems` holds one `field: reason` line each."""

    def __init__(self, path: Path | str, problems: list[str]):
        self.path = str(path)
        self.problems = problems
        super().__init__("\n".join(f"{self.path}: {problem}" for problem in problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RoutingStrategy(StrEnum):
    LEAST_OUTSTANDING_REQUESTS = "LEAST_OUTSTANDING_REQUESTS"
    RANDOM = "RANDOM"


class Scaling(_Strict):
    min_instances: Annotated[int, Field(ge=0)] = 1
    max_instances: Annotated[int, Field(ge=1)] = 2

    @model_validator(mode="after")
    def _ordered(self) -> Scaling:
        if self.min_instances > self.max_instances:
            raise ValueError("min_instances must not exceed max_instances")
        return self


class EndpointSettings(_Strict):
    name: Annotated[str, Field(pattern=_ENDPOINT_NAME)] = "genai-chatbot"
    instance_type: str = "ml.g5.12xlarge"
    scaling: Scaling = Scaling()
    routing_strategy: RoutingStrategy = RoutingStrategy.LEAST_OUTSTANDING_REQUESTS

    @field_validator("instance_type")
    @classmethod
    def _known_instance(cls, value: str) -> str:
        if value not in INSTANCE_TYPES:
            raise ValueError(f"unknown instance type {value!r}; known: {', '.join(sorted(INSTANCE_TYPES))}")
        return value


class Container(_Strict):
    kind: Literal["lmi", "huggingface"]
    image_version: str
    pytorch_version: str | None = None
    model_id: str
    environment: dict[str, str] = {}

    @field_validator("environment")
    @classmethod
    def _env_limit(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > 16:  # CreateInferenceComponent allows at most 16 environment entries
            raise ValueError(f"at most 16 environment variables, got {len(value)}")
        return value


class Compute(_Strict):
    accelerators: Annotated[float, Field(ge=0)] = 0
    cpu_cores: Annotated[float, Field(ge=0.25)] = 1
    min_memory_mb: Annotated[int, Field(ge=128)] = 1024


class Autoscaling(_Strict):
    min_copies: Annotated[int, Field(ge=0)] = 1
    max_copies: Annotated[int, Field(ge=1)] = 1
    target_requests_per_copy: Annotated[float, Field(gt=0)] = 4

    @model_validator(mode="after")
    def _ordered(self) -> Autoscaling:
        if self.min_copies > self.max_copies:
            raise ValueError("min_copies must not exceed max_copies")
        return self


LocalBackendName = Literal[
    "standin", "vllm", "hf-causal", "smoke-llama", "extractive", "hf-toolkit", "hf-seq2seq", "smoke-bart"
]
_CHECKPOINT_BACKENDS = {"vllm", "hf-causal", "hf-toolkit", "hf-seq2seq"}
# Backends that run the serving code of one container kind, so they serve only components of that kind.
_CONTAINER_BACKENDS = {"vllm": "lmi", "hf-toolkit": "huggingface"}


class LocalSettings(_Strict):
    backend: LocalBackendName
    checkpoint: Path | None = None
    max_batch_size: Annotated[int, Field(ge=1, le=256)] = 8
    max_batch_wait_ms: Annotated[float, Field(ge=0, le=10_000)] = 10
    timeout_s: Annotated[float, Field(gt=0)] = 60
    context_tokens: Annotated[int, Field(ge=16)] = 1024

    @model_validator(mode="after")
    def _checkpoint_when_needed(self) -> LocalSettings:
        if self.backend in _CHECKPOINT_BACKENDS and self.checkpoint is None:
            raise ValueError(f"backend {self.backend!r} needs `checkpoint`: a local Hugging Face model directory")
        return self


class Component(_Strict):
    container: Container
    compute: Compute = Compute()
    copies: Annotated[int, Field(ge=0)] = 1
    autoscaling: Autoscaling = Autoscaling()
    local: LocalSettings

    @model_validator(mode="after")
    def _backend_runs_this_container(self) -> Component:
        kind = _CONTAINER_BACKENDS.get(self.local.backend)
        if kind is not None and kind != self.container.kind:
            raise ValueError(
                f"local.backend {self.local.backend!r} runs the {kind} container's serving code, "
                f"but this component's container is {self.container.kind!r}"
            )
        return self

    @model_validator(mode="after")
    def _copies_within_bounds(self) -> Component:
        low, high = self.autoscaling.min_copies, self.autoscaling.max_copies
        if not low <= self.copies <= high:
            raise ValueError(f"copies ({self.copies}) must be within autoscaling bounds {low}..{high}")
        return self


# IAM role ARN, S3 bucket and SSM path patterns (CreateEndpointConfig.ExecutionRoleArn, S3 naming rules, SSM names)
_ROLE_ARN = r"^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$"
_BUCKET_NAME = r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$"
_SSM_PREFIX = r"^(/[a-zA-Z0-9_.\-]+)+$"
_S3_PREFIX = r"^[a-zA-Z0-9_.\-]+(/[a-zA-Z0-9_.\-]+)*$"

InferenceAmiVersion = Literal[
    "al2-ami-sagemaker-inference-gpu-2",
    "al2-ami-sagemaker-inference-gpu-2-1",
    "al2-ami-sagemaker-inference-gpu-3-1",
    "al2-ami-sagemaker-inference-neuron-2",
    "al2023-ami-sagemaker-inference-gpu-4-1",
]


class ScalingMetric(StrEnum):
    """What `autoscaling.target_requests_per_copy` counts: in-flight requests, or invocations per minute."""

    CONCURRENT_REQUESTS = "concurrent-requests"
    INVOCATIONS = "invocations"


class AwsSettings(_Strict):
    """AWS-only settings, used by `python -m provisioning` and ignored by the local endpoint."""

    # The role SageMaker assumes to pull images and packages; with `create_execution_role` the stack makes one.
    execution_role_arn: Annotated[str | None, Field(pattern=_ROLE_ARN)] = None
    create_execution_role: bool = True
    # Where model packages go; default: <endpoint.name>-packages-<account>-<region>, created on first deploy.
    package_bucket: Annotated[str | None, Field(pattern=_BUCKET_NAME)] = None
    package_prefix: Annotated[str, Field(pattern=_S3_PREFIX)] = "endpoint-packages"
    # template.yaml reads <ssm_prefix>/<stage>/endpoint-name and <ssm_prefix>/<stage>/components/<name>.
    ssm_prefix: Annotated[str, Field(pattern=_SSM_PREFIX)] = "/genai-chatbot"
    inference_ami_version: InferenceAmiVersion | None = None
    scaling_metric: ScalingMetric = ScalingMetric.CONCURRENT_REQUESTS
    scale_in_cooldown_s: Annotated[int, Field(ge=0, le=3600)] = 300
    scale_out_cooldown_s: Annotated[int, Field(ge=0, le=3600)] = 60
    model_download_timeout_s: Annotated[int, Field(ge=60, le=3600)] = 1200
    container_startup_timeout_s: Annotated[int, Field(ge=60, le=3600)] = 1200
    # Regions this configuration may be deployed to; empty: any region the images exist in.
    regions: list[str] = []


class EndpointConfig(_Strict):
    endpoint: EndpointSettings = EndpointSettings()
    components: dict[str, Component]
    aws: AwsSettings = AwsSettings()

    @field_validator("components")
    @classmethod
    def _component_names(cls, value: dict[str, Component]) -> dict[str, Component]:
        if not value:
            raise ValueError("at least one component is required")
        for name in value:
            if not re.match(_COMPONENT_NAME, name) or len(name) > 63:
                raise ValueError(f"component name {name!r} is not a valid inference component name")
        return value

    @model_validator(mode="after")
    def _reservations_fit_instance(self) -> EndpointConfig:
        capacity = INSTANCE_TYPES[self.endpoint.instance_type]
        for name, component in self.components.items():
            for field, need, have in (
                ("accelerators", component.compute.accelerators, capacity.accelerators),
                ("cpu_cores", component.compute.cpu_cores, capacity.cpu_cores),
                ("min_memory_mb", component.compute.min_memory_mb, capacity.memory_mb),
            ):
                if need > have:
                    raise ValueError(
                        f"components.{name}.compute.{field}: one copy needs {need:g} but "
                        f"{self.endpoint.instance_type} has only {have:g}"
                    )
        return self

    def component(self, name: str) -> Component:
        return self.components[name]


def _format_problem(error: Mapping[str, Any]) -> str:
    field = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{field}: {message}" if field else message


def _apply_env_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """CHATBOT_LOCAL_<COMPONENT>_<SETTING> replaces components.<component>.local.<setting>."""
    components = raw.get("components")
    if not isinstance(components, dict):
        return raw
    for name, component in components.items():
        if not isinstance(component, dict):
            continue
        prefix = f"{ENV_PREFIX}{name.upper().replace('-', '_')}_"
        overrides = {key[len(prefix) :].lower(): value for key, value in environ.items() if key.startswith(prefix)}
        if overrides:
            component["local"] = {**(component.get("local") or {}), **overrides}
    return raw


def parse_config(raw: Any, source: Path | str = "<config>", environ: Mapping[str, str] | None = None) -> EndpointConfig:
    if not isinstance(raw, dict):
        raise ConfigError(source, ["the file must hold a mapping with `endpoint` and `components`"])
    raw = _apply_env_overrides(raw, os.environ if environ is None else environ)
    try:
        return EndpointConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(source, [_format_problem(error) for error in exc.errors()]) from None


def load_config(path: Path | str | None = None, environ: Mapping[str, str] | None = None) -> EndpointConfig:
    path = Path(path) if path is not None else Path(os.environ.get("CHATBOT_ENDPOINT_CONFIG", DEFAULT_CONFIG_PATH))
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(path, [f"cannot read the file: {exc.strerror}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(path, [f"not valid YAML: {exc}"]) from None
    return parse_config(raw, path, environ)
