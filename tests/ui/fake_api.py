"""An in-memory stand-in for the chatbot REST API (and a presigned-POST storage URL), served over real HTTP on
loopback, so the UI and its client are tested end to end. Failures are injected per route with `fail_next`.

Every request and answer of an API route is checked against openapi.json (`OpenApiContract`); what the real
API would not accept or send is recorded in `contract_violations`, which the fixture requires to stay empty."""

from __future__ import annotations

import base64
import email.policy
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from openapi_contract import OpenApiContract

_CONTRACT = OpenApiContract()


@dataclass
class InjectedFailure:
    status: int
    message: str
    retry_after_s: int | None = None
    # As the real API does on a model failure: the user's message is stored, marked unanswered.
    stores_message: bool = False


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeState:
    conversations: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    stored_files: dict[str, bytes] = field(default_factory=dict)
    failures: dict[str, list[InjectedFailure]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    contract_violations: list[str] = field(default_factory=list)
    # Jobs stay "processing" until the test finishes them, to exercise the live status table.
    finish_jobs_on_upload: bool = True
    # GET of one succeeded job carries its turns, as the real API does; off = an API (or summary) without them.
    send_turns: bool = True
    base_url: str = ""
    # Seconds between the words of a streamed answer (Accept: text/event-stream), as a model writing them.
    stream_word_pause_s: float = 0.0
    # A summary made in the background, as the API does for long conversations: POST answers 202, then this many
    # polls (GET) answer 202 before the summary (0: POST answers the summary at once); optionally it then fails.
    summary_pending_polls: int | None = None
    summary_fails_in_background: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


_clock_lock = threading.Lock()
_last_time = [datetime.now(UTC)]


def _now() -> str:
    """Strictly increasing times, so "newest first" is well defined even within one millisecond."""
    with _clock_lock:
        _last_time[0] = max(datetime.now(UTC), _last_time[0] + timedelta(milliseconds=1))
        return _last_time[0].isoformat(timespec="milliseconds")


class FakeApi:
    def __init__(self) -> None:
        self.state = FakeState()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self.state))
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.state.base_url = self.url
        # A short poll interval keeps shutdown (once per test) quick.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def start(self) -> FakeApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def fail_next(self, route: str, failure: InjectedFailure) -> None:
        """route: a route name of _ROUTES ('send', 'retry', 'summarize', 'clear', 'upload', 'put', ...)."""
        self.state.failures.setdefault(route, []).append(failure)

    def add_conversation(self, owner: str, title: str, messages: list[tuple[str, ...]] = ()) -> str:
        conversation_id = uuid.uuid4().hex
        with self.state.lock:
            self.state.conversations[conversation_id] = {
                "id": conversation_id,
                "owner": owner,
                "title": title,
                "created_at": _now(),
                "last_active_at": _now(),
                "message_count": len(messages),
                "expires_at": _expires_at(),
            }
            self.state.messages[conversation_id] = [
                {"seq": seq, "role": role, "content": content, "created_at": _now(), "status": status}
                for seq, (role, content, status) in enumerate((_with_status(message) for message in messages), 1)
            ]
        return conversation_id

    def finish_job(self, job_id: str) -> None:
        with self.state.lock:
            _finish_job(self.state, job_id)

    def requests_to(self, method: str, path_pattern: str) -> list[RecordedRequest]:
        return [r for r in self.state.requests if r.method == method and re.fullmatch(path_pattern, r.path)]


def _expires_at() -> str:
    return (datetime.now(UTC) + timedelta(days=30)).isoformat(timespec="milliseconds")


def _with_status(message: tuple[str, ...]) -> tuple[str, str, str | None]:
    """(role, content) or (role, content, status); user messages default to answered."""
    role, content, *status = message
    return role, content, status[0] if status else ("answered" if role == "user" else None)


def _finish_job(state: FakeState, job_id: str) -> None:
    job = state.jobs[job_id]
    lines = state.stored_files[job_id].decode("utf-8").splitlines()
    turns = [
        {"speaker": speaker.strip(), "text": text.strip()}
        for speaker, text in (line.split(":", 1) for line in lines if ":" in line)
    ]
    speakers = sorted({turn["speaker"] for turn in turns})
    turn_count = len(turns)
    job.update(
        transcript=turns,
        turns_truncated=False,
        status="succeeded",
        updated_at=_now(),
        finished_at=_now(),
        format="plain-text",
        speakers=speakers,
        turns=turn_count,
        chunk_count=1,
        summary=f"{turn_count} turns between {', '.join(speakers)}.",
    )


