"""Summaries too long for the API's time budget: the request message the API queues, and how a failed one is told.

The API stores the request on the conversation (`summary_request`, pending) and sends `{"conversation_id",
"request_id"}` to the summary requests queue; the worker (`ConversationService.complete_summary_request`) makes the
summary and marks the request ready or failed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import StrEnum
from typing import Any, NamedTuple


class SummaryFailure(StrEnum):
    """Why a background summary failed; the user sees the message of its code, never the exception."""

    SUMMARIZER_UNAVAILABLE = "summarizer_unavailable"
    SUMMARIZER_FAILED = "summarizer_failed"
    TOO_LONG = "too_long"
    NOT_QUEUED = "not_queued"
    INTERNAL = "internal_error"

    @property
    def message(self) -> str:
        return _MESSAGES[self]


_MESSAGES = {
    SummaryFailure.SUMMARIZER_UNAVAILABLE: "The summarizer stayed busy or unavailable; request it again later.",
    SummaryFailure.SUMMARIZER_FAILED: "The summarizer could not summarize this conversation; request it again later.",
    SummaryFailure.TOO_LONG: "This conversation is too long to summarize within the time a summary may take.",
    SummaryFailure.NOT_QUEUED: "The summary could not be queued; request it again.",
    SummaryFailure.INTERNAL: "The summary failed on our side; request it again.",
}


class SummaryMessage(NamedTuple):
    conversation_id: str
    request_id: str


def parse_summary_message(body: str) -> SummaryMessage:
    """The request a queue message names; ValueError when the body is not one (it can never succeed)."""
    try:
        fields = json.loads(body)
        return SummaryMessage(str(fields["conversation_id"]), str(fields["request_id"]))
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError("not a summary request message") from exc


class SummaryQueue:
    """Sends summary requests to the queue (the SQS client is made on first use: most API calls never queue)."""

    def __init__(self, queue_url: str, client_factory: Callable[[], Any]):
        self.queue_url = queue_url
        self._client_factory = client_factory
        self._client: Any = None

    def send(self, message: SummaryMessage) -> None:
        if self._client is None:
            self._client = self._client_factory()
        self._client.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(message._asdict()))
