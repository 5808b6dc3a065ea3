"""Per-user quotas over HTTP: a request over the caller's quota of model requests is a 429 JSON error with
Retry-After, buffered or streamed."""

from datetime import UTC, datetime

import pytest
from api_event_helpers import call, model_answer, sample_event
from chatbot.wiring import conversations_service

ANSWER = {"choices": [{"message": {"role": "assistant", "content": "Let me check that invoice."}}]}
# 15 s into a minute: the next window opens in 45 s.
NOW = datetime(2026, 12, 1, 12, 0, 15, tzinfo=UTC)


@pytest.fixture(params=["ConversationsFunction", "ConversationsStreamFunction"])
def limited_module(request, moto_table, load_handler, monkeypatch, sagemaker_runtime):
    """Each function that sends messages, with its template settings but a quota of 2 chat requests per minute
    and a clock stopped at NOW."""
    module = load_handler(request.param)
    settings = module.settings.model_copy(update={"user_chat_requests_per_minute": 2})
    service = conversations_service(settings, sagemaker_runtime=sagemaker_runtime, clock=lambda: NOW)
    monkeypatch.setattr(module, "service", service)
    return module


def _send(module, context, conversation_id: str, number: int, accept: str = "application/json") -> tuple:
    """A new message (its own text and Idempotency-Key: a resend of an answered one reaches no model)."""
    headers = {"Idempotency-Key": f"message-{number}", "Accept": accept}
    event = sample_event("send-message", conversation_id, {"content": f"Question {number}?"}, headers=headers)
    return call(module, event, context)


def _use_the_quota(module, endpoint, context) -> str:
    """A conversation in which alice sent her 2 messages of the minute; its id."""
    _, _, conversation = call(module, sample_event("create-conversation"), context)
    for number in range(2):
        endpoint.add_response("invoke_endpoint", model_answer(ANSWER))
        status, _, _ = _send(module, context, conversation["id"], number)
        assert status == 201
    return conversation["id"]


@pytest.mark.parametrize("accept", ["application/json", "text/event-stream"])
def test_a_send_over_the_quota_is_429_with_retry_after(limited_module, endpoint, lambda_context, accept):
    # Given a conversation in which alice sent 2 messages this minute
    conversation_id = _use_the_quota(limited_module, endpoint, lambda_context)
    # When she sends a third (buffered, or asking for a stream)
    status, headers, body = _send(limited_module, lambda_context, conversation_id, 3, accept)
    # Then it is refused as JSON, naming the limit, with the seconds to the next minute
    assert status == 429
    assert headers["Content-Type"] == "application/json"
    assert headers["Retry-After"] == "45"
    assert "2 chat requests per minute" in body["message"]


@pytest.mark.parametrize("limited_module", ["ConversationsFunction"], indirect=True)  # the only one routed here
def test_a_summary_over_the_quota_is_429(limited_module, endpoint, lambda_context):
    # Given alice sent 2 messages this minute
    conversation_id = _use_the_quota(limited_module, endpoint, lambda_context)
    # When she asks for a summary of the conversation
    status, headers, _ = call(limited_module, sample_event("summarize-conversation", conversation_id), lambda_context)
    # Then it is refused until the next minute
    assert (status, headers["Retry-After"]) == (429, "45")
