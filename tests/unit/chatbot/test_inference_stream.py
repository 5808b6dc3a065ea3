"""chat_stream against botocore's own event-stream parser: the bytes are framed by the local endpoint's encoder
and handed to botocore as the HTTP response, so parsing, PayloadParts and in-stream exceptions are real."""

import json

import boto3
import pytest
from chatbot.inference import InferenceClient, ModelInvocationError, ModelUnavailableError

from local.endpoint.eventstream import exception_event, payload_part


@pytest.fixture
def client_answering(stream_answers):
    """An InferenceClient whose one streamed call answers `events`; the requests it sends are in `.sent`."""

    def build(*events: bytes) -> InferenceClient:
        runtime = boto3.client(
            "sagemaker-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
        )
        client = InferenceClient("genai-chatbot", "chat", "summarizer", runtime)
        client.sent = stream_answers(runtime, list(events))
        return client

    return build


def _chunk(text: str, finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": finish}
    return json.dumps({"id": "c1", "object": "chat.completion.chunk", "choices": [choice]}).encode() + b"\n"


def _stream(client: InferenceClient) -> list[str]:
    return list(client.chat_stream([{"role": "user", "content": "Hi"}], max_new_tokens=16, temperature=0.2))


def test_lmi_chunks_become_text_deltas_and_the_request_asks_to_stream(client_answering):
    # Given the component streams LMI's jsonlines: a role chunk, pieces, a finish chunk, usage, an empty line
    role = json.dumps({"object": "chat.completion.chunk", "choices": [{"delta": {"role": "assistant", "content": ""}}]})
    usage = json.dumps({"object": "chat.completion.chunk", "choices": [], "usage": {"total_tokens": 3}})
    parts = [role.encode() + b"\n", _chunk("Hel"), _chunk("lo"), _chunk("", "stop"), usage.encode() + b"\n", b"\n"]
    client = client_answering(*(payload_part(part) for part in parts))
    # When streaming a chat
    deltas = _stream(client)
    # Then only the text pieces come out, in order, from a streamed messages request
    assert deltas == ["Hel", "lo"]
    sent = json.loads(client.sent[0].body)
    assert sent["stream"] is True and sent["max_tokens"] == 16 and sent["temperature"] == 0.2
    assert client.sent[0].url.endswith("/invocations-response-stream")


def test_a_line_split_across_payload_parts_is_joined_before_parsing(client_answering):
    # Given SageMaker cut one chunk line in three parts and put two lines in one part
    line = _chunk("split piece")
    parts = [line[:10], line[10:25], line[25:] + _chunk(" and more")]
    client = client_answering(*(payload_part(part) for part in parts))
    # When streaming, Then the lines are read whole
    assert _stream(client) == ["split piece", " and more"]


def test_an_answer_in_one_piece_is_one_delta(client_answering):
    # Given a component that answers the whole chat completion as one JSON object (no trailing newline)
    body = json.dumps({"choices": [{"message": {"role": "assistant", "content": "All at once"}}]}).encode()
    client = client_answering(payload_part(body))
    # When streaming, Then the answer is a single delta
    assert _stream(client) == ["All at once"]


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (exception_event("ModelStreamError", "CUDA out of memory", "StreamBroken"), ModelInvocationError),
        (
            exception_event("ModelStreamError", "Model invocation timed out", "ModelInvocationTimeExceeded"),
            ModelUnavailableError,
        ),
        (exception_event("InternalStreamFailure", "endpoint failed"), ModelUnavailableError),
    ],
    ids=["model-error", "model-timeout", "internal-failure"],
)
def test_an_exception_mid_stream_is_the_buffered_calls_domain_error(client_answering, event, expected):
    # Given a stream that fails after its first piece
    client = client_answering(payload_part(_chunk("partial")), event)
    stream = client.chat_stream([{"role": "user", "content": "Hi"}], max_new_tokens=16)
    # When reading it, Then the piece arrives, then the failure as the buffered call's error class
    assert next(stream) == "partial"
    with pytest.raises(expected):
        next(stream)


def test_a_line_that_is_not_json_is_a_model_error(client_answering):
    client = client_answering(payload_part(b"<html>oops</html>\n"))
    with pytest.raises(ModelInvocationError, match="not JSON"):
        _stream(client)


def test_a_refusal_before_the_stream_raises_on_first_read():
    # Given an endpoint URL where nothing listens
    runtime = boto3.client(
        "sagemaker-runtime",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    client = InferenceClient("e", "chat", "summarizer", runtime)
    # When starting the stream, Then the caller is told to come back later before any text
    with pytest.raises(ModelUnavailableError):
        next(client.chat_stream([{"role": "user", "content": "x"}], max_new_tokens=8))
