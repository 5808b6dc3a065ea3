"""Calls to the chat and summarizer inference components of the one SageMaker endpoint.

boto3 `sagemaker-runtime` only (the sagemaker SDK is far too heavy for a Lambda). The endpoint URL comes
from boto3's own configuration, so the local stack points it at the local endpoint with
AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME and no local-only code path exists here.

Every failure leaves as one of the domain errors below, which the API maps to HTTP statuses and the
batch job to "retry later" or "give up":

- ModelUnavailableError: throttled, no capacity (scaled to zero), timed out, unreachable: transient.
- InputTooLongError: the component refused the input as longer than it can read.
- ModelInvocationError: the model or our request to it failed in a way a retry will not fix.

`chat_stream` yields the answer as it is generated (InvokeEndpointWithResponseStream); the same errors leave it,
also when the endpoint reports a failure mid-stream (`ModelStreamError`, `InternalStreamFailure` events).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

# Codes SageMaker uses for "try again later" (rest-json error codes as botocore parses them).
_UNAVAILABLE_CODES = {
    "ModelNotReadyException",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalDependencyException",
    "ThrottlingException",
    "TooManyRequestsException",
    "InternalStreamFailure",  # the endpoint itself broke mid-stream
    "429",
    "500",
    "503",
}
# A scaled-to-zero component answers ValidationError with this text (see the IC reference, §3).
_NO_CAPACITY = re.compile(r"no capacity", re.IGNORECASE)
_TIMED_OUT = re.compile(r"timed? ?out|timeout", re.IGNORECASE)
# The component says the input is longer than it reads (our endpoint, LMI, HF toolkit / torch wording).
_TOO_LONG = re.compile(
    r"too long|exceeds? (the )?(maximum|context|limit)|longer than|context (length|window)|"
    r"maximum (context|sequence|input) length|index out of range in self|token indices sequence length",
    re.IGNORECASE,
)

DEFAULT_RETRY_AFTER_S = 5
NO_CAPACITY_RETRY_AFTER_S = 60  # scaling a component back from zero copies takes minutes


class InferenceError(Exception):
    """Base class of every failure of a call to the endpoint."""


class ModelInvocationError(InferenceError):
    """The model failed, or answered something we cannot read; retrying the same request will not help."""


class ModelUnavailableError(InferenceError):
    """Throttled, no capacity, timed out or unreachable: try again after `retry_after_s` seconds."""

    def __init__(self, message: str, retry_after_s: int = DEFAULT_RETRY_AFTER_S):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class InputTooLongError(InferenceError):
    """The component rejected the input as longer than it can read (split it and try again)."""


class InferenceClient:
    """The two components of one endpoint, behind two plain methods."""

    def __init__(
        self,
        endpoint_name: str,
        chat_component: str,
        summarizer_component: str,
        client: Any = None,
        *,
        timeout_s: float = 24.0,
        max_attempts: int = 2,
    ):
        self.endpoint_name = endpoint_name
        self.chat_component = chat_component
        self.summarizer_component = summarizer_component
        # Each attempt gets an equal share of the budget, so retries included it ends within timeout_s.
        per_attempt_s = max(1.0, timeout_s / max_attempts)
        self._client = client or boto3.client(
            "sagemaker-runtime",
            config=Config(
                retries={"mode": "adaptive", "total_max_attempts": max_attempts},
                connect_timeout=min(3.0, per_attempt_s),
                read_timeout=per_attempt_s,
            ),
        )

    def chat(
        self,
        messages: list[dict],
        *,
        max_new_tokens: int,
        temperature: float | None = None,
        **parameters: Any,
    ) -> str:
        """The assistant's answer to `messages` ([{"role": "system"|"user"|"assistant", "content": str}])."""
        # OpenAI-style chat completions: served natively by current LMI containers and by the local endpoint.
        payload: dict[str, Any] = {"messages": messages, "max_tokens": max_new_tokens, **parameters}
        if temperature is not None:
            payload["temperature"] = temperature
        body = self._invoke(self.chat_component, payload)
        return _chat_answer(body)

    def chat_stream(
        self,
        messages: list[dict],
        *,
        max_new_tokens: int,
        temperature: float | None = None,
        **parameters: Any,
    ) -> Iterator[str]:
        """The answer to `messages` as pieces of text, each yielded as soon as the endpoint sends it.

        A refusal before the stream starts (throttled, no capacity, bad input) raises on the first `next()`."""
        payload: dict[str, Any] = {"messages": messages, "max_tokens": max_new_tokens, "stream": True, **parameters}
        if temperature is not None:
            payload["temperature"] = temperature
        component = self.chat_component
        with _domain_errors(component):
            response = self._client.invoke_endpoint_with_response_stream(
                EndpointName=self.endpoint_name,
                InferenceComponentName=component,
                ContentType="application/json",
                Accept="application/jsonlines",
                Body=json.dumps(payload).encode("utf-8"),
            )
        events = response["Body"]
        try:
            yield from _text_deltas(component, _payload_parts(component, events))
        finally:
            events.close()  # a consumer that stops early (a client gone) frees the connection

    def summarize(self, texts: list[str], **parameters: Any) -> list[str]:
        """One summary per text, all in one InvokeEndpoint call (the component batches them)."""
        if not texts:
            return []
        body = self._invoke(self.summarizer_component, {"inputs": list(texts), "parameters": parameters})
        if isinstance(body, dict):
            body = [body]
        if not isinstance(body, list) or len(body) != len(texts):
            raise ModelInvocationError(f"summarizer returned {_describe(body)} for {len(texts)} input(s)")
        summaries = []
        for item in body:
            if isinstance(item, list) and len(item) == 1:  # some toolkits nest one list per input
                item = item[0]
            if not isinstance(item, dict) or not isinstance(item.get("summary_text"), str):
                raise ModelInvocationError(f"summarizer returned {_describe(item)} instead of {{'summary_text': ...}}")
            summaries.append(item["summary_text"])
        return summaries

    def _invoke(self, component: str, payload: dict[str, Any]) -> Any:
        with _domain_errors(component):
            response = self._client.invoke_endpoint(
                EndpointName=self.endpoint_name,
                InferenceComponentName=component,
                ContentType="application/json",
                Accept="application/json",
                Body=json.dumps(payload).encode("utf-8"),
            )
            raw = response["Body"].read()
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ModelInvocationError(f"{component}: answer is not JSON ({raw[:80]!r})") from exc


