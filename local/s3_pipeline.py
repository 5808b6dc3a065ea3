"""The S3 -> SQS -> batch-summarize pipeline on moto: resources built from template.yaml, and a poller that
delivers queue messages to an SQS-triggered function's own handler the way Lambda's SQS event source does (the
batch-summarize function; the same poller serves SummarizeConversationFunction's summary requests queue).

Like Lambda, the poller receives up to the event's BatchSize messages, calls the handler with an SQS
event, deletes the messages it reports as done and leaves the failed ones on the queue, so SQS counts
receives and moves a message to the DLQ after maxReceiveCount. Failed messages come back after a short
local retry delay rather than the deployed hour-long visibility timeout. The poller only builds events
and routes them: the function runs in its own execution environments (`local.lambda_runtime`), at most
the event source's MaximumConcurrency at once (one poller thread each), within its reserved concurrency.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from local.lambda_runtime import FunctionDefinition, FunctionRuntime
from local.template import LOCAL_REGION, Template

logger = logging.getLogger(__name__)

BUCKET_ID = "TranscriptsBucket"
QUEUE_ID = "TranscriptsQueue"
DEAD_LETTER_QUEUE_ID = "TranscriptsDeadLetterQueue"
FUNCTION_ID = "BatchSummarizeFunction"
DEFAULT_RETRY_DELAY_S = 2


@dataclass(frozen=True)
class PipelineResources:
    bucket: str
    queue_url: str
    queue_arn: str
    dead_letter_queue_url: str


def _properties(template: Template, logical_id: str) -> dict[str, Any]:
    return template.resolve(template.resources[logical_id].get("Properties") or {})


def _queue_attributes(properties: Mapping[str, Any]) -> dict[str, str]:
    names = ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "ReceiveMessageWaitTimeSeconds")
    return {name: str(properties[name]) for name in names if name in properties}


def _create_queue(template: Template, sqs: Any, logical_id: str) -> str:
    """Create one of the template's queues (and first its dead-letter queue); returns its URL (idempotent)."""
    properties = _properties(template, logical_id)
    attributes = _queue_attributes(properties)
    redrive = properties.get("RedrivePolicy")
    if redrive:
        dead_letter_url = _create_queue(template, sqs, _queue_id(template, redrive["deadLetterTargetArn"]))
        dead_letter_arn = _queue_arn(sqs, dead_letter_url)
        policy = {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": int(redrive["maxReceiveCount"])}
        attributes["RedrivePolicy"] = json.dumps(policy)
    return sqs.create_queue(QueueName=template.physical_name(logical_id), Attributes=attributes)["QueueUrl"]


def _queue_id(template: Template, arn: str) -> str:
    """The logical id of the template's queue with this (local) ARN."""
    name = arn.rsplit(":", 1)[-1]
    return next(
        logical_id
        for logical_id in template.resources_of_type("AWS::SQS::Queue")
        if template.physical_name(logical_id) == name
    )


def _queue_arn(sqs: Any, queue_url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def create_pipeline_resources(template: Template, session: Any) -> PipelineResources:
    """Create the template's queues (each with its DLQ), bucket and S3 -> SQS notification (idempotent)."""
    sqs, s3 = session.client("sqs"), session.client("s3")
    for logical_id in template.resources_of_type("AWS::SQS::Queue"):
        _create_queue(template, sqs, logical_id)
    resources = pipeline_resources(template, sqs)

    bucket = resources.bucket
    bucket_properties = _properties(template, BUCKET_ID)
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=bucket)
    if (bucket_properties.get("VersioningConfiguration") or {}).get("Status") == "Enabled":
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    if "BucketEncryption" in bucket_properties:
        # CloudFormation's ServerSideEncryptionByDefault is the API's ApplyServerSideEncryptionByDefault.
        rules = [
            {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
            for rule in bucket_properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        ]
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": rules})
    if "PublicAccessBlockConfiguration" in bucket_properties:
        s3.put_public_access_block(
            Bucket=bucket, PublicAccessBlockConfiguration=bucket_properties["PublicAccessBlockConfiguration"]
        )
    queue_configurations = []
    for configuration in (bucket_properties.get("NotificationConfiguration") or {}).get("QueueConfigurations", []):
        rules = (configuration.get("Filter") or {}).get("S3Key", {}).get("Rules", [])
        queue_configurations.append(
            {
                "QueueArn": resources.queue_arn,
                "Events": [configuration["Event"]],
                "Filter": {"Key": {"FilterRules": [{"Name": rule["Name"], "Value": rule["Value"]} for rule in rules]}},
            }
        )
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"QueueConfigurations": queue_configurations}
    )
    return resources


def pipeline_resources(template: Template, sqs: Any) -> PipelineResources:
    """The template's bucket and the transcripts queues, as created before (create_pipeline_resources)."""
    queue_url = sqs.get_queue_url(QueueName=template.physical_name(QUEUE_ID))["QueueUrl"]
    queue_arn = _queue_arn(sqs, queue_url)
    dlq_url = sqs.get_queue_url(QueueName=template.physical_name(DEAD_LETTER_QUEUE_ID))["QueueUrl"]
    return PipelineResources(template.physical_name(BUCKET_ID), queue_url, queue_arn, dlq_url)


