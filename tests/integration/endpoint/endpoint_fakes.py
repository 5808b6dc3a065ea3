"""A deterministic fake backend and helpers for the endpoint's integration tests.

Requests are `{"text": str}` plus optional controls: `fail` (this request fails in the backend),
`fail_after_parts` (streaming breaks after N parts), `wait_for` (a named gate the batch waits on),
`unserialisable` (the answer cannot be written as JSON), `parts_as_text` (streamed parts break the
TokenSink contract: str, not bytes), `content_type` (how the answer is typed). Streaming sends one part per word.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

import boto3
from botocore.config import Config

from local.backends.base import Backend, PayloadError, TokenSink
from provisioning.config import EndpointConfig, parse_config

GATE_TIMEOUT_S = 10


class Gates:
    """Named events tests open to let a backend go on; each wait is bounded and records how it ended."""

    def __init__(self) -> None:
        self._events: defaultdict[str, threading.Event] = defaultdict(threading.Event)
        self.timed_out: list[str] = []

    def open(self, name: str) -> None:
        self._events[name].set()

    def wait(self, name: str) -> None:
        if not self._events[name].wait(GATE_TIMEOUT_S):
            self.timed_out.append(name)

    def open_all(self) -> None:
        for event in list(self._events.values()):
            event.set()


class EchoBackend(Backend):
    content_type = "application/json"

    def __init__(self, component_name: str, gates: Gates):
        self.component_name = component_name
        self.label = f"echo fake for {component_name}"
        self.gates = gates
        self.batch_sizes: list[int] = []
        self.closed = False
        self.ran_after_close = False

    def prepare(self, payload: Any) -> Any:
        if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
            raise PayloadError("`text` is required and must be a string")
        return payload

    def answer_content_type(self, prepared: Any) -> str:
        return prepared.get("content_type", self.content_type)

    def run_batch(self, prepared: list[Any], sinks: list[TokenSink | None]) -> list[Any]:
        self.ran_after_close |= self.closed
        self.batch_sizes.append(len(prepared))
        outcomes: list[Any] = []
        for request, sink in zip(prepared, sinks, strict=True):
            if request.get("fail"):
                outcomes.append(RuntimeError(f"cannot answer {request['text']!r}"))
                continue
            if sink is not None:
                for index, word in enumerate(request["text"].split()):
                    if index == request.get("fail_after_parts"):
                        break
                    sink(word if request.get("parts_as_text") else word.encode("utf-8"))
                    if index == 0 and "gate_after_first_part" in request:
                        self.gates.wait(request["gate_after_first_part"])
            if "wait_for" in request:
                self.gates.wait(request["wait_for"])
            if "fail_after_parts" in request:
                outcomes.append(RuntimeError(f"cannot answer {request['text']!r}"))
            elif request.get("unserialisable"):
                outcomes.append({"value": object()})
            else:
                outcomes.append({"component": self.component_name, "echo": request["text"]})
        return outcomes

    def close(self) -> None:
        self.closed = True


class EchoFactory:
    """Builds EchoBackends and keeps them, so tests can inspect every copy's backend."""

    def __init__(self) -> None:
        self.gates = Gates()
        self.backends: list[EchoBackend] = []
        self._lock = threading.Lock()
        self.loading = threading.Event()
        self.loading_gate: str | None = None  # when set, loading a backend waits for this gate

    def __call__(self, component_name: str, component: Any) -> EchoBackend:
        self.loading.set()
        if self.loading_gate is not None:
            self.gates.wait(self.loading_gate)
        backend = EchoBackend(component_name, self.gates)
        with self._lock:
            self.backends.append(backend)
        return backend


def component_config(copies: int = 1, max_batch_size: int = 8, max_batch_wait_ms: float = 5, timeout_s: float = 10):
    return {
        "container": {"kind": "lmi", "image_version": "0.33.0", "model_id": "test/model"},
        "compute": {"accelerators": 1, "cpu_cores": 2, "min_memory_mb": 4096},
        "copies": copies,
        "autoscaling": {"min_copies": 0, "max_copies": 8},
        "local": {
            "backend": "standin",
            "max_batch_size": max_batch_size,
            "max_batch_wait_ms": max_batch_wait_ms,
            "timeout_s": timeout_s,
        },
    }


def endpoint_config(**components: dict[str, Any]) -> EndpointConfig:
    return parse_config(
        {
            "endpoint": {"name": "local-test", "instance_type": "ml.g5.12xlarge", "scaling": {"max_instances": 2}},
            "components": components or {"chat": component_config(), "summarizer": component_config()},
        },
        environ={},
    )


def client(service: str, url: str):
    """A plain boto3 client on the local endpoint, without retries so each call is one request."""
    return boto3.client(
        service,
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"total_max_attempts": 1}, read_timeout=30, max_pool_connections=64),
    )
