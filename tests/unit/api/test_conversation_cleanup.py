"""Messages of expired conversations are deleted from the table's stream (TTL removes only META), and so are
the messages a clear covered (META's cleared_through rose)."""

import json

import boto3
import pytest
from chatbot.conversations.retention import MessagePurger
from chatbot.conversations.store import ConversationStore, conversation_pk, message_sk
from chatbot.dynamodb import serialize

from local.events import SAMPLE_DIR, meta_change_stream_event, sample_clear_stream_event, ttl_removal_stream_event
from local.streams import delivered_event, stream_records


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
    assert json.loads((SAMPLE_DIR / "conversation-cleared-stream.json").read_text()) == sample_clear_stream_event()


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


def _cleared_conversation(table: str) -> ConversationStore:
    """A conversation of two turns (keyed), cleared by a reset that deleted nothing, then sent one more message."""
    client = boto3.client("dynamodb", region_name="us-east-1")
    store = ConversationStore(table, client)
    meta = {"conversation_id": "c", "owner": "u", "turn_count": 2, "message_count": 4, "version": 4, "generation": 0}
    meta.update(summarized_through=0, created_at="2026-11-25T12:00:00Z", last_active_at="2026-11-25T12:00:00Z")
    store.create_conversation(meta)
    _put_conversation(table, "c", 4, with_meta=False)
    client.put_item(TableName=table, Item=serialize({"pk": "CONV#c", "sk": "IDEMKEY#old", "seq": 1, "generation": 0}))
    store.reset_conversation(meta, "2026-11-25T12:01:00Z", 1795608000)
    client.put_item(TableName=table, Item=serialize({"pk": "CONV#c", "sk": message_sk(5), "content": "after"}))
    client.put_item(TableName=table, Item=serialize({"pk": "CONV#c", "sk": "IDEMKEY#new", "seq": 5, "generation": 1}))
    return store


def _sort_keys(table: str) -> list[str]:
    client = boto3.client("dynamodb", region_name="us-east-1")
    items = client.query(
        TableName=table, KeyConditionExpression="pk = :pk", ExpressionAttributeValues=serialize({":pk": "CONV#c"})
    )["Items"]
    return sorted(item["sk"]["S"] for item in items)


def test_a_clear_on_the_stream_deletes_what_it_cleared_and_keeps_what_came_after(
    cleanup_module, moto_table, lambda_context, template
):
    # Given a clear whose reset was stored but whose deletion never ran, and a message sent after it
    _cleared_conversation(moto_table)
    stream_arn = boto3.client("dynamodb", region_name="us-east-1").describe_table(TableName=moto_table)["Table"][
        "LatestStreamArn"
    ]
    # The classic endpoint, which moto serves (botocore's endpoint rules would otherwise pick one it does not).
    streams = boto3.client(
        "dynamodbstreams", region_name="us-east-1", endpoint_url="https://streams.dynamodb.us-east-1.amazonaws.com"
    )
    records = stream_records(streams, stream_arn)

    # When the stream delivers what the function's filters let through
    event = delivered_event(template, "ConversationCleanupFunction", records)
    result = cleanup_module.lambda_handler(event, lambda_context)

    # Then only the reset's META change was delivered, and it deleted the cleared messages and the old key only
    assert [(record["eventName"], record["dynamodb"]["Keys"]["sk"]["S"]) for record in event["Records"]] == [
        ("MODIFY", "META")
    ]
    assert result == {"batchItemFailures": []}
    assert _sort_keys(moto_table) == ["IDEMKEY#new", "META", message_sk(5)]


def test_a_meta_change_that_is_not_a_clear_deletes_nothing(cleanup_module, moto_table, lambda_context):
    _put_conversation(moto_table, "c", 4, with_meta=True)
    unchanged = {"cleared_through": 4, "generation": 1, "message_count": 0}
    event = meta_change_stream_event("c", unchanged, {**unchanged, "title": "renamed"})
    assert cleanup_module.lambda_handler(event, lambda_context) == {"batchItemFailures": []}
    assert len(_sort_keys(moto_table)) == 5
