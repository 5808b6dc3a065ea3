"""Scheduled: deletes the messages and Idempotency-Key items that conversation clean-ups and clears left behind,
resuming where the last run stopped (chatbot.conversations.sweeper)."""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from chatbot.settings import OrphanSweepSettings
from chatbot.wiring import orphan_sweeper

logger = Logger()
tracer = Tracer()
metrics = Metrics()
sweeper = orphan_sweeper(OrphanSweepSettings.from_environment())


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return sweeper.sweep(remaining_ms=context.get_remaining_time_in_millis).as_dict()