_ROUTES = [
    ("GET", r"/v1/conversations", "list"),
    ("POST", r"/v1/conversations", "create"),
    ("GET", r"/v1/conversations/(?P<id>[^/]+)", "get"),
    ("PATCH", r"/v1/conversations/(?P<id>[^/]+)", "rename"),
    ("DELETE", r"/v1/conversations/(?P<id>[^/]+)", "delete"),
    ("GET", r"/v1/conversations/(?P<id>[^/]+)/messages", "messages"),
    ("POST", r"/v1/conversations/(?P<id>[^/]+)/messages", "send"),
    ("POST", r"/v1/conversations/(?P<id>[^/]+)/messages/retry", "retry"),
    ("DELETE", r"/v1/conversations/(?P<id>[^/]+)/messages", "clear"),
    ("POST", r"/v1/conversations/(?P<id>[^/]+)/summary", "summarize"),
    ("GET", r"/v1/conversations/(?P<id>[^/]+)/summary", "summary"),
    ("POST", r"/v1/transcripts", "upload"),
    ("GET", r"/v1/transcripts", "jobs"),
    ("GET", r"/v1/transcripts/(?P<id>[^/]+)", "job"),
    ("POST", r"/v1/transcripts/(?P<id>[^/]+)/conversations", "ask"),
    ("POST", r"/storage/(?P<id>[^/]+)", "put"),
]


def _route(method: str, path: str) -> tuple[str, re.Match[str]] | None:
    for route_method, pattern, route in _ROUTES:
        match = re.fullmatch(pattern, path)
        if match and route_method == method:
            return route, match
    return None


