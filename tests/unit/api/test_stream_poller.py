"""The local DynamoDB stream poller: ConversationCleanupFunction's event source as the template declares it (filters,
batch size, retries, bisection, failure queue), delivering moto's stream to a recording handler put in the
function's place (its own process, as the local runtime runs every function)."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import DynamoDBStreamLambdaOnFailureDestinationModel
from chatbot.dynamodb import serialize
from moto.dynamodbstreams.models import dynamodbstreams_backends

from local.aws import create_table_from_template, start_moto
from local.s3_pipeline import PollerHandle
from local.streams import start_stream_poller
from local.template import LOCAL_ACCOUNT_ID, LOCAL_REGION, Template

FUNCTION = "ConversationCleanupFunction"
WAIT_S = 60

# Records every batch it gets (event name, pk, sequence number); reports a record of a conversation named fail-*
# as failed, and raises (a function error) for a batch holding one named raise-*.
RECORDING_HANDLER = """
import json
import os


def main(event, context):
    records = [
        [record["eventName"], record["dynamodb"]["Keys"]["pk"]["S"], record["dynamodb"]["SequenceNumber"]]
        for record in event["Records"]
    ]
    with open(os.environ["DELIVERIES_PATH"], "a", encoding="utf-8") as deliveries:
        deliveries.write(json.dumps(records) + "\\n")
    if any(pk.startswith("CONV#raise-") for _, pk, _ in records):
        raise RuntimeError("injected function error")
    return {"batchItemFailures": [{"itemIdentifier": seq} for _, pk, seq in records if pk.startswith("CONV#fail-")]}