@contextmanager
def _domain_errors(component: str) -> Iterator[None]:
    """botocore's failures, before or during a stream, as the domain errors above."""
    try:
        yield
    except ClientError as exc:  # EventStreamError (an in-stream exception event) is one too
        raise _classify(component, exc) from exc
    except (ConnectionError, HTTPClientError) as exc:  # timeouts, refused connections, closed sockets
        raise ModelUnavailableError(f"{component}: endpoint unreachable or timed out ({exc})") from exc
    except BotoCoreError as exc:
        raise ModelInvocationError(f"{component}: request failed ({exc})") from exc


def _payload_parts(component: str, events: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    iterator = iter(events)
    while True:
        with _domain_errors(component):
            event = next(iterator, None)
        if event is None:
            return
        part = event.get("PayloadPart")
        if part and part.get("Bytes"):
            yield part["Bytes"]


def _text_deltas(component: str, parts: Iterable[bytes]) -> Iterator[str]:
    """Text from the component's stream framing: LMI's application/jsonlines (one chat.completion.chunk per
    line, a line may span PayloadParts; blank lines end events) or an answer in one piece (a JSON object)."""
    pending = b""
    for part in parts:
        pending += part
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield from _line_text(component, line)
    yield from _line_text(component, pending)  # a one-piece answer need not end in a newline


def _line_text(component: str, line: bytes) -> Iterator[str]:
    if not line.strip():
        return
    try:
        body = json.loads(line)
    except ValueError as exc:
        raise ModelInvocationError(f"{component}: stream line is not JSON ({line[:80]!r})") from exc
    if isinstance(body, dict) and body.get("object") == "chat.completion.chunk":
        choices = body.get("choices") or []  # the usage chunk has none
        delta = (choices[0].get("delta") or {}) if choices and isinstance(choices[0], dict) else {}
        text = delta.get("content")
        if text:
            yield text
        return
    yield _chat_answer(body)


def _classify(component: str, exc: ClientError) -> InferenceError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    message = str(error.get("Message", "")) or str(exc)
    original = str(exc.response.get("OriginalMessage", ""))
    text = f"{message} {original}"
    described = f"{component}: {code}: {message}"
    if code in _UNAVAILABLE_CODES:
        return ModelUnavailableError(described, DEFAULT_RETRY_AFTER_S)
    if _NO_CAPACITY.search(text):
        return ModelUnavailableError(described, NO_CAPACITY_RETRY_AFTER_S)
    model_failed = code in {"ModelError", "ModelStreamError"}
    if (model_failed or code == "ValidationError") and _TOO_LONG.search(text):
        return InputTooLongError(described)
    if model_failed and _TIMED_OUT.search(f"{text} {error.get('ErrorCode', '')}"):
        return ModelUnavailableError(described, DEFAULT_RETRY_AFTER_S)
    return ModelInvocationError(described)


def _chat_answer(body: Any) -> str:
    """The answer text from any of the chat forms the component may speak."""
    if isinstance(body, list) and len(body) == 1:
        body = body[0]
    if isinstance(body, dict):
        choices = body.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            message = choices[0].get("message") or {}
            if isinstance(message, dict) and isinstance(message.get("content"), str):
                return message["content"]
        if isinstance(body.get("content"), str):  # the seed's {"role": "assistant", "content": ...}
            return body["content"]
        if isinstance(body.get("generated_text"), str):  # LMI plain form
            return body["generated_text"]
    raise ModelInvocationError(f"chat component returned {_describe(body)} instead of an answer")


def _describe(value: Any) -> str:
    text = json.dumps(value)[:120] if not isinstance(value, bytes) else repr(value[:120])
    return f"an unexpected answer {text}"
