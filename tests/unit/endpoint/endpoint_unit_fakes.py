"""A fake backend and a config builder for the endpoint's unit tests."""

from __future__ import annotations

import json
import threading
from typing import Any

from local.backends.base import Backend, Invocation, PayloadError, TokenSink
from provisioning.config import EndpointConfig, parse_config


def json_invocation(payload: Any) -> Invocation:
    """A request as boto3 sends it: a JSON body described as JSON."""
    return Invocation(json.dumps(payload).encode("utf-8"), "application/json")


class RecordingBackend(Backend):
    """Answers each request with its own value; records batch sizes; can hold a batch until released."""

    label = "recording fake"

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []
        self.closed = False
        self.hold = threading.Event()
        self.hold.set()
        self.started = threading.Event()

    def prepare(self, payload: Any) -> Any:
        if not isinstance(payload, dict) or "value" not in payload:
            raise PayloadError("payload needs a `value`")
        return payload

    def run_batch(self, prepared: list[Any], sinks: list[TokenSink | None]) -> list[Any]:
        assert not self.closed, "a closed backend was given work"
        self.batch_sizes.append(len(prepared))
        self.started.set()
        self.hold.wait(timeout=10)
        if any(request.get("explode") for request in prepared):
            raise RuntimeError("the whole batch failed")
        return [
            ValueError(f"request {request['value']} failed") if request.get("fail") else {"value": request["value"]}
            for request in prepared
        ]

    def close(self) -> None:
        self.closed = True


def make_config(
    *,
    instance_type: str = "ml.g5.12xlarge",
    min_instances: int = 1,
    max_instances: int = 2,
    copies: int = 1,
    accelerators: float = 1,
    max_batch_size: int = 8,
    max_batch_wait_ms: float = 0,
) -> EndpointConfig:
    component = {
        "container": {"kind": "lmi", "image_version": "0.33.0", "model_id": "test/model"},
        "compute": {"accelerators": accelerators, "cpu_cores": 2, "min_memory_mb": 4096},
        "copies": copies,
        "autoscaling": {"min_copies": 0, "max_copies": max(copies, 1)},
        "local": {"backend": "standin", "max_batch_size": max_batch_size, "max_batch_wait_ms": max_batch_wait_ms},
    }
    return parse_config(
        {
            "endpoint": {
                "name": "test-endpoint",
                "instance_type": instance_type,
                "scaling": {"min_instances": min_instances, "max_instances": max_instances},
            },
            "components": {"chat": component},
        },
        environ={},
    )
