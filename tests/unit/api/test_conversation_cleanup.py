"""Messages of expired conversations are deleted from the table's stream (TTL removes only META)."""

import json

import boto3
import pytest
from chatbot.conversations.retention import MessagePurger
from chatbot.conversations.store import ConversationStore, conversation_pk, message_sk
from chatbot.dynamodb import serialize

from local.events import SAMPLE_DIR, ttl_removal_stream_event


@pytest.fixture
def cleanup_module(moto_table, load_handler):
    return load_handler("ConversationCleanupFunction")


def _put_conversation(table: str, conversation_id: str, messages: int, with_meta: bool) -> None:
    client = boto3.client("dynamodb", region_name="us-east-1")
    items = [
        {"pk": conversation_pk(conversation_id), "sk": message_sk(seq), "content": "x"}
        for seq in range(1, messages + 1)
    ]
    if with_meta:
        items.append({"pk": conversation_pk(conversation_id), "sk": "META", "owner": "u"})
    for item in items:
        client.put_item(TableName=table, Item=serialize(item))


def _remaining(table: str, conversation_id: str) -> int:
    store = ConversationStore(table, boto3.client("dynamodb", region_name="us-east-1"))
    return len(list(store.all_messages(conversation_id)))


def test_committed_sample_stream_event_is_current():
    committed = json.loads((SAMPLE_DIR / "conversation-expired-stream.json").read_text())
    assert committed == ttl_removal_stream_event(["0f8fad5b-d9cb-469f-a165-70867728950e"])


def test_expired_conversations_lose_their_messages(cleanup_module, moto_table, lambda_context):
    # Given a conversation whose META expired (gone) with 60 messages left, and a live one
    _put_conversation(moto_table, "expired", 60, with_meta=False)
    _put_conversation(moto_table, "alive", 3, with_meta=True)
    # When the stream delivers their removal records
    result = cleanup_module.lambda_handler(ttl_removal_stream_event(["expired", "alive"]), lambda_context)
    # Then the expired one's messages are gone, the live one is untouched, and no record failed
    assert result == {"batchItemFailures": []}
    assert _remaining(moto_table, "expired") == 0
    assert _remaining(moto_table, "alive") == 3


def test_a_bad_record_fails_alone(cleanup_module, moto_table, lambda_context):
    _put_conversation(moto_table, "expired", 2, with_meta=False)
    event = ttl_removal_stream_event(["expired", "other"])
    event["Records"][1]["dynamodb"]["Keys"]["pk"]["S"] = "JOB#not-a-conversation"
    result = cleanup_module.lambda_handler(event, lambda_context)
    assert result == {"batchItemFailures": [{"itemIdentifier": event["Records"][1]["dynamodb"]["SequenceNumber"]}]}
    assert _remaining(moto_table, "expired") == 0


def test_purger_refuses_other_keys(moto_table):
    purger = MessagePurger(ConversationStore(moto_table, boto3.client("dynamodb", region_name="us-east-1")))
    with pytest.raises(ValueError, match="not a conversation key"):
        purger.purge("USER#x#CONV")
