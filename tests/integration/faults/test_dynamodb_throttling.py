"""DynamoDB throttles the API's calls: retries absorb short throttling, nothing is lost or stored twice."""

from __future__ import annotations

import pytest
from fault_client import as_sent, new_caller, send_until_answered

from bench.reconcile import Report, reconcile_messages

pytestmark = pytest.mark.integration


def test_throttling_on_every_first_attempt_is_absorbed_by_retries_and_loses_nothing(stack):
    # Given DynamoDB answering ProvisionedThroughputExceededException to the first attempt of every call
    caller = new_caller(stack.api, "fault-throttle")
    stack.throttle.mode = "every_first_attempt"

    # When a client starts a conversation and sends three messages
    conversation_id = caller.start_conversation()
    sent = []
    for number in range(3):
        content = f"throttle test {number}: is the store open on Sunday?"
        sent.append(as_sent(caller, conversation_id, content, send_until_answered(caller, conversation_id, content)))
    injected = stack.throttle.injected
    stack.throttle.mode = "off"

    # Then throttling really happened, every message was answered, and each is stored exactly once
    assert injected >= 3
    assert [message.status for message in sent] == [201] * 3
    report = Report()
    reconcile_messages(stack.api, sent, report)
    assert report.ok, report.lines()


def test_throttling_that_outlasts_the_retries_is_a_503_with_retry_after(stack):
    # Given a conversation, then DynamoDB throttling every attempt of every call
    caller = new_caller(stack.api, "fault-throttle-always")
    conversation_id = caller.start_conversation()
    stack.throttle.mode = "always"
    try:
        # When the client sends a message and reads the conversation
        sent = caller.request("POST", f"/v1/conversations/{conversation_id}/messages", json={"content": "still there?"})
        read = caller.request("GET", f"/v1/conversations/{conversation_id}")
    finally:
        stack.throttle.mode = "off"

    # Then both are told to come back later, in JSON, never a 500
    for response in (sent, read):
        assert response.status_code == 503, response.text
        assert int(response.headers["Retry-After"]) > 0
        assert "busy" in response.json()["message"]
