"""A small typed client for the chatbot REST API (conversations and transcripts), used by the web UI.

Every failure, HTTP or network, surfaces as one `ApiError` carrying the status, the API's own message
and, for throttling, how long to wait, so the UI can show a readable message and offer a retry.
"""

from __future__ import annotations

import email.utils
import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote, urljoin

import requests

NO_RESPONSE = 0  # ApiError.status when the request never got an HTTP answer
STOPPED = 499  # ApiError.status when the person stopped a streamed answer (nginx's "client closed request")
ACCEPTED = 202  # ApiError.status when a background summary is still being made after the client's wait
BACKGROUND_FAILED = 1  # ApiError.status when a background summary failed (the API's message says why)
SUMMARY_WAIT_S = 120.0  # how long summarize() polls a summary being made in the background
MAX_POLL_INTERVAL_S = 5.0

T = TypeVar("T")


@dataclass
class ApiError(Exception):
    status: int
    message: str
    retry_after_s: float | None = None
    field_errors: list[dict[str, Any]] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.status or 'no response'}: {self.message}"

    @property
    def retryable(self) -> bool:
        """Sending the same request again later may succeed (model error, throttling, a concurrent write, a timeout,
        no connection); other errors need a changed request."""
        return self.status in (NO_RESPONSE, 408, 409, 429, STOPPED, 500, 502, 503, 504)


@dataclass(frozen=True)
class Conversation:
    id: str
    title: str
    created_at: str | None = None
    last_active_at: str | None = None
    message_count: int = 0
    system_prompt: str | None = None
    # A conversation about a summarized call: its job and file name.
    call_job_id: str | None = None
    call_filename: str | None = None


@dataclass(frozen=True)
class UsedTurn:
    """A turn of the call an answer was given from."""

    index: int
    speaker: str
    start_s: float | None = None


@dataclass(frozen=True)
class Message:
    role: str
    content: str
    created_at: str | None = None
    # "unanswered": a stored user message whose answer failed; sending it again (or retry_last_message) answers it.
    status: str | None = None
    # An answer about a call: the turns it was given, and whether they were a selection of a longer call.
    call_turns: tuple[UsedTurn, ...] = ()
    call_selection: bool = False

    @property
    def unanswered(self) -> bool:
        return self.status == "unanswered"


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None = None


@dataclass(frozen=True)
class Exchange:
    user_message: Message
    assistant_message: Message


@dataclass(frozen=True)
class Summary:
    text: str
    created_at: str | None = None
    cached: bool = False
    message_count: int = 0


@dataclass(frozen=True)
class UploadTicket:
    """A presigned S3 POST: the form `fields` go first, then the file, with `content_type`, up to `max_bytes`."""

    job_id: str
    upload_url: str
    fields: dict[str, str]
    content_type: str
    max_bytes: int
    expires_at: str | None = None


@dataclass(frozen=True)
class TranscriptTurn:
    speaker: str
    text: str
    start_s: float | None = None  # seconds into the call, where the transcript's format has times


@dataclass(frozen=True)
class TranscriptJob:
    id: str
    status: str
    filename: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    # Set once the job has run: what the pipeline found and, for one job read with get_job, the summary.
    summary: str | None = None
    reason: str | None = None
    last_error: str | None = None
    format: str | None = None
    speakers: list[str] = field(default_factory=list)
    turn_count: int | None = None
    chunk_count: int | None = None
    # For one succeeded job read with get_job: its first turns as the pipeline parsed them (None if not sent).
    transcript: list[TranscriptTurn] | None = None
    turns_truncated: bool = False

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed")


