"""Afterwards, account for everything a load or fault run sent: each chat message and each uploaded transcript.

A ledger (JSON lines, one per request that reached the API) records what was sent and what the client was told.
`reconcile` reads the system's state back through the public API (as each message's owner) and through S3,
and reports every message or transcript that is lost, duplicated or left unanswered.

Rules for a chat message, by the status its sender got:
- 201: stored exactly once and answered (an assistant message with `reply_to` its seq);
- 502 / 503 (model failed or unavailable) and 500/504 or a dropped connection: stored at most once; the
  product promises that a message that reached the handler is saved, so 502/503 must be stored exactly once;
- any other status (4xx): the request was refused; stored at most once.
A transcript whose upload PUT succeeded must end in exactly one job record (succeeded, or failed with a reason)
and, when it succeeded, one summary object.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from chatbot.transcript_jobs.keys import summary_key

MESSAGE = "message"
TRANSCRIPT = "transcript"
FAILURE = "failure"
# A failed request's body is kept to this many characters: enough for the API's JSON error or S3's XML code.
FAILURE_BODY_CHARS = 500
STORED_FOR_SURE = {201, 502, 503}
TERMINAL_JOB_STATES = {"succeeded", "failed"}
PAGE_SIZE = 100
# The pseudo-method of the load test's time-to-first-token entries: a measurement within a request, not a request.
FIRST_TOKEN = "TTFT"


def sse_events(lines: Iterable[str]) -> Iterator[tuple[str, Any]]:
    """(event, data) per Server-Sent Event of the API's stream (one `event:` and one `data:` line each)."""
    event, data = None, None
    for line in lines:
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data = json.loads(line.removeprefix("data: "))
        elif not line and event is not None:
            yield event, data
            event, data = None, None


def streamed_outcome(events: Iterable[tuple[str, Any]], on_first_delta: Callable[[], None]) -> tuple[int, str | None]:
    """The status a streamed send's ledger entry gets — what the buffered send would have answered: 201 for `done`,
    an `error` event's code, 0 for a stream cut before either — and the failure to report (None after `done`).
    Every event is read; `on_first_delta` is called at the first `delta`."""
    status, failure = 0, "the stream ended without done or error"
    first_delta = True
    for event, data in events:
        if event == "delta" and first_delta:
            first_delta = False
            on_first_delta()
        elif event == "done":
            status, failure = 201, None
        elif event == "error":
            error = data["error"]
            status, failure = int(error["code"]), f"event: error {error['code']}: {error['message']}"
    return status, failure


def auth_headers(user: str) -> dict[str, str]:
    """The local gateway's stand-in for a Cognito token: `local-<user>` is user <user>."""
    return {"Authorization": f"Bearer local-{user}"}


@dataclass(frozen=True)
class SentMessage:
    user: str
    conversation_id: str
    content: str
    status: int  # 0: no response (connection error or client timeout)


@dataclass(frozen=True)
class UploadedTranscript:
    user: str
    job_id: str
    source_key: str


@dataclass(frozen=True)
class FailedRequest:
    route: str  # "POST /v1/conversations/[id]/messages"
    status: int  # 0: no response (connection error or client timeout)
    body: str  # the response body, or the client's exception when there was no response


def failed_request(request_type: str, name: str, response: Any, exception: BaseException) -> FailedRequest:
    """What a failed locust request reports: its route, status and (bounded) body."""
    status = int(getattr(response, "status_code", 0) or 0)
    body = _body(response) if status else ""
    return FailedRequest(f"{request_type} {name}", status, (body or repr(exception))[:FAILURE_BODY_CHARS])


def _body(response: Any) -> str:
    try:
        return getattr(response, "text", None) or ""
    except RuntimeError:  # a streamed body, read already: the failure's exception says what went wrong in it
        return ""


class Ledger:
    """Append-only JSON lines; one `write` is one line, so concurrent greenlets or threads never interleave."""

    def __init__(self, path: Path):
        self.path = path

    def message(self, sent: SentMessage) -> None:
        self._write({"kind": MESSAGE, **sent.__dict__})

    def transcript(self, uploaded: UploadedTranscript) -> None:
        self._write({"kind": TRANSCRIPT, **uploaded.__dict__})

    def failure(self, failed: FailedRequest) -> None:
        self._write({"kind": FAILURE, **failed.__dict__})

    def _write(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(record) + "\n")

    def read(self) -> tuple[list[SentMessage], list[UploadedTranscript]]:
        records = self._records()
        return [SentMessage(**r) for r in records[MESSAGE]], [UploadedTranscript(**r) for r in records[TRANSCRIPT]]

    def failures(self) -> list[FailedRequest]:
        return [FailedRequest(**record) for record in self._records()[FAILURE]]

    def _records(self) -> dict[str, list[dict[str, Any]]]:
        by_kind: dict[str, list[dict[str, Any]]] = {MESSAGE: [], TRANSCRIPT: [], FAILURE: []}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                record = json.loads(line)
                by_kind[record.pop("kind")].append(record)
        return by_kind


@dataclass
class Report:
    messages_checked: int = 0
    transcripts_checked: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)
    job_states: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.unanswered or self.unfinished)

    def lines(self) -> list[str]:
        lines = [
            f"messages checked      {self.messages_checked}",
            f"transcripts checked   {self.transcripts_checked}  ({_states(self.job_states)})",
            f"lost                  {len(self.lost)}",
            f"duplicated            {len(self.duplicated)}",
            f"201 but unanswered    {len(self.unanswered)}",
            f"jobs not finished     {len(self.unfinished)}",
        ]
        for label, problems in (
            ("lost", self.lost),
            ("duplicated", self.duplicated),
            ("unanswered", self.unanswered),
            ("unfinished", self.unfinished),
        ):
            lines.extend(f"  {label}: {problem}" for problem in problems[:10])
        return lines


