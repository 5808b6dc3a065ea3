"""POST messages with `Accept: text/event-stream`: the streaming function's handler, fed sample events, its
endpoint calls answered with event-stream bytes parsed by botocore itself."""

import json

import pytest
from api_event_helpers import call, sample_event
from chatbot.response_stream import DELIMITER, integration_stream
from chatbot.wiring import conversations_service

from local.endpoint.eventstream import exception_event, payload_part

SSE = {"Accept": "text/event-stream"}


def _chunk(text: str) -> bytes:
    choice = {"index": 0, "delta": {"content": text}, "finish_reason": None}
    return payload_part(json.dumps({"object": "chat.completion.chunk", "choices": [choice]}).encode() + b"\n")


def _answer(*pieces: str) -> list[bytes]:
    return [_chunk(piece) for piece in pieces]


@pytest.fixture
def stream_module(moto_table, load_handler, monkeypatch, sagemaker_runtime):
    module = load_handler("ConversationsStreamFunction")
    monkeypatch.setattr(module, "service", conversations_service(module.settings, sagemaker_runtime=sagemaker_runtime))
    return module


@pytest.fixture
def conversation_id(stream_module, lambda_context) -> str:
    status, _, body = call(stream_module, sample_event("create-conversation"), lambda_context)
    assert status == 201
    return body["id"]


def _send(module, context, conversation_id, content="Why two charges?", headers=None) -> dict:
    event = sample_event("send-message", conversation_id, {"content": content}, headers={**SSE, **(headers or {})})
    return module.lambda_handler(event, context)


def _events(body) -> list[tuple[str, dict]]:
    """Parse SSE text as a client does: events separated by a blank line, `event:` and `data:` fields."""
    parsed = []
    for block in "".join(body).split("\n\n"):
        if block:
            fields = dict(line.split(": ", 1) for line in block.split("\n"))
            parsed.append((fields["event"], json.loads(fields["data"])))
    return parsed


def _messages(module, context, conversation_id) -> list[tuple[str, str]]:
    _, _, body = call(module, sample_event("list-messages", conversation_id), context)
    return [(m["role"], m.get("status") or m["content"]) for m in body["items"]]


def test_deltas_then_one_done_with_the_buffered_routes_json(
    stream_module, lambda_context, conversation_id, sagemaker_runtime, stream_answers
):
    stream_answers(sagemaker_runtime, _answer("Let me ", "check ", "that."))
    # When Alice sends a message asking for an event stream
    response = _send(stream_module, lambda_context, conversation_id)
    # Then the response is a 200 event stream of deltas then exactly one done
    assert response["statusCode"] == 200
    assert response["multiValueHeaders"]["Content-Type"] == ["text/event-stream"]
    events = _events(response["body"])
    assert [name for name, _ in events] == ["delta", "delta", "delta", "done"]
    text = "".join(data["text"] for name, data in events if name == "delta")
    done = events[-1][1]
    # And the deltas join to the stored answer, which done carries as the buffered route returns it
    assert text == "Let me check that." == done["assistant_message"]["content"]
    assert set(done) == {"conversation_id", "user_message", "assistant_message"}
    assert _messages(stream_module, lambda_context, conversation_id) == [("user", "answered"), ("assistant", text)]


def test_a_failure_before_the_first_byte_is_an_ordinary_http_error(
    stream_module, lambda_context, conversation_id, sagemaker_runtime, stream_answers
):
    # Given the model refuses before sending any text
    stream_answers(sagemaker_runtime, [exception_event("ModelStreamError", "CUDA error", "StreamBroken")])
    # When streaming, Then the answer is the buffered route's 502 JSON, and the message waits for a retry
    status, _, body = call(stream_module, _event_with_sse(conversation_id), lambda_context)
    assert status == 502 and "saved" in body["message"]
    assert _messages(stream_module, lambda_context, conversation_id) == [("user", "unanswered")]
    # And someone else's conversation is a 404, not a stream
    status, _, _ = call(stream_module, _event_with_sse(conversation_id, user="mallory"), lambda_context)
    assert status == 404


