"""Copies served by their own container process, as each SageMaker inference component copy is a container.

The backend starts a container module from `local.containers` with the interpreter of the virtualenv that
carries its production serving stack, waits until `/ping` answers 200, and relays every invocation to
`POST /invocations` untouched. The container answers for itself: a non-2xx status and its body travel back as
the ModelError SageMaker relays, and a streamed answer is relayed chunk by chunk as it arrives. The container
batches by itself (vLLM's continuous batching), so its copy hands it each request as it comes.

- `vllm`: `local.containers.lmi` in `.venv-vllm`, on the deployed chat package (model.py and serving.properties)
  with the local checkpoint as its model id;
- `hf-toolkit`: `local.containers.huggingface` in `.venv-hf`, on the checkpoint directory, as /opt/ml/model
  holds it in the Hugging Face container.
"""

from __future__ import annotations

import http.client
import logging
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from local.backends.base import ContinuousBatchingBackend, Invocation, ModelResponse, ModelServerError, StreamSink
from provisioning.config import Component
from provisioning.packaging import container_environment, huggingface_environment, serving_properties

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
_PING_INTERVAL_S = 0.2
_STOP_GRACE_S = 10.0
_READ_SIZE = 64 * 1024
_LOG_TAIL_BYTES = 4000


@dataclass(frozen=True)
class ContainerSpec:
    """How to start one container: which module, in which virtualenv, on which model directory."""

    module: str
    venv: str
    model_dir: Path
    environment: Mapping[str, str] = field(default_factory=dict)
    startup_timeout_s: float = 300.0
    request_timeout_s: float = 120.0

    @property
    def python(self) -> Path:
        return REPO_ROOT / self.venv / "bin" / "python"


class ContainerStartError(RuntimeError):
    """The container process could not be started, exited while loading, or never became healthy."""


class ContainerBackend(ContinuousBatchingBackend):
    def __init__(
        self,
        component_name: str,
        spec: ContainerSpec,
        label: str,
        scratch: tempfile.TemporaryDirectory[str] | None = None,
    ):
        self.component_name = component_name
        self.spec = spec
        self._scratch = scratch  # removed with the container
        if not spec.python.exists():
            raise ContainerStartError(
                f"component {component_name!r}: {spec.python} is missing; `make venv-containers` creates it"
            )
        self.port = _free_port()
        log_dir = Path(tempfile.gettempdir()) / "chatbot-containers"
        log_dir.mkdir(exist_ok=True)
        self.log_path = log_dir / f"{component_name}-{self.port}.log"
        with self.log_path.open("wb") as log:
            # A session of its own, so stopping the container also stops the processes it spawned (vLLM's engine).
            self._process = subprocess.Popen(
                [str(spec.python), "-m", spec.module, "--port", str(self.port), "--model-dir", str(spec.model_dir)],
                cwd=REPO_ROOT,
                env={**os.environ, **spec.environment},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.label = f"{label} (container pid {self._process.pid}, log {self.log_path})"
        try:
            self._wait_until_healthy()
        except BaseException:
            self.close()
            raise

    def prepare(self, payload: Invocation) -> Invocation:
        return payload  # the container reads and validates the request itself, as the real one does

    def serve(self, prepared: Invocation, sink: StreamSink | None) -> ModelResponse | None:
        # SageMaker hands the container the body with the caller's Content-Type and Accept, nothing else.
        headers = {"Content-Type": prepared.content_type, "Accept": prepared.accept}
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.spec.request_timeout_s)
        try:
            connection.request(
                "POST",
                "/invocations",
                body=prepared.body,
                headers={name: value for name, value in headers.items() if value is not None},
            )
            response = connection.getresponse()
            if response.status >= 300:
                raise ModelServerError(response.status, response.read().decode("utf-8", "replace"))
            content_type = response.getheader("Content-Type", "application/json")
            if sink is None:
                return ModelResponse(response.read(), content_type)
            while chunk := response.read1(_READ_SIZE):
                sink(chunk, content_type)
            return None
        finally:
            connection.close()

    def close(self) -> None:
        if self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()
        if self._scratch is not None:
            self._scratch.cleanup()

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + self.spec.startup_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ContainerStartError(
                    f"component {self.component_name!r}: container exited with {self._process.returncode} "
                    f"while loading; last output:\n{self._log_tail()}"
                )
            if self._ping() == 200:
                return
            time.sleep(_PING_INTERVAL_S)
        raise ContainerStartError(
            f"component {self.component_name!r}: container not healthy after {self.spec.startup_timeout_s:g} s; "
            f"last output:\n{self._log_tail()}"
        )

    def _ping(self) -> int | None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            connection.request("GET", "/ping")
            return connection.getresponse().status
        except OSError:
            return None  # not listening yet
        finally:
            connection.close()

    def _log_tail(self) -> str:
        with self.log_path.open("rb") as log:
            log.seek(max(0, self.log_path.stat().st_size - _LOG_TAIL_BYTES))
            return log.read().decode("utf-8", "replace")


def lmi_container(component_name: str, component: Component) -> ContainerBackend:
    """The chat component in the LMI container's serving stack (djl-serving's vLLM async service, vLLM)."""
    checkpoint = _checkpoint(component)
    scratch = tempfile.TemporaryDirectory(prefix=f"{component_name}-lmi-model-")
    model_dir = Path(scratch.name)
    # What the deployed package holds (provisioning/packaging.py), with the local checkpoint as the model id and
    # the local context window as its length: LMI lets serving.properties win over OPTION_* variables, so a
    # smaller local checkpoint needs it written here (vLLM refuses a max_model_len beyond the model's).
    environment = {**component.container.environment, "OPTION_MAX_MODEL_LEN": str(component.local.context_tokens)}
    container = component.container.model_copy(update={"model_id": str(checkpoint), "environment": environment})
    (model_dir / "serving.properties").write_text(serving_properties(container), encoding="utf-8")
    package = REPO_ROOT / "provisioning" / "chat_package"
    for source in package.iterdir():
        if source.is_file() and source.suffix != ".pyc" and source.name != "__init__.py":
            (model_dir / source.name).write_bytes(source.read_bytes())
    spec = ContainerSpec(
        module="local.containers.lmi",
        venv=".venv-vllm",
        model_dir=model_dir,
        environment=container_environment(container),
        request_timeout_s=component.local.timeout_s + 5,
    )
    label = f"vllm: LMI {component.container.image_version} on {checkpoint}"
    return ContainerBackend(component_name, spec, label, scratch)


def huggingface_container(component_name: str, component: Component) -> ContainerBackend:
    """The summarizer in the Hugging Face inference toolkit, the code inside the Hugging Face container."""
    checkpoint = _checkpoint(component)
    spec = ContainerSpec(
        module="local.containers.huggingface",
        venv=".venv-hf",
        model_dir=checkpoint,
        environment=huggingface_environment(component.container),
        request_timeout_s=component.local.timeout_s + 5,
    )
    label = f"hf-toolkit: transformers {component.container.image_version} on {checkpoint}"
    return ContainerBackend(component_name, spec, label)


def _checkpoint(component: Component) -> Path:
    assert component.local.checkpoint is not None  # the config requires it for container backends
    return component.local.checkpoint


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
