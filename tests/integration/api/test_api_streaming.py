"""Streamed answers over real HTTP: an SSE client reads the local gateway's chunked response, which the streaming
function's own environment produces from the local endpoint's InvokeEndpointWithResponseStream."""

import json
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest
import requests
from conftest import FAIL_MARKER, MID_STREAM_FAIL_MARKER, SLOW_STREAM_MARKER
from rest_helpers import TIMEOUT, auth, create_conversation, list_messages, new_user

pytestmark = pytest.mark.integration


def _read_sse(response: requests.Response) -> list[tuple[str, dict, float]]:
    """(event, data, seconds since the request) per event, parsed line by line as the bytes arrive."""
    started, events, fields = time.perf_counter(), [], {}
    for line in response.iter_lines(decode_unicode=True):
        if line:
            name, _, value = line.partition(": ")
            fields[name] = value
        elif fields:
            events.append((fields["event"], json.loads(fields["data"]), time.perf_counter() - started))
            fields = {}
    return events


def _stream(api: str, user: str, conversation_id: str, content: str, **headers: str) -> requests.Response:
    return requests.post(
        f"{api}/v1/conversations/{conversation_id}/messages",
        json={"content": content},
        headers=auth(user, Accept="text/event-stream", **headers),
        stream=True,
        timeout=TIMEOUT,
    )


def test_an_sse_client_reads_deltas_then_done_and_they_match_what_is_stored(api):
    user = new_user()
    conversation_id = create_conversation(api, user)
    # When the client asks for an event stream
    with _stream(api, user, conversation_id, f"{SLOW_STREAM_MARKER} Where is my parcel?") as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        assert response.headers.get("Transfer-Encoding") == "chunked"
        events = _read_sse(response)
    # Then deltas arrive one by one, well before the end, and exactly one done closes the stream
    names = [name for name, _, _ in events]
    assert names.count("done") == 1 and names[-1] == "done" and set(names[:-1]) == {"delta"}
    assert events[0][2] < events[-1][2] - 0.5, "the first delta came only with the whole answer"
    text = "".join(data["text"] for name, data, _ in events if name == "delta")
    done = events[-1][1]
    # And the deltas, joined, are the stored answer; done is what the buffered route returns
    stored = list_messages(api, user, conversation_id)
    assert [(m["role"], m["content"]) for m in stored][1] == ("assistant", text)
    assert done["assistant_message"] == stored[1] and done["user_message"]["status"] == "answered"


def test_without_the_header_the_route_is_unchanged(api):
    user = new_user()
    conversation_id = create_conversation(api, user)
    response = requests.post(
        f"{api}/v1/conversations/{conversation_id}/messages", json={"content": "Hi"}, headers=auth(user), timeout=30
    )
    assert response.status_code == 201 and response.headers["Content-Type"] == "application/json"
    assert response.json()["assistant_message"]["role"] == "assistant"


