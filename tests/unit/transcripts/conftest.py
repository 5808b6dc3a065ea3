"""Transcript pipeline fixtures: the template's table and bucket in moto, a recording stand-in summarizer."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
from chatbot.transcript_jobs.events import ObjectCreated
from chatbot.transcript_jobs.keys import TRANSCRIPT_MAX_BYTES, TRANSCRIPT_MAX_TOKENS
from chatbot.transcript_jobs.pipeline import TranscriptJobProcessor
from chatbot.transcript_jobs.store import JobStore
from chatbot.wiring import transcript_job_processor

from local.template import Template

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "transcripts"


class RecordingSummarizer:
    """First words of each text's first line; records calls; can be told to raise instead (for every call, or
    only for calls with a text containing `error_only_for`)."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.error: Exception | None = None
        self.error_only_for: str | None = None

    def __call__(self, texts: list[str]) -> list[str]:
        if self.error is not None and (self.error_only_for is None or any(self.error_only_for in t for t in texts)):
            raise self.error
        self.calls.append(list(texts))
        return [" ".join(text.split("\n")[0].split()[:20]) for text in texts]


@pytest.fixture
def lambda_context(lambda_context):
    """A fresh invocation of the batch function: its whole 600 s timeout is left."""
    return dataclasses.replace(lambda_context, remaining_ms=600_000)


@pytest.fixture
def summarizer() -> RecordingSummarizer:
    return RecordingSummarizer()


@pytest.fixture
def bucket(moto_table: str, template: Template) -> str:
    """The template's transcripts bucket (versioned, as deployed) in the same moto as the table."""
    name = template.physical_name("TranscriptsBucket")
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


@pytest.fixture
def jobs(moto_table: str) -> JobStore:
    return JobStore(moto_table, boto3.client("dynamodb"))


@pytest.fixture
def processor(jobs: JobStore, bucket: str, summarizer: RecordingSummarizer) -> TranscriptJobProcessor:
    return TranscriptJobProcessor(
        s3=boto3.client("s3"),
        jobs=jobs,
        summarize=summarizer,
        summarizer_label={"endpoint": "local-endpoint", "component": "summarizer"},
        max_bytes=TRANSCRIPT_MAX_BYTES,
        max_tokens=TRANSCRIPT_MAX_TOKENS,
        max_input_tokens=1024,
        lease_s=900,
    )


_sequencers = itertools.count(0x1000)


@pytest.fixture
def upload(bucket: str) -> Callable[..., ObjectCreated]:
    """Put bytes under a key and return the notification S3 would send for that version."""

    def put(key: str, data: bytes) -> ObjectCreated:
        response = boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=data)
        return ObjectCreated(
            bucket=bucket,
            key=key,
            size=len(data),
            etag=response["ETag"].strip('"'),
            version_id=response.get("VersionId"),
            sequencer=f"{next(_sequencers):016X}",
        )

    return put


@pytest.fixture
def handler_module(moto_table, bucket, summarizer, load_handler, monkeypatch):
    """The batch function's own module, loaded as Lambda loads it; its processor comes from the function's
    wiring with the recording summarizer standing in for the endpoint."""
    module = load_handler("BatchSummarizeFunction")
    processor = transcript_job_processor(module.settings, summarize=summarizer)
    monkeypatch.setattr(module, "transcript_jobs", processor)
    return module


@pytest.fixture
def api(moto_table, bucket, load_handler):
    """The transcripts API function's module, loaded as Lambda loads it, over moto."""
    return load_handler("TranscriptsApiFunction")