def _event_with_sse(conversation_id, user=None) -> dict:
    return sample_event("send-message", conversation_id, {"content": "Hi"}, user=user, headers=SSE)


def test_a_model_error_mid_stream_is_an_error_event_and_retry_answers(
    stream_module, lambda_context, conversation_id, sagemaker_runtime, stream_answers
):
    stream_answers(
        sagemaker_runtime,
        [*_answer("Partial "), exception_event("ModelStreamError", "CUDA error", "StreamBroken")],
        _answer("Whole answer."),
    )
    # When the model fails after its first piece
    events = _events(_send(stream_module, lambda_context, conversation_id)["body"])
    # Then the stream ends with one error event carrying the buffered route's status and message
    assert events[0] == ("delta", {"text": "Partial "})
    assert events[-1][0] == "error" and events[-1][1]["error"]["code"] == 502
    assert [name for name, _ in events].count("done") == 0
    # And the partial text is not stored; sending the text again answers that message (retry: the service tests)
    assert _messages(stream_module, lambda_context, conversation_id) == [("user", "unanswered")]
    events = _events(_send(stream_module, lambda_context, conversation_id)["body"])
    assert events[-1][1]["assistant_message"] == {**events[-1][1]["assistant_message"], "content": "Whole answer."}
    assert _messages(stream_module, lambda_context, conversation_id) == [
        ("user", "answered"),
        ("assistant", "Whole answer."),
    ]


def test_a_client_gone_mid_stream_leaves_the_message_unanswered(
    stream_module, lambda_context, conversation_id, sagemaker_runtime, stream_answers
):
    stream_answers(sagemaker_runtime, _answer("one ", "two ", "three"))
    body = _send(stream_module, lambda_context, conversation_id)["body"]
    # When the reader stops after the first event (the runtime closes the body)
    next(body)
    body.close()
    # Then no answer is stored and the message waits for a retry
    assert _messages(stream_module, lambda_context, conversation_id) == [("user", "unanswered")]


def test_an_idempotent_resend_of_a_finished_exchange_is_one_delta_plus_done(
    stream_module, lambda_context, conversation_id, sagemaker_runtime, stream_answers
):
    requests = stream_answers(sagemaker_runtime, _answer("Let me ", "check."))
    first = _events(_send(stream_module, lambda_context, conversation_id, headers={"Idempotency-Key": "k1"})["body"])
    # When the same request is resent with the same key
    again = _events(_send(stream_module, lambda_context, conversation_id, headers={"Idempotency-Key": "k1"})["body"])
    # Then it is the stored answer as one delta, and the same done; the model was asked once
    assert again == [("delta", {"text": "Let me check."}), first[-1]]
    assert len(requests) == 1


def test_the_response_leaves_in_api_gateways_stream_format(
    stream_module, lambda_context, conversation_id, sagemaker_runtime, stream_answers
):
    stream_answers(sagemaker_runtime, _answer("Hi ", "there."))
    # When the runtime sends the handler's response
    chunks = list(integration_stream(_send(stream_module, lambda_context, conversation_id)))
    # Then the metadata JSON and 8 NUL bytes come first, then each event as its own chunk
    metadata, rest = chunks[0].split(DELIMITER)
    assert json.loads(metadata)["statusCode"] == 200 and rest == b""
    assert chunks[1].startswith(b"event: delta\n") and chunks[-1].startswith(b"event: done\n")
    # And a buffered answer (no Accept header) is the metadata then the whole JSON body
    buffered = call(stream_module, sample_event("get-conversation", conversation_id), lambda_context)
    assert buffered[0] == 200
    response = stream_module.lambda_handler(sample_event("get-conversation", conversation_id), lambda_context)
    metadata_chunk, body_chunk = list(integration_stream(response))
    assert json.loads(body_chunk)["id"] == conversation_id and metadata_chunk.endswith(DELIMITER)
