"""Locust users for `python -m bench.loadtest` (run by it with `locust -f`, never imported by other code).

ChatUser: a person in the UI. Starts a conversation, sends messages (each with its own Idempotency-Key), now and
then asks for a summary. Every send streams, as the UI's chat page streams every send: the answer's Server-Sent
Events are read to the end, and each answer makes two entries, the time to its first `delta` (pseudo-method TTFT)
and the time to its `done` (the send's own POST entry).
TranscriptUser: requests an upload URL and PUTs a short call transcript to it. Every request that reaches the API
is written to the ledger named by $LOADTEST_LEDGER for reconciliation afterwards, and every failed request with
its status and body.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from locust import HttpUser, between, events, task
from locust.exception import RescheduleTask
from requests import RequestException

from bench.reconcile import (
    FIRST_TOKEN,
    Ledger,
    SentMessage,
    UploadedTranscript,
    auth_headers,
    failed_request,
    sse_events,
    streamed_outcome,
)

LEDGER = Ledger(Path(os.environ["LOADTEST_LEDGER"]))
STREAMED_SEND = "/v1/conversations/[id]/messages (streamed)"


@events.request.add_listener
def record_failure(request_type, name, response, exception, **_kwargs) -> None:
    """Every failed request's status and body, for the load test's table of error causes."""
    if exception is not None:
        LEDGER.failure(failed_request(request_type, name, response, exception))


CALL_LINES = (
    "Agent: Thank you for calling, how can I help you today?",
    "Customer: My router keeps dropping the connection every evening.",
    "Agent: I am sorry to hear that. Can you read me the serial number on the back?",
    "Customer: It is {serial}.",
    "Agent: Thanks. I can see a firmware update is pending, I will push it now.",
    "Customer: Great, will I need to restart it?",
    "Agent: Yes, it restarts by itself in about five minutes. Anything else?",
    "Customer: No, that is all, thank you.",
)


class ChatUser(HttpUser):
    weight = 4
    wait_time = between(0.05, 0.3)

    def on_start(self) -> None:
        self.user = f"load-chat-{uuid.uuid4().hex[:12]}"
        self.headers = auth_headers(self.user)
        response = self.client.post("/v1/conversations", json={"title": "load test"}, headers=self.headers)
        if response.status_code != 201:
            raise RescheduleTask(f"could not start a conversation: HTTP {response.status_code}")
        self.conversation_id = response.json()["id"]
        self.sent = 0

    @task(8)
    def send_message(self) -> None:
        content = f"{self.user} message {self.sent}: what are your opening hours on public holidays?"
        self.sent += 1
        headers = {**self.headers, "Idempotency-Key": uuid.uuid4().hex, "Accept": "text/event-stream"}
        started = time.perf_counter()
        with self.client.post(
            f"/v1/conversations/{self.conversation_id}/messages",
            json={"content": content},
            headers=headers,
            name=STREAMED_SEND,
            stream=True,
            catch_response=True,
        ) as response:
            status, failure = response.status_code or 0, None
            if status == 200:
                status, failure = _read_answer(response, started)
            else:
                failure = f"HTTP {status}"
            # The status the buffered send would have answered, which the reconciliation's rules are about.
            LEDGER.message(SentMessage(self.user, self.conversation_id, content, status))
            response.request_meta["response_time"] = _ms_since(started)  # to `done`, not to the headers
            if failure:
                response.failure(failure)

    @task(1)
    def summarize(self) -> None:
        if self.sent:
            self.client.post(
                f"/v1/conversations/{self.conversation_id}/summary",
                json={},
                headers=self.headers,
                name="/v1/conversations/[id]/summary",
            )


def _read_answer(response, started: float) -> tuple[int, str | None]:
    """Read the answer's events to the end of the body (so its connection is reused, not reset), recording the
    first delta's time as its own entry; the status and failure as `streamed_outcome` says."""

    def first_token() -> None:
        events.request.fire(
            request_type=FIRST_TOKEN,
            name=STREAMED_SEND,
            response_time=_ms_since(started),
            response_length=0,
            response=None,
            exception=None,
            context={},
        )

    try:
        return streamed_outcome(sse_events(response.iter_lines(decode_unicode=True)), first_token)
    except RequestException as error:
        return 0, f"the stream broke: {error!r}"


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


class TranscriptUser(HttpUser):
    weight = 1
    wait_time = between(0.2, 0.6)

    def on_start(self) -> None:
        self.user = f"load-calls-{uuid.uuid4().hex[:12]}"
        self.headers = auth_headers(self.user)

    @task
    def upload_transcript(self) -> None:
        response = self.client.post("/v1/transcripts", json={"filename": "call.txt"}, headers=self.headers)
        if response.status_code != 201:
            return
        body = response.json()
        transcript = "\n".join(CALL_LINES).format(serial=uuid.uuid4().hex[:10].upper())
        # The presigned POST points at the local S3 (moto on loopback): the form's fields, then the file.
        upload = body["upload"]
        put = self.client.post(
            upload["url"],
            data=upload["fields"],
            files={"file": ("call.txt", transcript.encode(), upload["content_type"])},
            name="S3 POST (presigned)",
        )
        if put.status_code in (200, 201, 204):
            job = body["job"]
            LEDGER.transcript(UploadedTranscript(self.user, job["job_id"], job["source_key"]))
