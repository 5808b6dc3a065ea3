"""Typed settings for the Lambda functions, read once from the environment.

Names of the environment variables come from template.yaml (Globals and each function's Environment);
everything else has a default that fits the reference deployment (Llama-2-7B-chat with a 4096-token
context, BART with a 1024-token input limit).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# env var name -> field name; only these are read, so a typo in the template fails loudly in one place.
_ENV_FIELDS = {
    "TABLE_NAME": "table_name",
    "SAGEMAKER_ENDPOINT_NAME": "endpoint_name",
    "CHAT_COMPONENT_NAME": "chat_component_name",
    "SUMMARIZER_COMPONENT_NAME": "summarizer_component_name",
    "CHAT_CONTEXT_TOKENS": "chat_context_tokens",
    "CHAT_MAX_NEW_TOKENS": "chat_max_new_tokens",
    "CHAT_TEMPERATURE": "chat_temperature",
    "SUMMARIZER_MAX_INPUT_TOKENS": "summarizer_max_input_tokens",
    "MAX_MESSAGE_CHARS": "max_message_chars",
    "CHAT_WINDOW_MESSAGES": "chat_window_messages",
    "CORS_ALLOW_ORIGIN": "cors_allow_origin",
    "CONVERSATION_TTL_DAYS": "conversation_ttl_days",
    "MODEL_TIMEOUT_S": "model_timeout_s",
    "MODEL_MAX_ATTEMPTS": "model_max_attempts",
    "FOLD_TIMEOUT_S": "fold_timeout_s",
    "TRANSCRIPTS_BUCKET": "transcripts_bucket",
    "TRANSCRIPT_MAX_BYTES": "transcript_max_bytes",
    "TRANSCRIPT_SUMMARY_MAX_TOKENS": "transcript_summary_max_tokens",
    "JOB_TTL_DAYS": "job_ttl_days",
    "JOB_LEASE_S": "job_lease_s",
    "UPLOAD_URL_EXPIRES_S": "upload_url_expires_s",
}


class SettingsError(ValueError):
    """The environment does not describe a usable configuration; the message names each variable."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    table_name: str = Field(min_length=3)
    endpoint_name: str = Field(min_length=1)
    chat_component_name: str = Field(min_length=1)
    summarizer_component_name: str = Field(min_length=1)

    # Chat memory: the prompt (system + rolling summary + newest messages) must fit
    # chat_context_tokens - chat_max_new_tokens, counted with chatbot.tokens.estimate_tokens.
    chat_context_tokens: int = Field(4096, ge=256)
    chat_max_new_tokens: int = Field(512, ge=1)
    chat_temperature: float | None = Field(None, ge=0, le=2)
    summarizer_max_input_tokens: int = Field(1024, ge=64)

    # A longer message is refused with 413 (title and system prompt limits live in the request models).
    max_message_chars: int = Field(8_000, ge=1)
    # Most messages sent verbatim per turn; bounds the DynamoDB read per turn.
    chat_window_messages: int = Field(12, ge=2, le=200)
    cors_allow_origin: str = "*"

    conversation_ttl_days: int = Field(30, ge=1)

    # The whole model call, retries included, must end before API Gateway's 29 s integration timeout.
    model_timeout_s: float = Field(24.0, gt=0)
    model_max_attempts: int = Field(2, ge=1, le=10)
    # Folding old messages into the rolling summary runs after the answer, only if this much time is left.
    fold_timeout_s: float = Field(8.0, gt=0)

    # Transcripts (batch summaries and the upload API); the bucket is set only on the functions that use it.
    transcripts_bucket: str = ""
    transcript_max_bytes: int = Field(10 * 1024 * 1024, ge=1)
    transcript_summary_max_tokens: int = Field(160, ge=16)
    job_ttl_days: int = Field(90, ge=1)
    # A worker that holds a job longer than this is presumed dead and another may take the job over.
    job_lease_s: int = Field(900, ge=10)
    upload_url_expires_s: int = Field(900, ge=60, le=604_800)

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.chat_max_new_tokens >= self.chat_context_tokens // 2:
            raise ValueError("CHAT_MAX_NEW_TOKENS must be under half of CHAT_CONTEXT_TOKENS (room for the prompt)")
        return self

    @property
    def chat_prompt_budget_tokens(self) -> int:
        """Tokens available for system prompt, rolling summary and recent messages."""
        return self.chat_context_tokens - self.chat_max_new_tokens


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from `environ` (default os.environ); raises SettingsError naming each bad variable."""
    environ = os.environ if environ is None else environ
    values = {field: environ[name] for name, field in _ENV_FIELDS.items() if environ.get(name, "") != ""}
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        field_to_env = {field: name for name, field in _ENV_FIELDS.items()}
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            problems.append(f"{field_to_env.get(field, field) or 'settings'}: {error['msg']}")
        raise SettingsError("invalid environment: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached: Lambda environments do not change while warm)."""
    return load_settings()
