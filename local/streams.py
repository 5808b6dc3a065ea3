"""DynamoDB stream records as a Lambda event source mapping hands them to a function: read from the table's
stream (moto keeps one), kept only when they match one of the mapping's FilterCriteria patterns, and delivered
by a poller (`start_stream_poller`) the way Lambda's DynamoDB event source does.

The local stack starts one poller per stream-triggered function (e.g. ConversationCleanupFunction). Patterns are
matched with the part of Lambda's filter grammar the template uses: nested objects, lists of values, `prefix` and
`exists`.

The poller keeps an iterator per shard (and the last sequence number read, to start a new one after it when an
iterator expires), so each record is read once; it drops the records no pattern matches, invokes the function
with batches of up to the event source's BatchSize, oldest first, one batch per shard at a time, and honours
the event source's settings:
- ReportBatchItemFailures: the records before the first reported failure are done; the retry starts at it.
- BisectBatchOnFunctionError: a batch whose invocation fails (the handler raised, timed out, crashed) is halved
  and the first half retried, spending no retry. Simplified: once that half succeeds the poller goes back to full
  batches, where Lambda would first retry the other half on its own.
- MaximumRetryAttempts: failed records are retried after a backoff (doubling from `retry_delay_s`: Lambda's own
  pace is not documented); when the retries are spent, the batch is discarded and, with an OnFailure destination,
  described to it as Lambda does ("Retain discarded records for a DynamoDB event source in Lambda",
  https://docs.aws.amazon.com/lambda/latest/dg/services-dynamodb-errors.html: requestContext, responseContext,
  version, timestamp and DDBStreamBatchInfo).
Shards appearing later (DynamoDB rolls them over) are read from their start, each after its parent is done. One
thread serves every shard: moto's stream has one.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from local.lambda_runtime import FunctionDefinition, FunctionRuntime
from local.s3_pipeline import PollerHandle, PollerStats
from local.template import LOCAL_ACCOUNT_ID, LOCAL_REGION, Template

logger = logging.getLogger(__name__)

DEFAULT_RETRY_DELAY_S = 1.0
MAX_RETRY_DELAY_S = 10.0
SHARD_REFRESH_S = 30.0
READ_LIMIT = 1000


def _dynamodb_event_sources(template: Template, logical_id: str) -> list[dict[str, Any]]:
    """The function's DynamoDB event sources as the template writes them (intrinsics unresolved)."""
    events = (template.resources[logical_id].get("Properties") or {}).get("Events") or {}
    return [event.get("Properties") or {} for event in events.values() if event.get("Type") == "DynamoDB"]


def filter_patterns(template: Template, logical_id: str) -> list[dict[str, Any]]:
    """The FilterCriteria patterns of the function's DynamoDB event sources."""
    patterns = []
    for source in _dynamodb_event_sources(template, logical_id):
        filters = template.resolve(source.get("FilterCriteria", {})).get("Filters", [])
        patterns.extend(json.loads(entry["Pattern"]) for entry in filters)
    return patterns


def matches(pattern: Mapping[str, Any], record: Any) -> bool:
    """True when the record matches the pattern (every field of the pattern; a list means any of its values)."""
    if not isinstance(record, Mapping):
        return False
    for name, expected in pattern.items():
        if isinstance(expected, Mapping):
            if not matches(expected, record.get(name)):
                return False
        elif not any(_value_matches(rule, name in record, record.get(name)) for rule in expected):
            return False
    return True


def _value_matches(rule: Any, present: bool, value: Any) -> bool:
    if not isinstance(rule, Mapping):
        return present and value == rule
    if set(rule) == {"exists"}:
        return present == rule["exists"]
    if set(rule) == {"prefix"}:
        return present and isinstance(value, str) and value.startswith(rule["prefix"])
    raise ValueError(f"filter rule not supported here: {rule}")


def _passes(patterns: list[dict[str, Any]], record: dict[str, Any]) -> bool:
    return not patterns or any(matches(pattern, record) for pattern in patterns)


@dataclass
class _Shard:
    shard_id: str
    parent_id: str | None
    starting_position: str  # where a new iterator starts while nothing has been read
    iterator: str | None  # None once a closed shard has been read to its end
    last_sequence_number: str | None = None  # of the last record read: a new iterator starts after it
    pending: list[dict[str, Any]] = field(default_factory=list)  # read, passed the filters, not yet done

    @property
    def finished(self) -> bool:
        return self.iterator is None and not self.pending