"""


@dataclass
class StreamStack:
    template: Template
    table: str
    dynamodb: Any
    sqs: Any
    failure_queue_url: str
    deliveries_path: Path
    environment: dict[str, str]

    def deliveries(self) -> list[list[tuple[str, str, str]]]:
        """Every batch the handler got, oldest first."""
        if not self.deliveries_path.exists():
            return []
        lines = self.deliveries_path.read_text(encoding="utf-8").splitlines()
        return [[tuple(record) for record in json.loads(line)] for line in lines]

    def delivered(self) -> list[tuple[str, str]]:
        return [(name, pk) for batch in self.deliveries() for name, pk, _ in batch]

    def poller(self) -> PollerHandle:
        return start_stream_poller(
            self.template,
            boto3.session.Session(),
            FUNCTION,
            environment=self.environment,
            idle_wait_s=0.05,
            retry_delay_s=0.05,
        )

    def put_meta(self, conversation_id: str, **attributes: Any) -> None:
        item = {"pk": f"CONV#{conversation_id}", "sk": "META", "message_count": 0, **attributes}
        self.dynamodb.put_item(TableName=self.table, Item=serialize(item))

    def put_message(self, conversation_id: str, seq: int) -> None:
        item = {"pk": f"CONV#{conversation_id}", "sk": f"MSG#{seq:010d}", "content": "hello"}
        self.dynamodb.put_item(TableName=self.table, Item=serialize(item))

    def delete(self, conversation_id: str, sort_key: str = "META") -> None:
        key = {"pk": f"CONV#{conversation_id}", "sk": sort_key}
        self.dynamodb.delete_item(TableName=self.table, Key=serialize(key))

    def failure_messages(self) -> list[dict[str, Any]]:
        messages = self.sqs.receive_message(QueueUrl=self.failure_queue_url, MaxNumberOfMessages=10)
        return [json.loads(message["Body"]) for message in messages.get("Messages", [])]


def wait_for(condition: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {WAIT_S} s: {what}")


@pytest.fixture
def stream_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StreamStack]:
    code = tmp_path / "code"
    code.mkdir()
    (code / "recorder.py").write_text(textwrap.dedent(RECORDING_HANDLER), encoding="utf-8")
    template = Template()
    properties = template.resources[FUNCTION]["Properties"]
    properties["CodeUri"], properties["Handler"] = str(code), "recorder.main"
    with start_moto(port=0) as moto:
        for name, value in moto.environment().items():
            monkeypatch.setenv(name, value)
        dynamodb, sqs = boto3.client("dynamodb"), boto3.client("sqs")
        table = create_table_from_template(template, dynamodb)
        queue_url = sqs.create_queue(QueueName=template.physical_name("ConversationCleanupFailures"))["QueueUrl"]
        deliveries = tmp_path / "deliveries.jsonl"
        environment = {**moto.environment(), "DELIVERIES_PATH": str(deliveries)}
        yield StreamStack(template, table, dynamodb, sqs, queue_url, deliveries, environment)
        # moto's backends outlive its server: the next test starts from an empty table and stream
        dynamodb.delete_table(TableName=table)
        sqs.delete_queue(QueueUrl=queue_url)


def event_source(template: Template) -> dict[str, Any]:
    return template.resolve(template.resources[FUNCTION]["Properties"]["Events"]["ConversationRemoved"]["Properties"])


def test_matching_records_are_delivered_once_each_and_the_rest_are_filtered_out(stream_stack):
    # Given a running poller and conversation "a": created, sent two messages, cleared, renamed, then deleted
    # (and one of its messages deleted)
    with stream_stack.poller():
        stream_stack.put_meta("a", message_count=2)
        stream_stack.put_message("a", 1)
        stream_stack.put_message("a", 2)
        stream_stack.put_meta("a", message_count=0, cleared_through=2)  # a clear: MODIFY, passes
        stream_stack.put_meta("a", message_count=0, cleared_through=2, title="renamed")  # passes too (a no-op clear)
        stream_stack.put_meta("a", message_count=1, cleared_through=2)  # a send after it: MODIFY, filtered out
        stream_stack.delete("a", "MSG#0000000001")  # a message's REMOVE: filtered out
        stream_stack.delete("a")  # the conversation's REMOVE: passes
        wait_for(lambda: ("REMOVE", "CONV#a") in stream_stack.delivered(), "the delete of a delivered")

        # When a later change is delivered too (a poller that re-read the stream would deliver "a" again first)
        stream_stack.put_meta("b")
        stream_stack.delete("b")
        wait_for(lambda: ("REMOVE", "CONV#b") in stream_stack.delivered(), "the delete of b delivered")

    # Then each record that passes the filters was delivered exactly once, in order, and nothing else was
    assert stream_stack.delivered() == [
        ("MODIFY", "CONV#a"),
        ("MODIFY", "CONV#a"),
        ("REMOVE", "CONV#a"),
        ("REMOVE", "CONV#b"),
    ]
    assert all(len(batch) <= event_source(stream_stack.template)["BatchSize"] for batch in stream_stack.deliveries())


def test_a_poller_whose_iterator_expired_goes_on_after_the_last_record_it_read(stream_stack):
    # Given a running poller that has delivered a conversation's removal
    with stream_stack.poller():
        stream_stack.put_meta("a")
        stream_stack.delete("a")
        wait_for(lambda: ("REMOVE", "CONV#a") in stream_stack.delivered(), "the delete of a delivered")

        # When every iterator moto handed out expires (as DynamoDB Streams' do, 15 minutes after), then more comes
        dynamodbstreams_backends[LOCAL_ACCOUNT_ID][LOCAL_REGION].shard_iterators.clear()
        stream_stack.put_meta("b")
        stream_stack.delete("b")
        wait_for(lambda: ("REMOVE", "CONV#b") in stream_stack.delivered(), "the delete of b delivered")

    # Then the poller went on from where it was: nothing missed, nothing delivered twice
    assert stream_stack.delivered() == [("REMOVE", "CONV#a"), ("REMOVE", "CONV#b")]


def test_a_record_that_keeps_failing_is_retried_then_described_to_the_failure_queue(stream_stack):
    source = event_source(stream_stack.template)
    # Given a running poller and a conversation whose removal the function reports as failed every time
    with stream_stack.poller() as poller:
        stream_stack.put_meta("fail-1")
        stream_stack.delete("fail-1")

        # When the poller has done with it
        (failure,) = wait_for(stream_stack.failure_messages, "a message on the failure queue")
        # And a later record comes
        stream_stack.put_meta("ok-1")
        stream_stack.delete("ok-1")
        wait_for(lambda: ("REMOVE", "CONV#ok-1") in stream_stack.delivered(), "the later record delivered")

    # Then the failing record was delivered once and retried MaximumRetryAttempts times, on its own
    deliveries = stream_stack.deliveries()
    failed_seq = deliveries[0][0][2]
    assert deliveries[: 1 + source["MaximumRetryAttempts"]] == [[("REMOVE", "CONV#fail-1", failed_seq)]] * (
        1 + source["MaximumRetryAttempts"]
    )
    # And then given up: the failure queue got Lambda's description of the batch, and the stream went on
    assert [pk for _, pk, _ in deliveries[-1]] == ["CONV#ok-1"]
    assert len(deliveries) == 2 + source["MaximumRetryAttempts"]
    described = parse(event=failure, model=DynamoDBStreamLambdaOnFailureDestinationModel)
    assert described.request_context.condition == "RetryAttemptsExhausted"
    assert described.request_context.approximate_invoke_count == 1 + source["MaximumRetryAttempts"]
    assert described.request_context.function_arn.endswith(":function:" + FUNCTION)
    assert described.response_context.function_error is None  # a partial batch failure, not a function error
    batch = described.ddb_stream_batch_info
    assert (batch.start_sequence_number, batch.end_sequence_number, batch.batch_size) == (failed_seq, failed_seq, 1)
    assert batch.stream_arn == poller.source
    assert poller.stats.discarded == 1


def test_a_batch_whose_invocation_fails_is_bisected_and_only_the_bad_record_is_given_up(stream_stack):
    source = event_source(stream_stack.template)
    assert source["BisectBatchOnFunctionError"] is True
    # Given two removals already on the stream, the second of which makes the function raise
    stream_stack.put_meta("good")
    stream_stack.put_meta("raise-1")
    stream_stack.delete("good")
    stream_stack.delete("raise-1")

    # When the poller delivers them
    with stream_stack.poller():
        (failure,) = wait_for(stream_stack.failure_messages, "a message on the failure queue")

    # Then the batch of both failed, its first half was delivered alone and succeeded, and only the bad record
    # was retried, then described to the failure queue as a function error
    batches = [[pk for _, pk, _ in batch] for batch in stream_stack.deliveries()]
    retries = source["MaximumRetryAttempts"]
    assert batches == [["CONV#good", "CONV#raise-1"], ["CONV#good"]] + [["CONV#raise-1"]] * (1 + retries)
    described = parse(event=failure, model=DynamoDBStreamLambdaOnFailureDestinationModel)
    assert described.response_context.function_error == "Unhandled"
    assert described.ddb_stream_batch_info.batch_size == 1