class ChatbotApiClient:
    """Calls the REST API as one signed-in user (`token` is the bearer token: `local-<user>` or a Cognito ID token)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float = 35.0,
        session: requests.Session | None = None,
        summary_wait_s: float = SUMMARY_WAIT_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.summary_wait_s = summary_wait_s
        self._sleep = sleep
        self._token = token
        self._http = session or requests.Session()

    @property
    def token(self) -> str:
        return self._token

    # conversations

    def list_conversations(self, *, cursor: str | None = None, limit: int | None = None) -> Page[Conversation]:
        body = self._call("GET", "/v1/conversations", params=_without_none(cursor=cursor, limit=limit))
        return Page([_conversation(item) for item in body["items"]], body.get("next_cursor"))

    def create_conversation(self, *, title: str | None = None, system_prompt: str | None = None) -> Conversation:
        body = self._call("POST", "/v1/conversations", json=_without_none(title=title, system_prompt=system_prompt))
        return _conversation(body)

    def get_conversation(self, conversation_id: str) -> Conversation:
        return _conversation(self._call("GET", _conversation_path(conversation_id)))

    def rename_conversation(self, conversation_id: str, title: str) -> Conversation:
        return _conversation(self._call("PATCH", _conversation_path(conversation_id), json={"title": title}))

    def delete_conversation(self, conversation_id: str) -> None:
        self._call("DELETE", _conversation_path(conversation_id))

    def list_messages(
        self,
        conversation_id: str,
        *,
        cursor: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> Page[Message]:
        params = _without_none(cursor=cursor, limit=limit, order="desc" if newest_first else None)
        body = self._call("GET", _conversation_path(conversation_id, "messages"), params=params)
        return Page([_message(item) for item in body["items"]], body.get("next_cursor"))

    def send_message(self, conversation_id: str, content: str, *, idempotency_key: str | None = None) -> Exchange:
        """Send one user message and wait for the answer. Retrying with the same `idempotency_key` and text never
        stores the message twice: the API answers the stored one."""
        headers = {"Idempotency-Key": idempotency_key or new_idempotency_key()}
        body = self._call(
            "POST", _conversation_path(conversation_id, "messages"), json={"content": content}, headers=headers
        )
        return _exchange(body)

    def stream_message(
        self, conversation_id: str, content: str, *, idempotency_key: str | None = None
    ) -> Iterator[str]:
        """`send_message`, with the answer's text yielded as the model writes it (Server-Sent Events). A failure
        before the first piece or mid-stream raises ApiError; closing the iterator drops the connection, which
        leaves the message unanswered on the server (a resend with the same key answers it)."""
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Accept": "text/event-stream",
            "Idempotency-Key": idempotency_key or new_idempotency_key(),
        }
        url = self.base_url + _conversation_path(conversation_id, "messages")
        try:
            response = self._http.post(
                url, json={"content": content}, headers=headers, timeout=self.timeout_s, stream=True
            )
        except requests.Timeout as error:
            raise ApiError(NO_RESPONSE, "The API did not answer in time.") from error
        except requests.RequestException as error:
            raise ApiError(NO_RESPONSE, f"Could not reach the API at {self.base_url}.") from error
        with response:
            if response.status_code >= 400:
                raise _error_from_response(response)
            if not response.headers.get("Content-Type", "").startswith("text/event-stream"):
                yield _exchange(response.json()).assistant_message.content  # a server that does not stream
                return
            try:
                yield from _sse_text(response)
            except requests.RequestException as error:
                raise ApiError(NO_RESPONSE, "The answer stopped arriving before it was complete.") from error

    def retry_last_message(self, conversation_id: str) -> Exchange:
        """Answer the conversation's newest message when the model failed on it (it is stored as unanswered)."""
        return _exchange(self._call("POST", _conversation_path(conversation_id, "messages", "retry")))

    def clear_messages(self, conversation_id: str) -> None:
        self._call("DELETE", _conversation_path(conversation_id, "messages"))

    def summarize(self, conversation_id: str) -> Summary:
        """The conversation's summary. A long conversation's is made in the background (202): it is polled at its
        Location every Retry-After seconds until ready, failed (ApiError BACKGROUND_FAILED) or `summary_wait_s`
        passed (ApiError ACCEPTED: asking again later returns it)."""
        url = self.base_url + _conversation_path(conversation_id, "summary")
        response, body = self._request("POST", url)
        deadline = time.monotonic() + self.summary_wait_s
        while response.status_code == ACCEPTED:
            if time.monotonic() >= deadline:
                raise ApiError(ACCEPTED, "The summary is still being made; ask for it again in a minute")
            wait_s = parse_retry_after(response.headers.get("Retry-After"))
            self._sleep(min(1.0 if wait_s is None else wait_s, MAX_POLL_INTERVAL_S))
            response, body = self._request("GET", urljoin(response.url, response.headers.get("Location", url)))
        if body.get("status") == "failed":
            raise ApiError(BACKGROUND_FAILED, str(body["error"]["message"]))
        return _summary(body)

    # transcripts

    def ask_about_call(self, job_id: str) -> Conversation:
        """A new conversation about one of the caller's summarized calls."""
        return _conversation(self._call("POST", f"/v1/transcripts/{quote(job_id, safe='')}/conversations"))

    def request_upload(self, filename: str) -> UploadTicket:
        """A queued job and a presigned S3 POST for the file; the job starts when the file lands."""
        body = self._call("POST", "/v1/transcripts", json={"filename": filename})
        upload = body["upload"]
        return UploadTicket(
            job_id=str(body["job"]["job_id"]),
            upload_url=str(upload["url"]),
            fields={str(name): str(value) for name, value in upload["fields"].items()},
            content_type=str(upload["content_type"]),
            max_bytes=int(upload["max_bytes"]),
            expires_at=upload.get("expires_at"),
        )

    def upload_file(self, ticket: UploadTicket, content: bytes) -> None:
        """POST the file with the presigned form (no bearer token: the signed policy is the authorization; S3
        refuses a file over `max_bytes` or of another content type)."""
        if len(content) > ticket.max_bytes:
            raise ApiError(413, f"The file is {len(content):,} bytes; the limit is {ticket.max_bytes:,} bytes.")
        try:
            # The policy's fields first, the file last, as S3 requires.
            response = self._http.post(
                ticket.upload_url,
                data=ticket.fields,
                files={"file": ("transcript", content, ticket.content_type)},
                timeout=self.timeout_s,
            )
        except requests.RequestException as error:
            raise ApiError(NO_RESPONSE, f"Could not upload the file to storage ({type(error).__name__}).") from error
        if response.status_code >= 300:
            raise ApiError(response.status_code, f"Storage refused the upload: {_s3_error_message(response)}")

    def list_jobs(self, *, cursor: str | None = None, limit: int | None = None) -> Page[TranscriptJob]:
        body = self._call("GET", "/v1/transcripts", params=_without_none(cursor=cursor, limit=limit))
        return Page([_job(item) for item in body["items"]], body.get("next_cursor"))

    def get_job(self, job_id: str) -> TranscriptJob:
        """One job; once it succeeded, with its summary."""
        return _job(self._call("GET", f"/v1/transcripts/{quote(job_id, safe='')}"))

    # transport

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        return self._request(method, self.base_url + path, json=json, params=params, headers=headers)[1]

    def _request(
        self,
        method: str,
        url: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[requests.Response, dict[str, Any]]:
        """The response and its JSON object body ({} when empty); an error status raises ApiError."""
        request_headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json", **(headers or {})}
        try:
            response = self._http.request(
                method,
                url,
                json=json,
                params=params,
                headers=request_headers,
                timeout=self.timeout_s,
            )
        except requests.Timeout as error:
            raise ApiError(NO_RESPONSE, "The API did not answer in time.") from error
        except requests.RequestException as error:
            raise ApiError(NO_RESPONSE, f"Could not reach the API at {self.base_url}.") from error
        if response.status_code >= 400:
            raise _error_from_response(response)
        if response.status_code == 204 or not response.content:
            return response, {}
        try:
            body = response.json()
        except ValueError as error:
            raise ApiError(response.status_code, "The API answered with something that is not JSON.") from error
        if not isinstance(body, dict):
            raise ApiError(response.status_code, "The API answered with an unexpected body.")
        return response, body


def _sse_text(response: requests.Response) -> Iterator[str]:
    """The `delta` texts of an event stream, until `done`; an `error` event raises it as ApiError."""
    event, data = None, None
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith("event: "):
            event = line[len("event: ") :]
        elif line.startswith("data: "):
            data = json.loads(line[len("data: ") :])
        elif not line and event is not None:
            if event == "delta":
                yield data["text"]
            elif event == "done":
                return
            elif event == "error":
                raise ApiError(int(data["error"]["code"]), str(data["error"]["message"]))
            event, data = None, None
    raise ApiError(NO_RESPONSE, "The answer stopped before it was complete.")


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


def _error_from_response(response: requests.Response) -> ApiError:
    message = None
    field_errors: list[dict[str, Any]] = []
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = body.get("message") or body.get("Message") or body.get("error")
        raw_errors = body.get("errors") or body.get("detail")
        if isinstance(raw_errors, list):
            field_errors = [error for error in raw_errors if isinstance(error, dict)]
    return ApiError(
        status=response.status_code,
        message=str(message or response.reason or "request failed"),
        retry_after_s=parse_retry_after(response.headers.get("Retry-After")),
        field_errors=field_errors,
    )


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After is either delay seconds or an HTTP date (RFC 9110 section 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _s3_error_message(response: requests.Response) -> str:
    # S3 answers errors in XML: <Error><Code>..</Code><Message>..</Message></Error>
    text = response.text
    start, end = text.find("<Message>"), text.find("</Message>")
    if 0 <= start < end:
        return text[start + len("<Message>") : end]
    return f"HTTP {response.status_code} {response.reason}"


def _without_none(**values: Any) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def _conversation_path(conversation_id: str, *child: str) -> str:
    return "/".join(["/v1/conversations", quote(conversation_id, safe=""), *child])


def _conversation(item: Mapping[str, Any]) -> Conversation:
    return Conversation(
        id=str(item["id"]),
        title=item.get("title") or "Untitled conversation",
        created_at=item.get("created_at"),
        last_active_at=item.get("last_active_at"),
        message_count=int(item.get("message_count") or 0),
        system_prompt=item.get("system_prompt"),
        call_job_id=(item.get("call") or {}).get("job_id"),
        call_filename=(item.get("call") or {}).get("filename"),
    )


def _message(item: Mapping[str, Any]) -> Message:
    return Message(
        role=str(item["role"]),
        content=str(item["content"]),
        created_at=item.get("created_at"),
        status=item.get("status"),
        call_turns=tuple(
            UsedTurn(int(turn["index"]), str(turn["speaker"]), turn.get("start_s"))
            for turn in item.get("call_turns") or []
        ),
        call_selection=bool(item.get("call_selection")),
    )


def _exchange(body: Mapping[str, Any]) -> Exchange:
    return Exchange(user_message=_message(body["user_message"]), assistant_message=_message(body["assistant_message"]))


def _summary(body: Mapping[str, Any]) -> Summary:
    return Summary(
        text=str(body["summary"]),
        created_at=body.get("created_at"),
        cached=bool(body.get("cached", False)),
        message_count=int(body.get("message_count") or 0),
    )


def _job(item: Mapping[str, Any]) -> TranscriptJob:
    return TranscriptJob(
        id=str(item["job_id"]),
        status=str(item["status"]),
        filename=item.get("filename"),
        created_at=item.get("created_at"),
        updated_at=item.get("finished_at") or item.get("updated_at"),
        summary=item.get("summary"),
        reason=item.get("reason"),
        last_error=item.get("last_error"),
        format=item.get("format"),
        speakers=list(item.get("speakers") or []),
        turn_count=item.get("turns"),
        chunk_count=item.get("chunk_count"),
        transcript=_transcript(item.get("transcript")),
        turns_truncated=bool(item.get("turns_truncated")),
    )


def _transcript(turns: Any) -> list[TranscriptTurn] | None:
    if not isinstance(turns, list):
        return None
    return [
        TranscriptTurn(speaker=str(turn["speaker"]), text=str(turn["text"]), start_s=turn.get("start_s"))
        for turn in turns
        if isinstance(turn, Mapping) and "speaker" in turn and "text" in turn
    ]