def _sqs_record(message: dict, queue_arn: str) -> dict:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": LOCAL_REGION,
    }


@dataclass
class PollerStats:
    batches: int = 0
    succeeded: int = 0
    failed: int = 0
    handler_errors: int = 0
    handler_s: float = 0.0  # time inside the handler, over every batch
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, succeeded: int, failed: int, handler_error: bool, handler_s: float) -> None:
        with self._lock:
            self.handler_s += handler_s
            self.batches += 1
            self.succeeded += succeeded
            self.failed += failed
            self.handler_errors += int(handler_error)


@dataclass
class PollerHandle:
    workers: int
    source: str  # the queue URL, or the stream ARN (local.streams)
    stats: PollerStats
    runtime: FunctionRuntime
    _stop: threading.Event = field(repr=False)
    _threads: list[threading.Thread] = field(repr=False)

    def stop(self, timeout_s: float = 30) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self.runtime.stop()

    def __enter__(self) -> PollerHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def sqs_triggered_functions(template: Template) -> list[str]:
    """The template's functions with an SQS event source (each gets a poller of its own)."""
    functions = template.resources_of_type("AWS::Serverless::Function")
    return [
        logical_id
        for logical_id, resource in functions.items()
        if any(event.get("Type") == "SQS" for event in (resource.get("Properties", {}).get("Events") or {}).values())
    ]


def start_poller(
    template: Template,
    session: Any,
    *,
    function_id: str = FUNCTION_ID,
    workers: int | None = None,
    environment: Mapping[str, str] | None = None,
    idle_wait_s: float = 0.2,
    retry_delay_s: int = DEFAULT_RETRY_DELAY_S,
    function_logs: Any = None,
) -> PollerHandle:
    """Deliver the queue of `function_id`'s SQS event (default: the transcripts queue to the batch-summarize
    function) to that function until handle.stop().

    `workers` (concurrent batches) defaults to the event source's MaximumConcurrency; `environment` holds the
    local platform's variables the function's environments get on top of their template environment.
    """
    function = _properties(template, function_id)
    event_source = next(
        event["Properties"] for event in (function.get("Events") or {}).values() if event.get("Type") == "SQS"
    )
    batch_size = int(event_source.get("BatchSize", 10))
    workers = workers or int((event_source.get("ScalingConfig") or {}).get("MaximumConcurrency", 2))
    sqs = session.client("sqs")  # one client, shared: clients are thread-safe, their creation is not
    queue_url = sqs.get_queue_url(QueueName=template.physical_name(_queue_id(template, event_source["Queue"])))[
        "QueueUrl"
    ]
    queue_arn = _queue_arn(sqs, queue_url)
    definition = FunctionDefinition.from_template(template, function_id)
    runtime = FunctionRuntime(definition, environment, logs=function_logs)
    stop = threading.Event()
    stats = PollerStats()

    def poll_until_stopped() -> None:
        while not stop.is_set():
            try:
                received = _poll_once(sqs, runtime, queue_url, queue_arn, batch_size, retry_delay_s, stats)
                if not received:
                    stop.wait(idle_wait_s)
            except (BotoCoreError, ClientError) as exc:  # moto stopping, connection refused: pause, go on
                if not stop.is_set():
                    logger.warning("%s poller: %s", function_id, exc)
                    stop.wait(1)

    threads = [
        threading.Thread(target=poll_until_stopped, name=f"{function_id}-poller-{index}", daemon=True)
        for index in range(workers)
    ]
    for thread in threads:
        thread.start()
    return PollerHandle(workers, queue_url, stats, runtime, stop, threads)


def _poll_once(
    sqs: Any,
    runtime: FunctionRuntime,
    queue_url: str,
    queue_arn: str,
    batch_size: int,
    retry_delay_s: int,
    stats: PollerStats,
) -> int:
    """Receive one batch and hand it to the handler; returns the number of messages received."""
    messages = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=min(batch_size, 10),
        # Short polls: moto's long poll holds up the server's other requests while it waits.
        WaitTimeSeconds=0,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    ).get("Messages", [])
    if not messages:
        return 0
    event = {"Records": [_sqs_record(message, queue_arn) for message in messages]}
    handler_error = False
    handler_s = 0.0
    try:
        result = runtime.invoke(event)
        handler_s = result.handler_ms / 1000
        response = result.response or {}
        failed = {failure["itemIdentifier"] for failure in response.get("batchItemFailures", [])}
    except Exception:
        # As in Lambda: an invocation that fails (the handler raised, timed out, crashed) fails the whole batch.
        logger.exception("%s invocation failed", runtime.definition.logical_id)
        handler_error = True
        failed = {message["MessageId"] for message in messages}
    done = [message for message in messages if message["MessageId"] not in failed]
    retry = [message for message in messages if message["MessageId"] in failed]
    if done:
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(index), "ReceiptHandle": m["ReceiptHandle"]} for index, m in enumerate(done)],
        )
    if retry:
        sqs.change_message_visibility_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(index), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": retry_delay_s}
                for index, m in enumerate(retry)
            ],
        )
    stats.add(len(done), len(retry), handler_error, handler_s)
    return len(messages)
