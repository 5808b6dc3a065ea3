"""Configs for the provisioning tests: the shipped endpoint.yaml and variants of it, as raw dicts to edit."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from provisioning.config import DEFAULT_CONFIG_PATH, parse_config
from provisioning.deployment import Deployment, resolve_deployment

RawConfig = dict[str, Any]


@pytest.fixture(scope="session")
def shipped_config() -> RawConfig:
    return yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))


@pytest.fixture
def raw_config(shipped_config: RawConfig) -> RawConfig:
    """A fresh copy of endpoint.yaml that a test may change."""
    return copy.deepcopy(shipped_config)


@pytest.fixture
def deploy_config() -> Callable[..., Deployment]:
    def build(raw: RawConfig, stage: str = "dev", region: str = "us-east-1") -> Deployment:
        return resolve_deployment(
            parse_config(raw, "test-endpoint.yaml", environ={}), "test-endpoint.yaml", stage, region
        )

    return build


def scale_to_zero(raw: RawConfig) -> RawConfig:
    raw["endpoint"]["scaling"]["min_instances"] = 0
    for component in raw["components"].values():
        component["autoscaling"]["min_copies"] = 0
    return raw


def one_component(raw: RawConfig) -> RawConfig:
    del raw["components"]["summarizer"]
    return raw


def two_instances(raw: RawConfig) -> RawConfig:
    """Two smaller instances that must both run: four GPUs of copies on 1-GPU instances would not fit on one."""
    raw["endpoint"]["instance_type"] = "ml.g5.2xlarge"
    raw["endpoint"]["scaling"] = {"min_instances": 2, "max_instances": 2}
    raw["components"]["summarizer"]["compute"]["cpu_cores"] = 2
    raw["components"]["chat"]["compute"]["min_memory_mb"] = 16384
    return raw


CONFIG_VARIANTS: dict[str, Callable[[RawConfig], RawConfig]] = {
    "default": lambda raw: raw,
    "scale-to-zero": scale_to_zero,
    "one-component": one_component,
    "two-instances": two_instances,
}


@pytest.fixture
def variants() -> dict[str, Callable[[RawConfig], RawConfig]]:
    return CONFIG_VARIANTS
