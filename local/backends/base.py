"""The contract between the local endpoint's copies and the model backends that serve them.

Each copy of an inference component owns one backend instance (as each SageMaker copy owns its own
model server). The endpoint calls `prepare` on the request thread, so a request that breaks the
component's payload contract fails fast, then queues the prepared request. SageMaker never reads a payload: the
container refuses it, and SageMaker relays the container's status and body as a ModelError. So an in-process
backend refuses as the container it imitates (`refuse`: chat_contract.LmiFraming, summary_contract.ToolkitFraming).
A `Backend` is handed dynamic batches by its copy's worker (`run_batch`); a `ContinuousBatchingBackend`
batches by itself (a model server such as vLLM), so its copy hands it each request as it arrives (`serve`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

# Receives the bytes of one streamed PayloadPart, as soon as the backend has produced them.
TokenSink = Callable[[bytes], None]


class StreamSink(Protocol):
    """Receives a model server's streamed answer, each part with the Content-Type the server answered with."""

    def __call__(self, part: bytes, /, content_type: str | None = None) -> None: ...


class PayloadError(ValueError):
    """The request does not fit the component's payload contract (the backend's `refuse` frames the answer)."""


@dataclass(frozen=True)
class Invocation:
    """An InvokeEndpoint request as a model server receives it: the body and the headers it is described by."""

    body: bytes
    content_type: str | None = None
    accept: str | None = None


@dataclass(frozen=True)
class ModelResponse:
    """A model server's answer, relayed as it was sent."""

    body: bytes
    content_type: str


class ModelServerError(Exception):
    """A model server answered an invocation with an error status; SageMaker relays it as a ModelError."""

    def __init__(self, status: int, body: str):
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


class ModelBackend(ABC):
    #: What serves the component, shown in the endpoint status (e.g. "smoke-llama: random weights, output is noise").
    label: str = ""
    #: MIME type of non-streamed responses.
    content_type: str = "application/json"

    @abstractmethod
    def prepare(self, payload: Any) -> Any:
        """Validate and normalise one parsed JSON request; raise PayloadError if it breaks the contract."""

    def refuse(self, error: PayloadError) -> ModelServerError:
        """The model server's answer to a request that breaks its contract (a body that is not JSON included).
        The in-process backends answer as the container they imitate; this plain 400 serves test doubles."""
        return ModelServerError(400, str(error))

    def answer_content_type(self, prepared: Any) -> str:
        """The MIME type of this prepared request's answer, streamed or not, unless the answer carries its own."""
        return self.content_type

    def close(self) -> None:  # noqa: B027 - optional hook; most backends hold nothing to release
        """Release what the backend holds (called when its copy is removed)."""


class Backend(ModelBackend):
    """A model that the copy's worker feeds in dynamic batches."""

    @abstractmethod
    def run_batch(self, prepared: list[Any], sinks: list[TokenSink | None]) -> list[Any]:
        """Serve a batch together. Returns one JSON-serialisable response per request, or an Exception
        instance for a request that failed alone (the endpoint answers it with ModelError). Where a sink
        is given the request is streamed: each part goes to the sink as it is produced, and the return
        value for that request is ignored."""


class ContinuousBatchingBackend(ModelBackend):
    """A model server that batches requests itself: the copy keeps up to `max_batch_size` of them in flight."""

    @abstractmethod
    def prepare(self, payload: Invocation) -> Any:
        """Take the request as it came: a model server reads and validates the body itself."""

    @abstractmethod
    def serve(self, prepared: Any, sink: StreamSink | None) -> ModelResponse | None:
        """Serve one request (called from several threads at once). Returns the response, or streams it to
        `sink` when one is given, each part with the response's Content-Type. Raises for a failed request."""
