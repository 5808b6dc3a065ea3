"""Small HTTP helpers for the fault tests: the local gateway's bearer tokens, conversations, resends."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import requests

from bench.reconcile import SentMessage, auth_headers

RETRYABLE = {502, 503}
# A resend waits this much longer after each failed attempt (0.2 s, 0.4 s, ...: under 10 s over 10 attempts).
BACKOFF_STEP_S = 0.2


@dataclass
class Caller:
    api: str
    user: str

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {**auth_headers(self.user), **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.api}{path}", headers=headers, timeout=60, **kwargs)

    def start_conversation(self) -> str:
        response = self.request("POST", "/v1/conversations", json={"title": "faults"})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def send(self, conversation_id: str, content: str, key: str) -> int:
        return self.send_response(conversation_id, content, key).status_code

    def send_response(self, conversation_id: str, content: str, key: str) -> requests.Response:
        return self.request(
            "POST",
            f"/v1/conversations/{conversation_id}/messages",
            json={"content": content},
            headers={"Idempotency-Key": key},
        )

    def messages(self, conversation_id: str) -> list[dict]:
        response = self.request("GET", f"/v1/conversations/{conversation_id}/messages", params={"limit": 100})
        assert response.status_code == 200, response.text
        return response.json()["items"]


def new_caller(api: str, prefix: str) -> Caller:
    return Caller(api, f"{prefix}-{uuid.uuid4().hex[:8]}")


def send_until_answered(
    caller: Caller, conversation_id: str, content: str, attempts: int = 10, key: str | None = None
) -> list[int]:
    """A well-behaved client: resend with the same Idempotency-Key, backing off, while the API answers 502/503
    (bounded)."""
    key = key or uuid.uuid4().hex
    statuses: list[int] = []
    for attempt in range(1, attempts + 1):
        try:
            status = caller.send(conversation_id, content, key)
        except requests.ConnectionError:
            status = 0
        statuses.append(status)
        if status not in RETRYABLE | {0, 409}:
            break
        time.sleep(BACKOFF_STEP_S * attempt)
    return statuses


def as_sent(caller: Caller, conversation_id: str, content: str, statuses: list[int]) -> SentMessage:
    """The ledger entry for a message: its final status decides what reconciliation expects."""
    return SentMessage(caller.user, conversation_id, content, statuses[-1])


def wait_until(condition, timeout_s: float, poll_s: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll_s)
    return condition()
