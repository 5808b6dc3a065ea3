import io
import json

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from chatbot.inference import (
    NO_CAPACITY_RETRY_AFTER_S,
    InferenceClient,
    InputTooLongError,
    ModelInvocationError,
    ModelUnavailableError,
)


def _body(value) -> StreamingBody:
    raw = json.dumps(value).encode() if not isinstance(value, bytes) else value
    return StreamingBody(io.BytesIO(raw), len(raw))


@pytest.fixture
def runtime():
    client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def _client(runtime_client) -> InferenceClient:
    return InferenceClient("genai-chatbot", "chat", "summarizer", runtime_client)


@pytest.mark.parametrize(
    "answer",
    [
        {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi there"}}]},
        {"role": "assistant", "content": "Hi there"},
        [{"generated_text": "Hi there"}],
    ],
    ids=["chat-completions", "seed-chat-form", "lmi-plain"],
)
def test_chat_reads_every_answer_form(runtime, answer):
    client, stubber = runtime
    # Given the chat component answers in one of the forms it may speak
    expected = {
        "EndpointName": "genai-chatbot",
        "InferenceComponentName": "chat",
        "ContentType": "application/json",
        "Accept": "application/json",
        "Body": ANY,
    }
    stubber.add_response("invoke_endpoint", {"Body": _body(answer)}, expected)
    # When we chat
    text = _client(client).chat([{"role": "user", "content": "Hello"}], max_new_tokens=32, temperature=0.5)
    # Then the answer text comes back
    assert text == "Hi there"


def test_chat_sends_messages_and_generation_parameters(runtime):
    client, stubber = runtime
    # Given a stub that checks the exact body
    payload = {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 64, "temperature": 0.1}
    expected = {
        "EndpointName": "genai-chatbot",
        "InferenceComponentName": "chat",
        "ContentType": "application/json",
        "Accept": "application/json",
        "Body": json.dumps(payload).encode(),
    }
    stubber.add_response("invoke_endpoint", {"Body": _body({"content": "ok"})}, expected)
    # When chatting, Then the OpenAI-style payload carries the generation parameters
    assert _client(client).chat(payload["messages"], max_new_tokens=64, temperature=0.1) == "ok"


def test_summarize_batches_all_texts_in_one_call(runtime):
    client, stubber = runtime
    expected = {
        "EndpointName": "genai-chatbot",
        "InferenceComponentName": "summarizer",
        "ContentType": "application/json",
        "Accept": "application/json",
        "Body": json.dumps({"inputs": ["a: one", "b: two"], "parameters": {"max_length": 60}}).encode(),
    }
    stubber.add_response("invoke_endpoint", {"Body": _body([{"summary_text": "1"}, {"summary_text": "2"}])}, expected)
    assert _client(client).summarize(["a: one", "b: two"], max_length=60) == ["1", "2"]


def test_summarize_rejects_a_count_mismatch(runtime):
    client, stubber = runtime
    stubber.add_response("invoke_endpoint", {"Body": _body([{"summary_text": "only one"}])})
    with pytest.raises(ModelInvocationError, match="2 input"):
        _client(client).summarize(["x", "y"])


def test_summarize_of_nothing_makes_no_call(runtime):
    client, _ = runtime
    assert _client(client).summarize([]) == []


@pytest.mark.parametrize(
    ("code", "status", "message", "expected", "retry_after"),
    [
        ("ModelError", 424, "Received client error (500) from primary", ModelInvocationError, None),
        ("ModelNotReadyException", 429, "not ready", ModelUnavailableError, 5),
        ("ServiceUnavailable", 503, "busy", ModelUnavailableError, 5),
        (
            "ValidationError",
            400,
            "Inference Component has no capacity to process this request.",
            ModelUnavailableError,
            NO_CAPACITY_RETRY_AFTER_S,
        ),
        ("ValidationError", 400, "Input is too long: 1500 tokens, the limit is 1024", InputTooLongError, None),
        ("ModelError", 424, "Your invocation timed out while waiting for a response", ModelUnavailableError, 5),
        ("ValidationError", 400, "Endpoint genai-chatbot not found.", ModelInvocationError, None),
    ],
)
def test_endpoint_errors_become_domain_errors(runtime, code, status, message, expected, retry_after):
    client, stubber = runtime
    # Given the endpoint answers with one of SageMaker's error shapes
    stubber.add_client_error(
        "invoke_endpoint", service_error_code=code, service_message=message, http_status_code=status
    )
    # When chatting
    with pytest.raises(expected) as error:
        _client(client).chat([{"role": "user", "content": "x"}], max_new_tokens=8)
    # Then it is classified for the API (502 / 503 + Retry-After) and the batch job (retry or not)
    if retry_after is not None:
        assert error.value.retry_after_s == retry_after


def test_unreadable_answer_is_a_model_error(runtime):
    client, stubber = runtime
    stubber.add_response("invoke_endpoint", {"Body": _body(b"<html>oops</html>")})
    with pytest.raises(ModelInvocationError, match="not JSON"):
        _client(client).chat([{"role": "user", "content": "x"}], max_new_tokens=8)


def test_unreachable_endpoint_is_unavailable():
    # Given an endpoint URL where nothing listens
    runtime_client = boto3.client(
        "sagemaker-runtime", region_name="us-east-1", endpoint_url="http://127.0.0.1:9", config=None
    )
    client = InferenceClient("e", "chat", "summarizer", runtime_client)
    # When calling it, Then the caller is told to come back later
    with pytest.raises(ModelUnavailableError):
        client.chat([{"role": "user", "content": "x"}], max_new_tokens=8)


def test_default_client_uses_adaptive_retries_within_the_time_budget():
    client = InferenceClient("e", "chat", "summarizer", timeout_s=20, max_attempts=2)
    config = client._client.meta.config
    assert config.retries["mode"] == "adaptive"
    assert config.retries["total_max_attempts"] == 2
    assert config.read_timeout * 2 <= 20