def _handler_for(state: FakeState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            self._dispatch()

        def do_POST(self) -> None:
            self._dispatch()

        def do_PATCH(self) -> None:
            self._dispatch()

        def do_PUT(self) -> None:
            self._dispatch()

        def do_DELETE(self) -> None:
            self._dispatch()

        def _dispatch(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body: Any = raw
            if raw and self.headers.get("Content-Type", "").startswith("application/json"):
                body = json.loads(raw)
            with state.lock:
                state.requests.append(RecordedRequest(self.command, url.path, dict(self.headers), body))
            routed = _route(self.command, url.path)
            if routed is None:
                return self._reply(404, {"message": "Not found"})
            route, match = routed
            failures = state.failures.get(route)
            if failures:
                failure = failures.pop(0)
                if failure.stores_message:
                    with state.lock:
                        _store_unanswered(state, match["id"], body["content"])
                headers = {"Retry-After": str(failure.retry_after_s)} if failure.retry_after_s is not None else {}
                return self._reply(failure.status, {"message": failure.message}, headers)
            if route == "put":
                return self._store_file(match["id"], _form_file(self.headers.get("Content-Type", ""), raw))
            user = self._user()
            if user is None:
                return self._reply(401, {"message": "Unauthorized"})
            with state.lock:
                status, payload = _answer(state, route, user, match.groupdict().get("id"), body, parse_qs(url.query))
                streamed = route == "send" and status == 201 and "text/event-stream" in self.headers.get("Accept", "")
                if not streamed:
                    state.contract_violations += _CONTRACT.problems(self.command, url.path, body, status, payload)
            if streamed:
                return self._stream(payload)
            # A background summary: poll the same resource (relative Location), at once in tests.
            self._reply(status, payload, {"Location": "summary", "Retry-After": "0"} if status == 202 else None)

        def _stream(self, exchange: dict[str, Any]) -> None:
            """The exchange as the API's event stream, chunked as the gateway sends it: a delta per word, then done."""
            self.protocol_version = "HTTP/1.1"  # chunked transfer needs it (this response only)
            self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            events = [
                ("delta", {"text": word}) for word in re.findall(r"\s*\S+", exchange["assistant_message"]["content"])
            ]
            for name, data in [*events, ("done", exchange)]:
                event = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                self.wfile.flush()
                if name == "delta":
                    time.sleep(state.stream_word_pause_s)
            self.wfile.write(b"0\r\n\r\n")

        def _user(self) -> str | None:
            """`Bearer local-<user>` as the local gateway, or a JWT's `sub` as the Cognito authorizer (unverified)."""
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            if token.startswith("local-"):
                return token.removeprefix("local-")
            parts = token.split(".")
            if len(parts) != 3:
                return None
            payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
            return payload.get("sub")

        def _store_file(self, job_id: str, content: bytes) -> None:
            with state.lock:
                if job_id not in state.jobs:
                    return self._reply(403, None)
                state.stored_files[job_id] = content
                state.jobs[job_id].update(status="processing", updated_at=_now())
                if state.finish_jobs_on_upload:
                    _finish_job(state, job_id)
            self._reply(200, None)

        def _reply(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _answer(
    state: FakeState, route: str, user: str, item_id: str | None, body: Any, query: dict[str, list[str]]
) -> tuple[int, Any]:
    if route == "list":
        owned = [c for c in state.conversations.values() if c["owner"] == user]
        owned.sort(key=lambda c: c["last_active_at"], reverse=True)
        return 200, {"items": [_public(c) for c in owned], "next_cursor": None}
    if route == "create":
        conversation_id = uuid.uuid4().hex
        conversation = {
            "id": conversation_id,
            "owner": user,
            "title": body.get("title") or "New conversation",
            "created_at": _now(),
            "last_active_at": _now(),
            "message_count": 0,
            "expires_at": _expires_at(),
        }
        state.conversations[conversation_id] = conversation
        state.messages[conversation_id] = []
        return 201, _public(conversation)
    if route in ("upload", "jobs", "job"):
        return _answer_transcripts(state, route, user, item_id, body)
    if route == "ask":
        return _ask_about_call(state, user, item_id)
    conversation = state.conversations.get(item_id)
    if conversation is None or conversation["owner"] != user:
        return 404, {"message": "Conversation not found"}
    messages = state.messages[item_id]
    if route == "get":
        return 200, _public(conversation)
    if route == "rename":
        conversation["title"] = body["title"]
        return 200, _public(conversation)
    if route == "delete":
        del state.conversations[item_id], state.messages[item_id]
        return 204, None
    if route == "messages":
        ordered = messages[::-1] if query.get("order") == ["desc"] else messages
        return 200, {"items": ordered, "next_cursor": None}
    if route == "clear":
        messages.clear()
        conversation.update(message_count=0, last_active_at=_now())
        return 204, None
    if route == "send":
        if messages and messages[-1].get("status") == "unanswered" and messages[-1]["content"] == body["content"]:
            return 201, _answer_question(conversation, messages, messages[-1])  # a retry: answer the stored one
        question = {
            "seq": len(messages) + 1,
            "role": "user",
            "content": body["content"],
            "created_at": _now(),
            "status": "answered",
        }
        messages.append(question)
        return 201, _answer_question(conversation, messages, question)
    if route == "retry":
        if not messages or messages[-1].get("status") != "unanswered":
            return 409, {"message": "The newest message is already answered."}
        return 201, _answer_question(conversation, messages, messages[-1])
    if route == "summarize" and state.summary_pending_polls is not None:
        conversation["summary_polls_left"] = state.summary_pending_polls
        return 202, _pending_summary(item_id)
    if route == "summary":
        if "summary_polls_left" not in conversation:
            return 404, {"message": "No summary was requested for this conversation; POST to request one."}
        if conversation["summary_polls_left"] > 0:
            conversation["summary_polls_left"] -= 1
            return 202, _pending_summary(item_id)
        if state.summary_fails_in_background:
            error = {"code": "summarizer_failed", "message": "The summarizer could not summarize this conversation"}
            return 200, {"conversation_id": item_id, "status": "failed", "requested_at": _now(), "error": error}
    if route in ("summarize", "summary"):
        text = " ".join(m["content"] for m in messages if m["role"] == "user")
        return 200, {
            "conversation_id": item_id,
            "summary": f"The user talked about: {text}",
            "message_count": len(messages),
            "chunk_count": 1,
            "rounds": 1,
            "user_label": "User",
            "assistant_label": "AI",
            "created_at": _now(),
            "cached": False,
        }
    raise AssertionError(route)


def _pending_summary(conversation_id: str) -> dict[str, Any]:
    return {
        "conversation_id": conversation_id,
        "status": "pending",
        "requested_at": _now(),
        "user_label": "User",
        "assistant_label": "AI",
        "retry_after_s": 0,
    }


def _store_unanswered(state: FakeState, conversation_id: str, content: str) -> None:
    messages = state.messages[conversation_id]
    if not (messages and messages[-1].get("status") == "unanswered" and messages[-1]["content"] == content):
        seq = len(messages) + 1
        messages.append({"seq": seq, "role": "user", "content": content, "created_at": _now(), "status": "unanswered"})


def _ask_about_call(state: FakeState, user: str, job_id: str) -> tuple[int, Any]:
    job = state.jobs.get(job_id)
    if job is None or job["owner"] != user:
        return 404, {"message": "Transcript job not found."}
    if job["status"] != "succeeded":
        return 409, {"message": f"The transcript job is {job['status']}: only a summarized call can be asked about."}
    conversation_id = uuid.uuid4().hex
    state.conversations[conversation_id] = {
        "id": conversation_id,
        "owner": user,
        "title": f"About {job['filename']}",
        "created_at": _now(),
        "last_active_at": _now(),
        "message_count": 0,
        "expires_at": _expires_at(),
        "call": {"job_id": job_id, "filename": job["filename"]},
        # What the real API shows the model of a short call: every turn.
        "call_turns": [{"index": index, "speaker": turn["speaker"]} for index, turn in enumerate(job["transcript"])],
    }
    state.messages[conversation_id] = []
    return 201, _public(state.conversations[conversation_id])


def _answer_question(conversation: dict[str, Any], messages: list[dict[str, Any]], question: dict[str, Any]) -> Any:
    question["status"] = "answered"
    answer = {
        "seq": len(messages) + 1,
        "role": "assistant",
        "content": f"You said: {question['content']}",
        "created_at": _now(),
        "reply_to": question["seq"],
    }
    if "call_turns" in conversation:
        answer.update(call_turns=conversation["call_turns"], call_selection=False)
    messages.append(answer)
    conversation.update(message_count=len(messages), last_active_at=_now())
    return {"conversation_id": conversation["id"], "user_message": question, "assistant_message": answer}


def _form_file(content_type: str, raw: bytes) -> bytes | None:
    """The `file` part of a multipart/form-data body (a presigned POST), or None."""
    message = BytesParser(policy=email.policy.HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            return part.get_payload(decode=True)
    return None


def _answer_transcripts(state: FakeState, route: str, user: str, job_id: str | None, body: Any) -> tuple[int, Any]:
    if route == "upload":
        job_id = uuid.uuid4().hex
        state.jobs[job_id] = {
            "job_id": job_id,
            "owner": user,
            "filename": body["filename"],
            "status": "queued",
            "created_at": _now(),
            "updated_at": _now(),
        }
        upload = {
            "url": f"{state.base_url}/storage/{job_id}",
            "method": "POST",
            "fields": {"key": f"incoming/uploads/{job_id}/{body['filename']}", "Content-Type": "text/plain"},
            "content_type": "text/plain",
            "expires_at": _now(),
            "max_bytes": 10**6,
        }
        return 201, {"job": _public(state.jobs[job_id]), "upload": upload}
    if route == "jobs":
        owned = sorted(
            (j for j in state.jobs.values() if j["owner"] == user), key=lambda j: j["created_at"], reverse=True
        )
        listed = [_public(j, drop=("summary", "transcript", "turns_truncated")) for j in owned]
        return 200, {"items": listed, "next_cursor": None}
    job = state.jobs.get(job_id)
    if job is None or job["owner"] != user:
        return 404, {"message": "Job not found"}
    return 200, _public(job, drop=() if state.send_turns else ("transcript", "turns_truncated"))


# Kept by the fake for itself, never sent: who owns an item, and the turns a call conversation's answers cite.
_PRIVATE_FIELDS = ("owner", "call_turns")


def _public(item: dict[str, Any], drop: tuple[str, ...] = ()) -> dict[str, Any]:
    return {name: value for name, value in item.items() if name not in _PRIVATE_FIELDS and name not in drop}
