"""The hostile corpus and a few good transcripts dropped into the stack's bucket at once, the summarizer failing
for one of them: afterwards every object is accounted for (bench.hostile.reconcile_batch)."""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path

import boto3
import pytest
from chatbot.transcript_jobs.store import JobStore
from chatbot.transcript_parsing import FailureCode

from bench.hostile import drop_batch, reconcile_batch
from bench.hostile_corpus import CORPUS, SUMMARIZED
from local.s3_pipeline import pipeline_resources
from local.template import Template

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "transcripts"
GOOD_SAMPLES = ("webvtt_voices.vtt", "transcribe_speaker_labels.json", "subrip.srt")
SUMMARIZER_FAILS_ON = "the summarizer breaks on this sentence"
WAIT_S = 600


def test_a_hostile_batch_ends_with_every_file_accounted_for_and_nothing_stuck(stack):
    # Given the whole corpus, good transcripts (one under a key S3 must encode), and one transcript the
    # summarizer fails on, under a prefix of this run
    prefix = f"incoming/hostile-batch-{uuid.uuid4().hex[:8]}/"
    files = {f"{prefix}{case.name}": case.data for case in CORPUS}
    expected = {f"{prefix}{case.name}": case.outcome for case in CORPUS}
    for name in GOOD_SAMPLES:
        files[f"{prefix}good/{name}"] = (FIXTURES / name).read_bytes()
    files[f"{prefix}good/call with spaces + a plus, 100% ü.txt"] = (FIXTURES / "plain_text.txt").read_bytes()
    files[f"{prefix}summarizer-fails.txt"] = f"Agent: Hello.\nCustomer: {SUMMARIZER_FAILS_ON}.\n".encode()
    expected |= {key: SUMMARIZED for key in files if key.startswith(f"{prefix}good/")}
    expected[f"{prefix}summarizer-fails.txt"] = FailureCode.SUMMARIZER_FAILED
    stack.faults.summarizer_fails_on = SUMMARIZER_FAILS_ON
    template = Template(parameters=stack.stack.template_parameters())
    session = boto3.session.Session()
    resources = pipeline_resources(template, session.client("sqs"))

    # When they land in the bucket at once and the pipeline has finished with them (bounded)
    drop_batch(session.client("s3"), resources.bucket, files)
    report = reconcile_batch(
        prefix=prefix,
        expected=expected,
        jobs=JobStore(template.physical_name("ChatbotTable"), session.client("dynamodb")),
        dynamodb=session.client("dynamodb"),
        s3=session.client("s3"),
        sqs=session.client("sqs"),
        resources=resources,
        timeout_s=WAIT_S,
    )

    # Then each file has one terminal job with its expected outcome and written record, and no notification of the
    # batch is left on the queue or dead-lettered
    assert report.problems == []
    assert report.outcomes == Counter(expected.values())