def _states(states: Counter[str]) -> str:
    return ", ".join(f"{state} {count}" for state, count in sorted(states.items())) or "none"


def conversation_messages(api_url: str, user: str, conversation_id: str, http: Any = requests) -> list[dict]:
    """Every message of one conversation, oldest first, page by page."""
    items: list[dict] = []
    cursor: str | None = None
    for _page in range(10_000):  # bounded: 1,000,000 messages
        params: dict[str, Any] = {"limit": PAGE_SIZE, **({"cursor": cursor} if cursor else {})}
        response = http.get(
            f"{api_url}/v1/conversations/{conversation_id}/messages",
            params=params,
            headers=auth_headers(user),
            timeout=30,
        )
        response.raise_for_status()
        page = response.json()
        items.extend(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return items


def reconcile_messages(api_url: str, sent: Iterable[SentMessage], report: Report, http: Any = requests) -> None:
    by_conversation: dict[tuple[str, str], list[SentMessage]] = {}
    for message in sent:
        by_conversation.setdefault((message.user, message.conversation_id), []).append(message)
    for (user, conversation_id), messages in by_conversation.items():
        stored = conversation_messages(api_url, user, conversation_id, http)
        user_messages = Counter(item["content"] for item in stored if item["role"] == "user")
        answered_seqs = {item["reply_to"] for item in stored if item["role"] == "assistant"}
        seq_by_content = {item["content"]: item["seq"] for item in stored if item["role"] == "user"}
        for message in messages:
            report.messages_checked += 1
            label = f"{conversation_id} {message.content[:40]!r} (HTTP {message.status})"
            count = user_messages[message.content]
            if count > 1:
                report.duplicated.append(label)
            elif count == 0 and message.status in STORED_FOR_SURE:
                report.lost.append(label)
            elif message.status == 201 and seq_by_content[message.content] not in answered_seqs:
                report.unanswered.append(label)


def wait_for_jobs(
    api_url: str,
    uploaded: Iterable[UploadedTranscript],
    timeout_s: float,
    poll_s: float = 0.5,
    http: Any = requests,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, dict]:
    """Each job's latest record, polling until all are succeeded/failed or timeout_s has passed."""
    pending = {transcript.job_id: transcript for transcript in uploaded}
    latest: dict[str, dict] = {}
    deadline = time.monotonic() + timeout_s
    while pending:
        for job_id, transcript in list(pending.items()):
            response = http.get(f"{api_url}/v1/transcripts/{job_id}", headers=auth_headers(transcript.user), timeout=30)
            if response.status_code == 200:
                latest[job_id] = response.json()
                if latest[job_id]["status"] in TERMINAL_JOB_STATES:
                    del pending[job_id]
        if not pending or time.monotonic() >= deadline:
            break
        sleep(poll_s)
    return latest


def listed_job_ids(api_url: str, user: str, http: Any = requests) -> list[str]:
    """Every job id the user's job list shows (a duplicate record would show up twice or as a stranger)."""
    job_ids: list[str] = []
    cursor: str | None = None
    for _page in range(10_000):
        params: dict[str, Any] = {"limit": PAGE_SIZE, **({"cursor": cursor} if cursor else {})}
        response = http.get(f"{api_url}/v1/transcripts", params=params, headers=auth_headers(user), timeout=30)
        response.raise_for_status()
        page = response.json()
        job_ids.extend(item["job_id"] for item in page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return job_ids


def reconcile_transcripts(
    api_url: str,
    uploaded: list[UploadedTranscript],
    report: Report,
    *,
    s3: Any,
    bucket: str,
    timeout_s: float,
    http: Any = requests,
) -> None:
    jobs = wait_for_jobs(api_url, uploaded, timeout_s, http=http)
    expected_by_user: dict[str, set[str]] = {}
    for transcript in uploaded:
        report.transcripts_checked += 1
        expected_by_user.setdefault(transcript.user, set()).add(transcript.job_id)
        job = jobs.get(transcript.job_id)
        state = job["status"] if job else "missing"
        report.job_states[state] += 1
        label = f"{transcript.source_key} (job {transcript.job_id}, {state})"
        if job is None:
            report.lost.append(label)
        elif state not in TERMINAL_JOB_STATES:
            report.unfinished.append(label)
        elif state == "succeeded" and not _object_exists(s3, bucket, summary_key(transcript.source_key)):
            report.lost.append(f"{label}: no {summary_key(transcript.source_key)}")
    for user, expected in expected_by_user.items():
        listed = Counter(listed_job_ids(api_url, user, http))
        report.duplicated.extend(f"job {job_id} listed {n} times" for job_id, n in listed.items() if n > 1)
        report.lost.extend(f"job {job_id} missing from {user}'s list" for job_id in expected - set(listed))


def _object_exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except s3.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] in {"404", "NoSuchKey", "NotFound"}:
            return False
        raise
    return True


def reconcile(
    api_url: str,
    ledger: Ledger,
    *,
    s3: Any,
    bucket: str,
    transcripts_timeout_s: float = 120,
    http: Any = requests,
) -> Report:
    """Everything in the ledger, accounted for; see the module docstring for the rules."""
    messages, transcripts = ledger.read()
    report = Report()
    reconcile_messages(api_url, messages, report, http)
    reconcile_transcripts(
        api_url, transcripts, report, s3=s3, bucket=bucket, timeout_s=transcripts_timeout_s, http=http
    )
    return report