def test_failures_before_the_first_byte_are_ordinary_http_errors(api):
    user = new_user()
    conversation_id = create_conversation(api, user)
    # A model that fails before its first piece: the buffered route's 502 JSON
    with _stream(api, user, conversation_id, f"{FAIL_MARKER} hello") as response:
        assert response.status_code == 502 and "saved" in response.json()["message"]
    # Someone else's conversation: 404; no token: 401 from the gateway's authorizer
    with _stream(api, new_user(), conversation_id, "hello") as response:
        assert response.status_code == 404
    response = requests.post(
        f"{api}/v1/conversations/{conversation_id}/messages",
        json={"content": "x"},
        headers={"Accept": "text/event-stream"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 401


def test_a_model_error_mid_stream_ends_with_an_error_event_and_retry_answers(api):
    user = new_user()
    conversation_id = create_conversation(api, user)
    with _stream(api, user, conversation_id, f"{MID_STREAM_FAIL_MARKER} tell me") as response:
        assert response.status_code == 200
        events = _read_sse(response)
    # Then some text came, then one error event with the buffered route's status, and no done
    assert events[0][0] == "delta"
    assert events[-1][0] == "error" and events[-1][1]["error"]["code"] == 502
    assert "done" not in [name for name, _, _ in events]
    # And the message is unanswered, with no partial answer stored; messages/retry answers it
    assert [(m["role"], m["status"]) for m in list_messages(api, user, conversation_id)] == [("user", "unanswered")]
    retried = requests.post(
        f"{api}/v1/conversations/{conversation_id}/messages/retry", headers=auth(user), timeout=TIMEOUT
    )
    assert retried.status_code == 201, retried.text
    assert [m["role"] for m in list_messages(api, user, conversation_id)] == ["user", "assistant"]


def test_a_client_that_disconnects_mid_stream_leaves_the_message_unanswered(api):
    user = new_user()
    conversation_id = create_conversation(api, user)
    # Given a client that reads the first delta of a slow answer, then drops the connection
    address = urlsplit(api)
    body = json.dumps({"content": f"{SLOW_STREAM_MARKER} a long story please"}).encode()
    with socket.create_connection((address.hostname, address.port), timeout=TIMEOUT) as connection:
        connection.sendall(
            f"POST /v1/conversations/{conversation_id}/messages HTTP/1.1\r\nHost: {address.netloc}\r\n"
            f"Authorization: Bearer local-{user}\r\nAccept: text/event-stream\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        received = b""
        while b"event: delta" not in received:
            received += connection.recv(4096)
        assert received.startswith(b"HTTP/1.1 200")
    # Then the turn is left unanswered (no partial answer stored) once the function notices
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        messages = list_messages(api, user, conversation_id)
        if messages[0]["status"] == "unanswered":
            break
        time.sleep(0.2)
    assert [(m["role"], m["status"]) for m in messages] == [("user", "unanswered")]
    # And messages/retry answers it
    retried = requests.post(
        f"{api}/v1/conversations/{conversation_id}/messages/retry", headers=auth(user), timeout=TIMEOUT
    )
    assert retried.status_code == 201, retried.text


def test_an_idempotent_resend_streams_the_stored_exchange_as_one_delta_plus_done(api):
    user = new_user()
    conversation_id = create_conversation(api, user)
    with _stream(api, user, conversation_id, "Refund status?", **{"Idempotency-Key": "key-1"}) as response:
        first = _read_sse(response)
    # When the same request is resent with the same key
    with _stream(api, user, conversation_id, "Refund status?", **{"Idempotency-Key": "key-1"}) as response:
        again = _read_sse(response)
    # Then it is one delta with the whole stored answer, and the same done; nothing was stored twice
    assert [(name, data) for name, data, _ in again] == [
        ("delta", {"text": first[-1][1]["assistant_message"]["content"]}),
        ("done", first[-1][1]),
    ]
    assert len(list_messages(api, user, conversation_id)) == 2


def test_streamed_and_buffered_sends_racing_on_one_conversation_lose_nothing(api):
    user = new_user()
    conversation_id = create_conversation(api, user)
    results: list = []

    def send(index: int) -> None:
        content = f"message {index}"
        if index % 2:
            with _stream(api, user, conversation_id, content) as response:
                results.append((content, response.status_code, _read_sse(response)[-1][0]))
        else:
            response = requests.post(
                f"{api}/v1/conversations/{conversation_id}/messages",
                json={"content": content},
                headers=auth(user),
                timeout=TIMEOUT,
            )
            results.append((content, response.status_code, "buffered"))

    threads = [threading.Thread(target=send, args=(index,)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then every send succeeded, and reconciliation finds each question once, each followed by its own answer
    assert sorted(status for _, status, _ in results) == [200, 200, 200, 201, 201, 201]
    assert {last for _, _, last in results} == {"done", "buffered"}
    messages = list_messages(api, user, conversation_id)
    questions = [m for m in messages if m["role"] == "user"]
    assert sorted(m["content"] for m in questions) == sorted(content for content, _, _ in results)
    assert all(m["status"] == "answered" for m in questions)
    for question in questions:
        answers = [m for m in messages if m["role"] == "assistant" and m["reply_to"] == question["seq"]]
        assert len(answers) == 1 and answers[0]["seq"] == question["seq"] + 1
