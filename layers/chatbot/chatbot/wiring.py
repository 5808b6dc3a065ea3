"""One wiring function per Lambda function: its typed settings in, its service out, with every AWS client built
here (at import time in the handler, once per execution environment, as Lambda recommends).

Tests pass their doubles (a Stubber-wrapped client, an in-process model) through the keyword arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config

from chatbot.clock import iso_utc
from chatbot.conversations.policy import ChatPolicy
from chatbot.conversations.retention import MessagePurger
from chatbot.conversations.service import ConversationService
from chatbot.conversations.store import ConversationStore
from chatbot.conversations.summary_requests import SummaryQueue
from chatbot.conversations.sweep_store import SweepStore
from chatbot.conversations.sweeper import OrphanSweeper
from chatbot.inference import InferenceClient
from chatbot.quotas import UserQuota, chat_requests_per_minute, transcript_uploads_per_hour
from chatbot.settings import (
    BatchSummarizeSettings,
    ConversationCleanupSettings,
    ConversationsSettings,
    ConversationSummarySettings,
    FunctionSettings,
    OrphanSweepSettings,
    TranscriptsApiSettings,
)
from chatbot.summarization import SUMMARIZER_MAX_INPUT_TOKENS
from chatbot.transcript_jobs.api import TranscriptsService
from chatbot.transcript_jobs.calls import CallTranscripts
from chatbot.transcript_jobs.keys import TRANSCRIPT_MAX_BYTES, TRANSCRIPT_MAX_TOKENS
from chatbot.transcript_jobs.pipeline import TranscriptJobProcessor
from chatbot.transcript_jobs.store import JobStore

UPLOAD_URL_EXPIRES_S = 300  # short: the presigned POST may be used again until it expires
TRANSCRIPT_SUMMARY_MAX_TOKENS = 160
# Time the batch function keeps, after its last summarizer call, to release or fail the job and write records.
OUTCOME_WRITE_RESERVE_MS = 15_000


def api_dynamodb_client() -> Any:
    """DynamoDB with adaptive retries and timeouts short enough for the API's time budget."""
    return boto3.client(
        "dynamodb",
        config=Config(retries={"mode": "adaptive", "total_max_attempts": 3}, connect_timeout=2, read_timeout=5),
    )


def _inference(settings: FunctionSettings, sagemaker_runtime: Any, timeout_s: float, max_attempts: int) -> Any:
    return InferenceClient(
        settings.endpoint_name,
        settings.chat_component_name,
        settings.summarizer_component_name,
        sagemaker_runtime,
        timeout_s=timeout_s,
        max_attempts=max_attempts,
    )


def conversations_service(
    settings: ConversationsSettings,
    *,
    policy: ChatPolicy | None = None,
    dynamodb: Any = None,
    sagemaker_runtime: Any = None,
    s3: Any = None,
    sqs: Any = None,
    clock: Callable[[], Any] | None = None,
) -> ConversationService:
    """ConversationsFunction: the store on the table, the endpoint's two components, the chat policy, the
    summarized calls (job records and summary documents) that conversations about a call read, and the
    per-user quota of model requests."""
    policy = policy or ChatPolicy(conversation_ttl_days=settings.conversation_ttl_days)
    extra = {"clock": clock} if clock else {}
    dynamodb = dynamodb or api_dynamodb_client()
    quota_limit = chat_requests_per_minute(settings.user_chat_requests_per_minute)
    quota_clock = {"clock": lambda: clock().timestamp()} if clock else {}
    return ConversationService(
        ConversationStore(settings.table_name, dynamodb),
        _inference(settings, sagemaker_runtime, policy.model_timeout_s, policy.model_max_attempts),
        policy,
        # Folding into the rolling summary gets its own, shorter budget and no retry.
        fold_inference=lambda: _inference(settings, sagemaker_runtime, policy.fold_timeout_s, 1),
        calls=CallTranscripts(
            JobStore(settings.table_name, dynamodb), s3 or boto3.client("s3"), settings.transcripts_bucket
        ),
        summary_queue=SummaryQueue(settings.summary_queue_url, lambda: sqs or boto3.client("sqs")),
        quota=UserQuota(settings.table_name, dynamodb, quota_limit, **quota_clock),
        **extra,
    )


