"""OrphanSweepFunction as Lambda runs it on its schedule: the backstop of the stream clean-up."""

import json

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from chatbot.conversations.store import ConversationStore, conversation_pk
from chatbot.dynamodb import serialize

from local.events import SAMPLE_DIR, scheduled_event, ttl_removal_stream_event

SCHEDULE_EVENT = SAMPLE_DIR / "orphan-sweep-schedule.json"
OWNER = "11111111-2222-3333-4444-555555555555"


@pytest.fixture
def sweep_module(moto_table, load_handler):
    return load_handler("OrphanSweepFunction")


@pytest.fixture
def sweep_context(lambda_context):
    """A context at the start of an invocation with the function's 900 s timeout."""
    lambda_context.remaining_ms = 900_000
    return lambda_context


def conversation_with_messages(service, turns: int) -> str:
    conversation_id = service.create_conversation(OWNER, None, None)["id"]
    for turn in range(turns):
        service.send_message(OWNER, conversation_id, f"question {turn}", idempotency_key=f"key-{turn}")
    return conversation_id


def expire(dynamodb, table: str, conversation_id: str) -> None:
    """What TTL does: remove the META item only."""
    dynamodb.delete_item(TableName=table, Key=serialize({"pk": conversation_pk(conversation_id), "sk": "META"}))


def partition_size(dynamodb, table: str, conversation_id: str) -> int:
    response = dynamodb.query(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues=serialize({":pk": conversation_pk(conversation_id)}),
        ConsistentRead=True,
    )
    return response["Count"]


def test_committed_sample_schedule_event_is_current():
    assert json.loads(SCHEDULE_EVENT.read_text()) == scheduled_event()


def test_the_scheduled_run_deletes_orphans_and_spares_live_conversations(
    sweep_module, service, dynamodb, moto_table, sweep_context
):
    # Given an expired conversation whose messages and keys were left, and a live one
    expired, live = conversation_with_messages(service, 2), conversation_with_messages(service, 1)
    expire(dynamodb, moto_table, expired)

    # When the schedule invokes the function with its sample event
    result = sweep_module.lambda_handler(json.loads(SCHEDULE_EVENT.read_text()), sweep_context)

    # Then the orphans (4 messages, 2 keys) are gone, the live conversation keeps META, 2 messages and its key
    assert result["finished"] is True
    assert (result["orphan_messages"], result["orphan_idempotency_keys"]) == (4, 2)
    assert partition_size(dynamodb, moto_table, expired) == 0
    assert partition_size(dynamodb, moto_table, live) == 4


def test_messages_left_by_a_failed_stream_clean_up_are_swept(
    load_handler, sweep_module, service, dynamodb, moto_table, sweep_context, monkeypatch
):
    # Given a conversation that expired, and a stream clean-up whose deletes fail (its record goes to the
    # failure queue and is forgotten)
    conversation_id = conversation_with_messages(service, 3)
    expire(dynamodb, moto_table, conversation_id)
    cleanup = load_handler("ConversationCleanupFunction")

    def failing_delete(self, conversation_id):
        raise RuntimeError("throttled")

    monkeypatch.setattr(ConversationStore, "delete_messages", failing_delete)
    with pytest.raises(BatchProcessingError):  # the whole batch failed: retried, then sent to the failure queue
        cleanup.lambda_handler(ttl_removal_stream_event([conversation_id]), sweep_context)
    assert partition_size(dynamodb, moto_table, conversation_id) == 9  # 6 messages, 3 keys: orphans

    # When the scheduled sweep runs
    result = sweep_module.lambda_handler(scheduled_event(), sweep_context)

    # Then the orphans are gone
    assert partition_size(dynamodb, moto_table, conversation_id) == 0
    assert result["orphan_messages"] + result["orphan_idempotency_keys"] == 9
