"""Transcript pipeline fixtures: the template's table and bucket in moto, a recording stand-in summarizer."""

from __future__ import annotations

import importlib.util
import itertools
import uuid
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
from chatbot.jobs.events import ObjectCreated
from chatbot.jobs.pipeline import TranscriptJobProcessor
from chatbot.jobs.store import JobStore
from chatbot.settings import get_settings

from local.template import Template

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "transcripts"


class RecordingSummarizer:
    """First words of each text's first line; records calls; can be told to raise instead."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.error: Exception | None = None

    def __call__(self, texts: list[str]) -> list[str]:
        if self.error is not None:
            raise self.error
        self.calls.append(list(texts))
        return [" ".join(text.split("\n")[0].split()[:20]) for text in texts]


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
    return JobStore(moto_table)


@pytest.fixture
def processor(jobs: JobStore, bucket: str, summarizer: RecordingSummarizer) -> TranscriptJobProcessor:
    return TranscriptJobProcessor(
        s3=boto3.client("s3"),
        jobs=jobs,
        summarize=summarizer,
        summarizer_label={"endpoint": "local-endpoint", "component": "summarizer"},
        max_bytes=256 * 1024,
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
def handler_module(processor, monkeypatch):
    """The function's own module (loaded from its file, as Lambda does) wired to the moto-backed processor."""
    spec = importlib.util.spec_from_file_location(
        f"batch_summarize_app_{uuid.uuid4().hex}", ROOT / "functions" / "batch_summarize" / "app.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "transcript_jobs", lambda: processor)
    return module


@pytest.fixture
def api(moto_table, bucket, monkeypatch):
    """The API function's module, loaded from its file with the template-like environment, over moto."""
    for name, value in {
        "TABLE_NAME": moto_table,
        "TRANSCRIPTS_BUCKET": bucket,
        "SAGEMAKER_ENDPOINT_NAME": "genai-chatbot-local",
        "CHAT_COMPONENT_NAME": "chat",
        "SUMMARIZER_COMPONENT_NAME": "summarizer",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    spec = importlib.util.spec_from_file_location(
        f"transcripts_api_{uuid.uuid4().hex}", ROOT / "functions" / "transcripts_api" / "app.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    get_settings.cache_clear()
