"""Capacity of the SageMaker instance types an endpoint may use: what inference-component copies
reserve against. Figures are the published vCPU, GPU and memory sizes of each type."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InstanceCapacity:
    accelerators: int
    cpu_cores: int
    memory_mb: int


def _gib(n: int) -> int:
    return n * 1024


INSTANCE_TYPES: dict[str, InstanceCapacity] = {
    # G5: NVIDIA A10G, 24 GiB per GPU
    "ml.g5.xlarge": InstanceCapacity(1, 4, _gib(16)),
    "ml.g5.2xlarge": InstanceCapacity(1, 8, _gib(32)),
    "ml.g5.4xlarge": InstanceCapacity(1, 16, _gib(64)),
    "ml.g5.8xlarge": InstanceCapacity(1, 32, _gib(128)),
    "ml.g5.12xlarge": InstanceCapacity(4, 48, _gib(192)),
    "ml.g5.16xlarge": InstanceCapacity(1, 64, _gib(256)),
    "ml.g5.24xlarge": InstanceCapacity(4, 96, _gib(384)),
    "ml.g5.48xlarge": InstanceCapacity(8, 192, _gib(768)),
    # G6: NVIDIA L4, 24 GiB per GPU
    "ml.g6.xlarge": InstanceCapacity(1, 4, _gib(16)),
    "ml.g6.2xlarge": InstanceCapacity(1, 8, _gib(32)),
    "ml.g6.12xlarge": InstanceCapacity(4, 48, _gib(192)),
    "ml.g6.48xlarge": InstanceCapacity(8, 192, _gib(768)),
    # P4d: NVIDIA A100 40 GiB
    "ml.p4d.24xlarge": InstanceCapacity(8, 96, _gib(1152)),
    # CPU only, for small summarizers
    "ml.m5.xlarge": InstanceCapacity(0, 4, _gib(16)),
    "ml.m5.2xlarge": InstanceCapacity(0, 8, _gib(32)),
    "ml.c5.2xlarge": InstanceCapacity(0, 8, _gib(16)),
}
