"""Typed settings per Lambda function: each class holds exactly the variables its template entry sets
(template.yaml's Globals plus the function's own Environment), read once from the environment.

Tunables the template does not set (token budgets, limits, timeouts of the API's model calls) are not
settings: they are the defaults of the domain's own policies (e.g. chatbot.conversations.policy.ChatPolicy).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class SettingsError(ValueError):
    """The environment does not describe a usable configuration; the message names each variable."""


class FunctionSettings(BaseModel):
    """What Globals.Function.Environment gives every function."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    table_name: str = Field(alias="TABLE_NAME", min_length=3)
    endpoint_name: str = Field(alias="SAGEMAKER_ENDPOINT_NAME", min_length=1)
    chat_component_name: str = Field(alias="CHAT_COMPONENT_NAME", min_length=1)
    summarizer_component_name: str = Field(alias="SUMMARIZER_COMPONENT_NAME", min_length=1)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read this function's variables from `environ` (default os.environ); raises SettingsError naming
        each missing or invalid variable."""
        environ = os.environ if environ is None else environ
        names = [field.alias for field in cls.model_fields.values() if field.alias]
        values = {name: environ[name] for name in names if environ.get(name, "") != ""}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = [f"{error['loc'][0] if error['loc'] else 'settings'}: {error['msg']}" for error in exc.errors()]
            raise SettingsError("invalid environment: " + "; ".join(problems)) from None


class ConversationsSettings(FunctionSettings):
    """ConversationsFunction."""

    conversation_ttl_days: int = Field(30, alias="CONVERSATION_TTL_DAYS", ge=1)
    cors_allow_origin: str = Field("*", alias="CORS_ALLOW_ORIGIN", min_length=1)
    # Conversations about a call read its summary document (job records name their bucket; older ones do not).
    transcripts_bucket: str = Field(alias="TRANSCRIPTS_BUCKET", min_length=3)
    # Summaries too long for the API's time budget are queued here (SummarizeConversationFunction makes them).
    summary_queue_url: str = Field(alias="SUMMARY_QUEUE_URL", min_length=1)
    # Model requests (sends, retries, summaries) one user may make per minute (chatbot.quotas); 0: no quota.
    user_chat_requests_per_minute: int = Field(20, alias="USER_CHAT_REQUESTS_PER_MINUTE", ge=0)


class TranscriptsApiSettings(FunctionSettings):
    """TranscriptsApiFunction."""

    transcripts_bucket: str = Field(alias="TRANSCRIPTS_BUCKET", min_length=3)
    cors_allow_origin: str = Field("*", alias="CORS_ALLOW_ORIGIN", min_length=1)
    # Job records expire after this many days; the bucket's lifecycle rules expire their objects alike.
    job_ttl_days: int = Field(90, alias="JOB_TTL_DAYS", ge=1)
    # Upload forms one user may request per hour (chatbot.quotas); 0: no quota.
    user_transcript_uploads_per_hour: int = Field(30, alias="USER_TRANSCRIPT_UPLOADS_PER_HOUR", ge=0)


class BatchSummarizeSettings(FunctionSettings):
    """BatchSummarizeFunction: no API Gateway in front, so its model calls may take longer and retry more."""

    transcripts_bucket: str = Field(alias="TRANSCRIPTS_BUCKET", min_length=3)
    job_ttl_days: int = Field(90, alias="JOB_TTL_DAYS", ge=1)
    model_timeout_s: float = Field(alias="MODEL_TIMEOUT_S", gt=0)
    model_max_attempts: int = Field(alias="MODEL_MAX_ATTEMPTS", ge=1, le=10)
    # A worker that holds a job longer than this is presumed dead and another may take the job over.
    job_lease_s: int = Field(alias="JOB_LEASE_S", ge=10)
    # The queue's RedrivePolicy maxReceiveCount: the receive after which a failed message goes to the DLQ.
    queue_max_receive_count: int = Field(alias="QUEUE_MAX_RECEIVE_COUNT", ge=1)


class ConversationCleanupSettings(FunctionSettings):
    """ConversationCleanupFunction: Globals only."""


class OrphanSweepSettings(FunctionSettings):
    """OrphanSweepFunction: Globals only."""


class ConversationSummarySettings(FunctionSettings):
    """SummarizeConversationFunction: no API Gateway in front, so its summarizer calls may take longer and retry."""

    model_timeout_s: float = Field(alias="MODEL_TIMEOUT_S", gt=0)
    model_max_attempts: int = Field(alias="MODEL_MAX_ATTEMPTS", ge=1, le=10)
    # SummaryRequestsQueue's RedrivePolicy maxReceiveCount: on that receive a failing request is marked failed.
    queue_max_receive_count: int = Field(alias="QUEUE_MAX_RECEIVE_COUNT", ge=1)
