"""SQS (summary requests the API queued) -> whole-conversation summaries too long for the API's time budget."""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from chatbot.settings import ConversationSummarySettings
from chatbot.wiring import conversation_summary_worker

logger = Logger()
tracer = Tracer()
metrics = Metrics()
# A batch whose every message failed is still a partial response (all listed), never an exception.
batch = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
settings = ConversationSummarySettings.from_environment()
service = conversation_summary_worker(settings)


@tracer.capture_method(capture_response=False)
def handle_record(record: SQSRecord, lambda_context: LambdaContext) -> None:
    receive_count = int(record.attributes.approximate_receive_count)
    outcome = service.complete_summary_request(
        record.body,
        final_attempt=receive_count >= settings.queue_max_receive_count,
        remaining_ms=lambda_context.get_remaining_time_in_millis,
    )
    logger.info("summary request handled", extra={"outcome": outcome, "receive_count": receive_count})


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return process_partial_response(event=event, record_handler=handle_record, processor=batch, context=context)