class StreamReader:
    """A stream read once: per shard, the iterator GetRecords last returned (so a record is read once), shards
    found on every refresh. Shards there at the first refresh start at `starting_position`, later ones at their
    start (TRIM_HORIZON), as Lambda reads them."""

    def __init__(self, client: Any, stream_arn: str, starting_position: str = "TRIM_HORIZON"):
        self._client = client
        self.stream_arn = stream_arn
        self._starting_position = starting_position
        self.shards: dict[str, _Shard] = {}
        self._refreshed_at: float | None = None

    def refresh(self) -> None:
        """Track the shards the stream has now (new ones get an iterator)."""
        position = self._starting_position if self._refreshed_at is None else "TRIM_HORIZON"
        start: dict[str, str] = {}
        while True:
            description = self._client.describe_stream(StreamArn=self.stream_arn, **start)["StreamDescription"]
            for shard in description["Shards"]:
                if shard["ShardId"] not in self.shards:
                    tracked = _Shard(shard["ShardId"], shard.get("ParentShardId"), position, iterator=None)
                    self._renew_iterator(tracked)
                    self.shards[tracked.shard_id] = tracked
            if not description.get("LastEvaluatedShardId"):
                break
            start = {"ExclusiveStartShardId": description["LastEvaluatedShardId"]}
        self._refreshed_at = time.monotonic()

    def refresh_due(self) -> bool:
        return self._refreshed_at is None or time.monotonic() - self._refreshed_at >= SHARD_REFRESH_S

    def ready_shards(self) -> list[_Shard]:
        """The shards to read or deliver now: a child only once its parent is done (records stay in order)."""
        ready = []
        for shard in self.shards.values():
            parent = self.shards.get(shard.parent_id or "")
            if not shard.finished and (parent is None or parent.finished):
                ready.append(shard)
        return ready

    def read(self, shard: _Shard) -> list[dict[str, Any]]:
        """The shard's next page of records (JSON-ready event records), moving its iterator past them."""
        try:
            page = self._client.get_records(ShardIterator=shard.iterator, Limit=READ_LIMIT)
        except ClientError:
            # Expired (15 minutes unused, e.g. a long pause), or refused: go on after the last record read.
            self._renew_iterator(shard)
            return []
        shard.iterator = page.get("NextShardIterator")  # absent once a closed shard is read to its end
        if page["Records"]:
            shard.last_sequence_number = page["Records"][-1]["dynamodb"]["SequenceNumber"]
        return [_as_event_record(record, self.stream_arn) for record in page["Records"]]

    def _renew_iterator(self, shard: _Shard) -> None:
        position: dict[str, str] = {"ShardIteratorType": shard.starting_position}
        if shard.last_sequence_number:
            position = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": shard.last_sequence_number}
        shard.iterator = self._client.get_shard_iterator(StreamArn=self.stream_arn, ShardId=shard.shard_id, **position)[
            "ShardIterator"
        ]


def stream_records(streams_client: Any, stream_arn: str) -> list[dict[str, Any]]:
    """Every record of the stream, oldest first per shard, as JSON-ready event records."""
    reader = StreamReader(streams_client, stream_arn)
    reader.refresh()
    records = []
    for shard in reader.shards.values():
        while shard.iterator and (page := reader.read(shard)):
            records.extend(page)
    return records


def _as_event_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    change = dict(record["dynamodb"])
    created = change.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        change["ApproximateCreationDateTime"] = int(created.timestamp())
    return {**record, "dynamodb": change, "eventSourceARN": stream_arn}


