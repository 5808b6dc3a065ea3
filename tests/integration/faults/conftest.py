"""Fault injection around the whole local stack (moto, local endpoint, gateway, transcripts poller).

- `Faults.chat` / `Faults.summarizer`: "ok", "error" (the model raises: SageMaker ModelError) or "slow" (the
  model outlives the chat component's invocation timeout, set to 1 s here); a wrapping backend_factory applies
  them. `Faults.summarizer_fails_on`: the summarizer raises only for requests with a text containing it.
- `stack.endpoint.restart()`: the endpoint server stops and comes back on the same port (in-flight and new
  requests meanwhile see a refused connection).
- `stack.throttle`: DynamoDB calls (all, or only some operations) answered with
  ProvisionedThroughputExceededException at the wire (moto's interceptor answers them before moto sees them),
  whichever function environment sent them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import local.endpoint.server as endpoint_server
import local.stack
from local.aws import start_moto
from local.backends import Backend, create_backend
from local.endpoint.runtime import BackendFactory
from local.endpoint.server import RunningEndpoint
from local.stack import LocalStack, Ports
from provisioning.config import Component, EndpointConfig, load_config

pytestmark = pytest.mark.integration

SLOW_MODEL_S = 1.6
COMPONENT_TIMEOUT_S = 1.0
# Only the chat component, the one the tests make slow, gets the short timeout: the summarizer keeps its own, as
# the hostile batch summarizes files as large as allowed and the extractive stand-in takes seconds per call on them.
SHORT_TIMEOUT_COMPONENTS = ("chat",)


@dataclass
class Faults:
    chat: str = "ok"
    summarizer: str = "ok"
    summarizer_fails_on: str = ""

    def mode(self, component_name: str) -> str:
        return getattr(self, component_name, "ok")

    def fails_on(self, component_name: str, prepared: Any) -> bool:
        """A summary request with a text containing `summarizer_fails_on`."""
        marker = self.summarizer_fails_on if component_name == "summarizer" else ""
        return bool(marker) and any(marker in text for text in getattr(prepared, "inputs", ()))

    def reset(self) -> None:
        self.chat = self.summarizer = "ok"
        self.summarizer_fails_on = ""


class FaultyBackend(Backend):
    """The real backend, unless the component's fault mode says to fail or to be slow."""

    def __init__(self, inner: Backend, component_name: str, faults: Faults):
        self._inner = inner
        self._component_name = component_name
        self._faults = faults
        self.label = f"{inner.label} (fault-injectable)"
        self.content_type = inner.content_type

    def prepare(self, payload: Any) -> Any:
        return self._inner.prepare(payload)

    def run_batch(self, prepared: list[Any], sinks: list[Any]) -> list[Any]:
        mode = self._faults.mode(self._component_name)
        if mode == "error":
            return [RuntimeError("injected model failure") for _ in prepared]
        if mode == "slow":
            time.sleep(SLOW_MODEL_S)
        failing = [self._faults.fails_on(self._component_name, request) for request in prepared]
        if not any(failing):
            return self._inner.run_batch(prepared, sinks)
        kept = [index for index, fails in enumerate(failing) if not fails]
        answers = iter(self._inner.run_batch([prepared[i] for i in kept], [sinks[i] for i in kept]) if kept else [])
        return [RuntimeError("injected model failure") if fails else next(answers) for fails in failing]

    def close(self) -> None:
        self._inner.close()


class RestartableEndpoint:
    """What LocalStack holds as its endpoint: `.url`, `.stop()`, plus `.restart()` on the same port."""

    def __init__(self, start: Any, config: EndpointConfig, host: str, port: int):
        self._start = start
        self._config = config
        self._current: RunningEndpoint = start(config, host, port)
        self.url = self._current.url
        self.restarts = 0

    def restart(self, on_down: Callable[[], None] = lambda: None, back_when: threading.Event | None = None) -> None:
        """Stop, call on_down, stay down until back_when is set (bounded) or half a second, then start again."""
        host, port = self._current.host, self._current.port
        self._current.stop()
        on_down()
        if back_when is None:
            time.sleep(0.5)
        else:
            back_when.wait(timeout=60)
        self._current = self._start(self._config, host, port)
        self.restarts += 1

    def stop(self) -> None:
        self._current.stop()

    def __enter__(self) -> RestartableEndpoint:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@dataclass
