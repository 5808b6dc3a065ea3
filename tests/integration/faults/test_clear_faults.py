"""Clears over the local stack: racing sends, and dying half way (a delete too), finished by the stack's stream
poller running ConversationCleanupFunction. Each clear test ends with reconciliation against the table: nothing a
clear covered is listed or left after the clean-up, nothing stored after a clear is lost, nothing is stored
twice."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from chatbot.conversations.store import IDEMPOTENCY_KEY_PREFIX, MESSAGE_PREFIX, conversation_pk
from chatbot.dynamodb import deserialize, serialize
from fault_client import RETRYABLE, Caller, new_caller, wait_until

from bench.reconcile import conversation_messages
from local.template import Template

pytestmark = pytest.mark.integration

SENDERS = 3
SENDS_EACH = 4
CLEARS = 3
SEND_ATTEMPTS = 10
BACKOFF_STEP_S = 0.2
# The stream poller's retries back off to 10 s each; the clean-up has MaximumRetryAttempts of them.
STREAM_CLEAN_UP_S = 90


@dataclass
class Table:
    template: Template
    name: str
    client: Any

    def items(self, conversation_id: str) -> list[dict[str, Any]]:
        """Every item of the conversation as stored (deleted or not, whatever the API shows)."""
        response = self.client.query(
            TableName=self.name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues=serialize({":pk": conversation_pk(conversation_id)}),
            ConsistentRead=True,
        )
        return [deserialize(item) for item in response["Items"]]

    def meta(self, conversation_id: str) -> dict[str, Any]:
        return next(item for item in self.items(conversation_id) if item["sk"] == "META")


@pytest.fixture
def table(stack) -> Table:
    template = Template(stack.stack.template_path, stack.stack.template_parameters())
    return Table(template, template.physical_name("ChatbotTable"), boto3.client("dynamodb"))


@dataclass
class Send:
    content: str
    status: int
    seq: int | None  # the user message's seq, from a 201
    answered_at: float  # monotonic time the final answer arrived


def send_until_stored(caller: Caller, conversation_id: str, content: str) -> Send:
    """A well-behaved client: the same Idempotency-Key again, backing off, while the API says 409 (busy, being
    cleared, answer dropped by a clear) or 502/503 (bounded)."""
    key = uuid.uuid4().hex
    for attempt in range(1, SEND_ATTEMPTS + 1):
        response = caller.send_response(conversation_id, content, key)
        if response.status_code not in RETRYABLE | {409}:
            break
        time.sleep(BACKOFF_STEP_S * attempt)
    seq = response.json()["user_message"]["seq"] if response.status_code == 201 else None
    return Send(content, response.status_code, seq, time.monotonic())


def assert_reconciled(table: Table, caller: Caller, stack, conversation_id: str, sends: list[Send]) -> None:
    """Listed: only messages after the last clear, each once; every 201 exchange after it listed; the table holds
    nothing the clears covered (messages up to cleared_through, keys of older generations)."""
    meta = table.meta(conversation_id)
    cleared_through = meta.get("cleared_through", 0)
    listed = conversation_messages(stack.api, caller.user, conversation_id)
    seqs = [message["seq"] for message in listed]
    assert all(seq > cleared_through for seq in seqs), (cleared_through, seqs)
    assert len(seqs) == len(set(seqs)), seqs
    questions = [message["content"] for message in listed if message["role"] == "user"]
    assert len(questions) == len(set(questions)), questions
    by_seq = {message["seq"]: message for message in listed}
    for send in sends:
        assert send.status == 201, send
        if send.seq > cleared_through:  # not covered by a later clear: the whole exchange is there
            assert send.seq in by_seq and send.seq + 1 in by_seq, f"lost: {send}"
            assert by_seq[send.seq]["content"] == send.content
            assert by_seq[send.seq + 1]["reply_to"] == send.seq
    assert set(seqs) == {seq for send in sends if send.seq > cleared_through for seq in (send.seq, send.seq + 1)}
    stored = table.items(conversation_id)
    dead_messages = [
        item["sk"]
        for item in stored
        if item["sk"].startswith(MESSAGE_PREFIX) and int(item["sk"].removeprefix(MESSAGE_PREFIX)) <= cleared_through
    ]
    dead_keys = [
        item["sk"]
        for item in stored
        if item["sk"].startswith(IDEMPOTENCY_KEY_PREFIX) and item["generation"] < meta["generation"]
    ]
    assert dead_messages == [] and dead_keys == [], (dead_messages, dead_keys)


def test_clears_racing_sends_hide_and_delete_only_what_came_before_them(stack, table):
    # Given one conversation, several senders and a client clearing it meanwhile
    caller = new_caller(stack.api, "fault-clear-race")
    conversation_id = caller.start_conversation()
    sends: list[Send] = []
    clears: list[tuple[int, float]] = []
    progress = threading.Condition()
    total = SENDERS * SENDS_EACH

    def sender(number: int) -> None:
        for index in range(SENDS_EACH):
            send = send_until_stored(caller, conversation_id, f"sender {number} asks question {index}")
            with progress:
                sends.append(send)
                progress.notify_all()

    def clearer() -> None:
        # Clears spread over the sends (after a quarter, half, three quarters of them), while others are in flight.
        for number in range(1, CLEARS + 1):
            with progress:
                progress.wait_for(lambda due=number * total // (CLEARS + 1): len(sends) >= due, timeout=120)
            response = caller.request("DELETE", f"/v1/conversations/{conversation_id}/messages")
            clears.append((response.status_code, time.monotonic()))

    # When they all run at once over HTTP
    threads = [threading.Thread(target=sender, args=(number,)) for number in range(SENDERS)]
    threads.append(threading.Thread(target=clearer))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)

    # Then every request settled, each clear counted once, and every exchange answered after the last clear
    # answered is past what it cleared
    assert not any(thread.is_alive() for thread in threads)
    assert [status for status, _ in clears] == [204] * CLEARS
    assert len(sends) == total
    meta = table.meta(conversation_id)
    assert meta["generation"] == CLEARS
    last_clear_answered = clears[-1][1]
    late = [send for send in sends if send.answered_at > last_clear_answered]
    assert all(send.seq > meta.get("cleared_through", 0) for send in late), (meta.get("cleared_through"), late)
    assert late, "the last clear ran after the last send: nothing raced it"
    # And reconciliation finds nothing listed from before the last clear, nothing lost after it, nothing twice
    assert_reconciled(table, caller, stack, conversation_id, sends)


def stored_messages(table: Table, conversation_id: str) -> list[str]:
    return [item["sk"] for item in table.items(conversation_id) if item["sk"].startswith(MESSAGE_PREFIX)]


def test_a_clear_that_dies_while_deleting_hides_everything_and_the_stream_clean_up_finishes_it(stack, table):
    # Given a conversation with two answered exchanges
    caller = new_caller(stack.api, "fault-clear-crash")
    conversation_id = caller.start_conversation()
    before = [send_until_stored(caller, conversation_id, f"before the clear {index}") for index in range(2)]

    # When it is cleared while every BatchWriteItem fails (the deletion dies after the reset; the stream clean-up
    # cannot delete either while this lasts)
    stack.throttle.operations = frozenset({"BatchWriteItem"})
    stack.throttle.mode = "always"
    try:
        cleared = caller.request("DELETE", f"/v1/conversations/{conversation_id}/messages")

        # Then the clear answers, its messages are still stored, and none is readable
        assert cleared.status_code == 204, cleared.text
        assert stack.throttle.injected > 0
        assert len(stored_messages(table, conversation_id)) == 4
        assert caller.messages(conversation_id) == []
        summary = caller.request("POST", f"/v1/conversations/{conversation_id}/summary", json={})
        assert summary.status_code == 409, summary.text
    finally:
        stack.throttle.mode = "off"

    # When the throttling ends, the local stack's stream poller retries the clean-up function on the clear's record
    # Then it deletes what the clear covered
    assert wait_until(lambda: stored_messages(table, conversation_id) == [], STREAM_CLEAN_UP_S, poll_s=0.25)
    # And a message sent afterwards is kept
    after = send_until_stored(caller, conversation_id, "after the clear")
    assert after.seq == 5
    # And reconciliation: nothing the clear covered is left in the table, the new exchange is listed once
    assert_reconciled(table, caller, stack, conversation_id, [*before, after])


def test_a_delete_whose_message_deletion_dies_is_finished_by_the_stream_clean_up(stack, table):
    # Given a conversation with two answered exchanges
    caller = new_caller(stack.api, "fault-delete-crash")
    conversation_id = caller.start_conversation()
    for index in range(2):
        assert send_until_stored(caller, conversation_id, f"question {index}").status == 201

    # When it is deleted while every BatchWriteItem fails (the API deletes META, then fails to delete the messages)
    stack.throttle.operations = frozenset({"BatchWriteItem"})
    stack.throttle.mode = "always"
    try:
        deleted = caller.request("DELETE", f"/v1/conversations/{conversation_id}")

        # Then the delete succeeds (META is gone: the conversation with it) while its messages are still stored
        assert deleted.status_code == 204, deleted.text
        assert caller.request("GET", f"/v1/conversations/{conversation_id}").status_code == 404
        assert len(stored_messages(table, conversation_id)) == 4
    finally:
        stack.throttle.mode = "off"

    # When the throttling ends, the local stack's stream poller delivers META's REMOVE to the clean-up function
    # Then nothing of the conversation is left
    assert wait_until(lambda: table.items(conversation_id) == [], STREAM_CLEAN_UP_S, poll_s=0.25)