def transcripts_api_service(
    settings: TranscriptsApiSettings, *, dynamodb: Any = None, s3: Any = None, clock: Callable[[], float] | None = None
) -> TranscriptsService:
    """TranscriptsApiFunction: job records, presigned upload URLs, and the per-user upload quota."""
    dynamodb = dynamodb or api_dynamodb_client()
    extra = {"clock": clock} if clock else {}
    quota_limit = transcript_uploads_per_hour(settings.user_transcript_uploads_per_hour)
    return TranscriptsService(
        jobs=JobStore(settings.table_name, dynamodb, ttl_days=settings.job_ttl_days),
        # SigV4 is required for presigned URLs in newer regions and for KMS-encrypted buckets.
        s3=s3 or boto3.client("s3", config=Config(signature_version="s3v4")),
        bucket=settings.transcripts_bucket,
        url_expires_s=UPLOAD_URL_EXPIRES_S,
        max_bytes=TRANSCRIPT_MAX_BYTES,
        quota=UserQuota(settings.table_name, dynamodb, quota_limit, **extra),
        **extra,
    )


def transcript_job_processor(
    settings: BatchSummarizeSettings,
    *,
    dynamodb: Any = None,
    s3: Any = None,
    sagemaker_runtime: Any = None,
    summarize: Callable[[list[str]], list[str]] | None = None,
) -> TranscriptJobProcessor:
    """BatchSummarizeFunction: S3 in and out, job records, the summarizer with the batch function's budget
    (`summarize` replaces the endpoint's summarizer component, e.g. with an in-process model)."""
    if summarize is None:
        inference = _inference(settings, sagemaker_runtime, settings.model_timeout_s, settings.model_max_attempts)

        def summarize(texts: list[str]) -> list[str]:
            return inference.summarize(texts, max_length=TRANSCRIPT_SUMMARY_MAX_TOKENS)

    return TranscriptJobProcessor(
        s3=s3 or boto3.client("s3"),
        jobs=JobStore(settings.table_name, dynamodb or boto3.client("dynamodb"), ttl_days=settings.job_ttl_days),
        summarize=summarize,
        summarizer_label={"endpoint": settings.endpoint_name, "component": settings.summarizer_component_name},
        max_bytes=TRANSCRIPT_MAX_BYTES,
        max_tokens=TRANSCRIPT_MAX_TOKENS,
        max_input_tokens=SUMMARIZER_MAX_INPUT_TOKENS,
        lease_s=settings.job_lease_s,
        # One attempt of a summarizer call, plus time to write the outcome.
        call_reserve_ms=int(settings.model_timeout_s * 1000) + OUTCOME_WRITE_RESERVE_MS,
    )


def message_purger(settings: ConversationCleanupSettings, *, dynamodb: Any = None) -> MessagePurger:
    """ConversationCleanupFunction: deletes the messages of removed conversations."""
    return MessagePurger(ConversationStore(settings.table_name, dynamodb or boto3.client("dynamodb")))


# Items per Scan page of the orphan sweep, and the time a run keeps for one more page (Scan, META reads, deletes).
SWEEP_PAGE_SIZE = 1000
SWEEP_RESERVE_MS = 60_000


def orphan_sweeper(settings: OrphanSweepSettings, *, dynamodb: Any = None) -> OrphanSweeper:
    """OrphanSweepFunction: deletes messages and Idempotency-Key items left by failed clean-ups and clears."""
    return OrphanSweeper(
        SweepStore(settings.table_name, dynamodb or boto3.client("dynamodb")),
        page_size=SWEEP_PAGE_SIZE,
        reserve_ms=SWEEP_RESERVE_MS,
        now_iso=lambda: iso_utc(datetime.now(UTC)),
    )


def conversation_summary_worker(
    settings: ConversationSummarySettings,
    *,
    policy: ChatPolicy | None = None,
    dynamodb: Any = None,
    sagemaker_runtime: Any = None,
) -> ConversationService:
    """SummarizeConversationFunction: the conversation store and the summarizer with the worker's own budget."""
    policy = policy or ChatPolicy()
    inference = _inference(settings, sagemaker_runtime, settings.model_timeout_s, settings.model_max_attempts)
    return ConversationService(
        ConversationStore(settings.table_name, dynamodb or boto3.client("dynamodb")), inference, policy
    )