class DynamoDBThrottle:
    """Answers DynamoDB calls with ProvisionedThroughputExceededException while switched on.

    `every_first_attempt`: only a request's first attempt is throttled (botocore's retry then gets through);
    `always`: every attempt, so the caller sees the error once its retries are spent.
    `operations`: when not empty, only these operations are throttled (e.g. {"BatchWriteItem"}).
    """

    mode: str = "off"
    operations: frozenset[str] = frozenset()
    injected: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ: dict[str, Any]) -> tuple[int, dict[str, str], bytes] | None:
        if self.mode == "off" or "/dynamodb/" not in environ.get("HTTP_AUTHORIZATION", ""):
            return None
        operation = environ.get("HTTP_X_AMZ_TARGET", "").rpartition(".")[2]
        if self.operations and operation not in self.operations:
            return None
        first_attempt = "attempt=1" in environ.get("HTTP_AMZ_SDK_REQUEST", "attempt=1")
        if self.mode == "every_first_attempt" and not first_attempt:
            return None
        with self._lock:
            self.injected += 1
        body = (
            b'{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",'
            b'"message":"The level of configured provisioned throughput for the table was exceeded."}'
        )
        return 400, {"Content-Type": "application/x-amz-json-1.0"}, body


@dataclass
class FaultyStack:
    api: str
    stack: LocalStack
    faults: Faults
    endpoint: RestartableEndpoint
    throttle: DynamoDBThrottle


def _config_with_short_timeouts() -> EndpointConfig:
    config = load_config()
    components: dict[str, Component] = {
        name: component.model_copy(
            update={"local": component.local.model_copy(update={"timeout_s": COMPONENT_TIMEOUT_S})}
        )
        if name in SHORT_TIMEOUT_COMPONENTS
        else component
        for name, component in config.components.items()
    }
    return config.model_copy(update={"components": components})


@pytest.fixture(scope="package")
def faulty_stack() -> Iterator[FaultyStack]:
    faults = Faults()
    throttle = DynamoDBThrottle()
    real_start = endpoint_server.start_endpoint
    endpoints: list[RestartableEndpoint] = []

    def faulty_backend(component_name: str, component: Component) -> Backend:
        return FaultyBackend(create_backend(component_name, component), component_name, faults)

    def start_restartable(
        config: EndpointConfig, host: str, port: int, backend_factory: BackendFactory | None = None
    ) -> RestartableEndpoint:
        def start(config: EndpointConfig, host: str, port: int) -> RunningEndpoint:
            return real_start(config, host, port, backend_factory=backend_factory)

        endpoints.append(RestartableEndpoint(start, config, host, port))
        return endpoints[-1]

    def start_throttling_moto(host: str, port: int) -> Any:
        return start_moto(host, port, interceptor=throttle)

    stack = LocalStack(
        config=_config_with_short_timeouts(), ports=Ports.ephemeral(), with_ui=False, backend_factory=faulty_backend
    )
    # Patched only while this stack starts: a package-scoped fixture in a folder without __init__.py lives as
    # long as the session, and a patch left in place would wrap every later test's endpoint and moto too.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(endpoint_server, "start_endpoint", start_restartable)
        patch.setattr(local.stack, "start_moto", start_throttling_moto)
        stack.start()
    try:
        yield FaultyStack(stack.urls["api"], stack, faults, endpoints[0], throttle)
    finally:
        stack.stop()


@pytest.fixture
def stack(faulty_stack: FaultyStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultyStack]:
    """The shared faulty stack, with every fault switched off before and after each test."""
    # The autouse aws_env fixture clears endpoint overrides for every test; the stack's clients need them back.
    for name, value in faulty_stack.stack.environment.items():
        monkeypatch.setenv(name, value)
    faulty_stack.faults.reset()
    faulty_stack.throttle.mode, faulty_stack.throttle.operations = "off", frozenset()
    yield faulty_stack
    faulty_stack.faults.reset()
    faulty_stack.throttle.mode, faulty_stack.throttle.operations = "off", frozenset()