def delivered_event(template: Template, logical_id: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The event the function would receive: the records that pass its filters."""
    patterns = filter_patterns(template, logical_id)
    return {"Records": [record for record in records if _passes(patterns, record)]}


def stream_triggered_functions(template: Template) -> list[str]:
    """The template's functions with a DynamoDB event source (each gets a stream poller of its own)."""
    functions = template.resources_of_type("AWS::Serverless::Function")
    return [logical_id for logical_id in functions if _dynamodb_event_sources(template, logical_id)]


@dataclass
class StreamPollerStats(PollerStats):
    discarded: int = 0  # records whose retries were spent (described to the OnFailure destination, if any)

    def discard(self, records: int) -> None:
        with self._lock:
            self.discarded += records


@dataclass(frozen=True)
class _EventSource:
    """A DynamoDB event source's settings, as the template declares them (Lambda's defaults otherwise)."""

    batch_size: int
    starting_position: str
    max_retries: int  # -1: until the record expires
    bisect: bool
    report_item_failures: bool
    on_failure_queue: str | None  # the OnFailure queue's name

    @classmethod
    def of(cls, template: Template, logical_id: str) -> _EventSource:
        (raw,) = _dynamodb_event_sources(template, logical_id)  # one stream per function in this template
        source = template.resolve(raw)
        on_failure = ((source.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        return cls(
            batch_size=int(source.get("BatchSize", 100)),
            starting_position=str(source.get("StartingPosition", "TRIM_HORIZON")),
            max_retries=int(source.get("MaximumRetryAttempts", -1)),
            bisect=bool(source.get("BisectBatchOnFunctionError", False)),
            report_item_failures="ReportBatchItemFailures" in (source.get("FunctionResponseTypes") or []),
            on_failure_queue=on_failure.rsplit(":", 1)[-1] if on_failure else None,
        )


def _stream_table(template: Template, logical_id: str) -> str:
    """The logical id of the table whose stream the function's event source reads (!GetAtt Table.StreamArn)."""
    (raw,) = _dynamodb_event_sources(template, logical_id)
    stream = raw["Stream"]
    target = stream.get("Fn::GetAtt") if isinstance(stream, Mapping) else None
    if not target:
        raise ValueError(f"{logical_id}: the stream must be !GetAtt <table>.StreamArn locally")
    return target[0] if isinstance(target, list) else str(target).split(".", 1)[0]


@dataclass
class _Attempts:
    """Failed invocations of the record at a shard's head (reset when the head moves on)."""

    head: str = ""
    count: int = 0
    retry_at: float = 0.0
    batch_limit: int = 0  # below the batch size after a bisection


class _StreamPoller:
    def __init__(
        self,
        reader: StreamReader,
        runtime: FunctionRuntime,
        source: _EventSource,
        patterns: list[dict[str, Any]],
        failures: tuple[Any, str] | None,
        function_arn: str,
        retry_delay_s: float,
        stats: StreamPollerStats,
    ):
        self.reader = reader
        self.runtime = runtime
        self.source = source
        self.patterns = patterns
        self.failures = failures  # (sqs client, queue URL) of the OnFailure destination
        self.function_arn = function_arn
        self.retry_delay_s = retry_delay_s
        self.stats = stats
        self._attempts: dict[str, _Attempts] = {}

    def step(self) -> bool:
        """Read what is new and deliver one batch per shard that has one due; False when there was nothing."""
        if self.reader.refresh_due():
            self.reader.refresh()
        worked = False
        for shard in self.reader.ready_shards():
            if not shard.pending and shard.iterator:
                records = self.reader.read(shard)
                shard.pending.extend(record for record in records if _passes(self.patterns, record))
            attempts = self._attempts.setdefault(shard.shard_id, _Attempts())
            if shard.pending and time.monotonic() >= attempts.retry_at:
                self._deliver(shard, attempts)
                worked = True
        return worked

    def _deliver(self, shard: _Shard, attempts: _Attempts) -> None:
        batch = shard.pending[: attempts.batch_limit or self.source.batch_size]
        sequence_numbers = [record["dynamodb"]["SequenceNumber"] for record in batch]
        function_error = False
        handler_s = 0.0
        try:
            result = self.runtime.invoke({"Records": batch})
            handler_s = result.handler_ms / 1000
            failed_from = self._first_failure(result.response, sequence_numbers)
        except Exception:
            # As in Lambda: an invocation that fails (the handler raised, timed out, crashed) fails the whole batch.
            logger.exception("%s invocation failed", self.runtime.definition.logical_id)
            function_error = True
            failed_from = 0
        done, failed = batch[:failed_from], batch[failed_from:]
        del shard.pending[: len(done)]
        self.stats.add(len(done), len(failed), function_error, handler_s)
        if not failed:
            self._attempts[shard.shard_id] = _Attempts()
            return
        if function_error and self.source.bisect and len(failed) > 1:
            attempts.batch_limit = len(failed) // 2  # a bisection spends no retry; the half is retried as such
            return
        head = failed[0]["dynamodb"]["SequenceNumber"]
        if head != attempts.head:
            attempts.head, attempts.count = head, 0
        attempts.count += 1
        if 0 <= self.source.max_retries < attempts.count:
            del shard.pending[: len(failed)]
            self.stats.discard(len(failed))
            self._report_discarded(shard, failed, attempts.count, function_error)
            self._attempts[shard.shard_id] = _Attempts()
            return
        attempts.retry_at = time.monotonic() + min(self.retry_delay_s * 2 ** (attempts.count - 1), MAX_RETRY_DELAY_S)

    def _first_failure(self, response: Any, sequence_numbers: list[str]) -> int:
        """The index of the batch's first failed record (its length when none failed)."""
        if not self.source.report_item_failures or not isinstance(response, Mapping):
            return len(sequence_numbers)  # without ReportBatchItemFailures, Lambda ignores what the function returns
        failures = response.get("batchItemFailures") or []
        identifiers = [failure.get("itemIdentifier") if isinstance(failure, Mapping) else None for failure in failures]
        if any(identifier not in sequence_numbers for identifier in identifiers):
            return 0  # an empty, null or unknown identifier fails the whole batch, as in Lambda
        return min((sequence_numbers.index(identifier) for identifier in identifiers), default=len(sequence_numbers))

    def _report_discarded(
        self, shard: _Shard, records: list[dict[str, Any]], invocations: int, function_error: bool
    ) -> None:
        logger.error(
            "%s: %d stream record(s) discarded after %d invocations",
            self.runtime.definition.logical_id,
            len(records),
            invocations,
        )
        if self.failures is None:
            return
        response_context: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
        if function_error:
            response_context["functionError"] = "Unhandled"
        first, last = records[0]["dynamodb"], records[-1]["dynamodb"]
        description = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self.function_arn,
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": invocations,
            },
            "responseContext": response_context,
            "version": "1.0",
            "timestamp": _iso(time.time()),
            "DDBStreamBatchInfo": {
                "shardId": shard.shard_id,
                "startSequenceNumber": first["SequenceNumber"],
                "endSequenceNumber": last["SequenceNumber"],
                "approximateArrivalOfFirstRecord": _iso(first.get("ApproximateCreationDateTime", 0)),
                "approximateArrivalOfLastRecord": _iso(last.get("ApproximateCreationDateTime", 0)),
                "batchSize": len(records),
                "streamArn": self.reader.stream_arn,
            },
        }
        sqs, queue_url = self.failures
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(description))


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def start_stream_poller(
    template: Template,
    session: Any,
    function_id: str,
    *,
    environment: Mapping[str, str] | None = None,
    idle_wait_s: float = 0.5,
    retry_delay_s: float = DEFAULT_RETRY_DELAY_S,
    function_logs: Any = None,
) -> PollerHandle:
    """Deliver the stream of `function_id`'s DynamoDB event source to that function until handle.stop().

    `environment` holds the local platform's variables the function's environments get on top of their template
    environment. Streams are read through the session's `dynamodbstreams` client (moto serves it only at an
    explicit endpoint: AWS_ENDPOINT_URL_DYNAMODB_STREAMS, set by `local.aws.moto_environment`). An idle poll is
    two requests to moto every `idle_wait_s` (Lambda polls a shard four times a second).
    """
    source = _EventSource.of(template, function_id)
    table_name = template.physical_name(_stream_table(template, function_id))
    stream_arn = session.client("dynamodb").describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
    reader = StreamReader(session.client("dynamodbstreams"), stream_arn, source.starting_position)
    failures = None
    if source.on_failure_queue:
        sqs = session.client("sqs")
        failures = (sqs, sqs.get_queue_url(QueueName=source.on_failure_queue)["QueueUrl"])
    function_arn = f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:function:{template.physical_name(function_id)}"
    runtime = FunctionRuntime(FunctionDefinition.from_template(template, function_id), environment, logs=function_logs)
    stats = StreamPollerStats()
    poller = _StreamPoller(
        reader, runtime, source, filter_patterns(template, function_id), failures, function_arn, retry_delay_s, stats
    )
    stop = threading.Event()

    def poll_until_stopped() -> None:
        while not stop.is_set():
            try:
                if not poller.step():
                    stop.wait(idle_wait_s)
            except (BotoCoreError, ClientError) as exc:  # moto stopping, connection refused: pause, go on
                if not stop.is_set():
                    logger.warning("%s stream poller: %s", function_id, exc)
                    stop.wait(1)

    thread = threading.Thread(target=poll_until_stopped, name=f"{function_id}-stream-poller", daemon=True)
    thread.start()
    return PollerHandle(1, stream_arn, stats, runtime, stop, [thread])
