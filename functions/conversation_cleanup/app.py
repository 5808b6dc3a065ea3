"""Deletes the messages of conversations whose META item was removed (TTL expiry, or a delete that
stopped half way), and the messages a clear made dead (a META change), from the table's stream; a failed
record is retried on its own."""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBRecordEventName,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from chatbot.settings import ConversationCleanupSettings
from chatbot.wiring import message_purger

logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
purger = message_purger(ConversationCleanupSettings.from_environment())


def purge(record: DynamoDBRecord) -> None:
    change = record.dynamodb
    partition_key = str(change.keys.get("pk", "")) if change else ""
    if change and record.event_name == DynamoDBRecordEventName.MODIFY:
        purger.purge_cleared(partition_key, change.old_image, change.new_image)
    else:
        purger.purge(partition_key)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return process_partial_response(event=event, record_handler=purge, processor=processor, context=context)
