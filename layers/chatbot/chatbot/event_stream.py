"""A streamed send as Server-Sent Events (the REST contract of `Accept: text/event-stream`).

`event: delta` / `data: {"text": ...}` per piece of the answer, then exactly one `event: done` whose data is the
buffered route's JSON (the stored exchange), or, on a failure once the stream has begun, one `event: error` with
`{"error": {"code": <the buffered route's HTTP status>, "message": ...}}`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import closing
from typing import Any, Literal

from aws_lambda_powertools import Logger
from pydantic import BaseModel

from chatbot.api_errors import failure_status
from chatbot.conversations.models import Exchange

logger = Logger(child=True)

CONTENT_TYPE = "text/event-stream"
SEND_MESSAGE_DESCRIPTION = """With `Accept: text/event-stream` the answer streams as Server-Sent Events (200,
`text/event-stream`): `event: delta` with `data: {"text": "<new text>"}` while the model writes (the deltas, joined,
are the stored answer), then exactly one `event: done` whose data is the exchange this route returns without the
header, or, on a failure after the stream began, `event: error` with `data: {"error": {"code": <the HTTP status
the route would answer>, "message": ...}}`. Failures before the first event (auth, validation, 404, 413, no
capacity) are ordinary HTTP errors. The user's message is stored first and the answer once, whole, when the stream
ends: a failure or a disconnect mid-stream leaves the message unanswered (partial text is not kept), and
`messages/retry` or a resend answers it. A resend with the `Idempotency-Key` of an answered exchange streams it
as one delta plus done."""


class Delta(BaseModel):
    text: str


class StreamErrorDetail(BaseModel):
    code: int
    message: str


class StreamError(BaseModel):
    error: StreamErrorDetail


class StreamEvent(BaseModel):
    """One event of the stream, sent as `event: <event>` and `data: <data as JSON>` lines, then a blank line."""

    event: Literal["delta", "done", "error"]
    data: Delta | Exchange | StreamError


def wants_event_stream(accept: str | None) -> bool:
    return bool(accept) and any(part.split(";")[0].strip() == CONTENT_TYPE for part in accept.split(","))


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def started(items: Iterator[str | dict[str, Any]]) -> Iterator[str | dict[str, Any]]:
    """`items` once its first one exists: whatever fails before it raises here, as an ordinary HTTP error."""
    first = next(items)

    def rest() -> Iterator[str | dict[str, Any]]:
        yield first
        yield from items  # closing this closes `items`

    return rest()


def sse_events(items: Iterator[str | dict[str, Any]]) -> Iterator[str]:
    """SSE text for the service's stream: str pieces are deltas, the final dict is the exchange."""
    with closing(items):  # a client gone mid-stream closes the service's stream too (the turn stays unanswered)
        try:
            for item in items:
                if isinstance(item, str):
                    yield sse("delta", {"text": item})
                else:  # serialized as the buffered route's response model serializes it
                    yield sse("done", Exchange.model_validate(item).model_dump(mode="json"))
        except Exception as exc:
            status, message = failure_status(exc)
            logger.warning("stream failed", extra={"status": int(status), "error": str(exc)})
            yield sse("error", {"error": {"code": int(status), "message": message}})
