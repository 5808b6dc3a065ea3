"""SQS (S3 notifications for incoming/) -> transcript summaries; failed messages only are retried."""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from chatbot.settings import BatchSummarizeSettings
from chatbot.wiring import transcript_job_processor

logger = Logger()
tracer = Tracer()
metrics = Metrics()
# A batch whose every message failed is still a partial response (all listed), never an exception.
batch = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
settings = BatchSummarizeSettings.from_environment()
transcript_jobs = transcript_job_processor(settings)


@tracer.capture_method
def handle_record(record: SQSRecord, lambda_context: LambdaContext) -> None:
    outcomes = transcript_jobs.process_message(
        record.body,
        receive_count=int(record.attributes.approximate_receive_count),
        max_receive_count=settings.queue_max_receive_count,
        remaining_ms=lambda_context.get_remaining_time_in_millis,
    )
    for outcome in outcomes:
        logger.info("transcript handled", extra={"key": outcome.key, "result": outcome.result.value})


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return process_partial_response(event=event, record_handler=handle_record, processor=batch, context=context)
