"""End to end on loopback: moto server (S3, SQS, DynamoDB) + local SageMaker endpoint (extractive summarizer)
+ local API gateway + the S3 -> SQS -> batch-summarize poller, driven by the CLI and the REST API."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import requests

from local.aws import create_table_from_template, patched_environ, start_moto
from local.endpoint.server import start_endpoint
from local.gateway import start_gateway
from local.s3_pipeline import PipelineResources, create_pipeline_resources, start_poller
from local.stack import endpoint_parameters
from local.template import Template
from local.transcripts import main as transcripts_cli
from provisioning.config import load_config

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "transcripts"
WAIT_S = 60


@dataclass
class Stack:
    moto_url: str
    api_url: str
    resources: PipelineResources
    table: str


@pytest.fixture(autouse=True)
def aws_env() -> None:
    """Replaces the suite's per-test environment reset: this module's stack owns the AWS variables."""


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    config = load_config()
    with ExitStack() as running:
        moto = running.enter_context(start_moto(port=0))
        endpoint = running.enter_context(start_endpoint(config, port=0))
        environment = {**moto.environment(), "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": endpoint.url}
        running.enter_context(patched_environ(environment))  # this test's own clients (CLI, checks) reach moto
        parameters = endpoint_parameters(config)
        template = Template(parameters=parameters)
        session = boto3.session.Session()
        table = create_table_from_template(template, session.client("dynamodb"))
        resources = create_pipeline_resources(template, session)
        gateway = running.enter_context(
            start_gateway(template.path, port=0, environment=environment, parameters=parameters)
        )
        running.enter_context(start_poller(template, session, environment=environment, retry_delay_s=1))
        yield Stack(moto.url, gateway.url, resources, table)


def wait_for(condition, timeout_s: float = WAIT_S, interval_s: float = 0.25):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s} s")


def test_cli_uploads_a_folder_follows_the_jobs_and_prints_a_table(stack, tmp_path):
    # Given a folder with every sample format and one file that is not a transcript
    folder = tmp_path / "calls"
    folder.mkdir()
    for sample in FIXTURES.iterdir():
        (folder / sample.name).write_bytes(sample.read_bytes())
    (folder / "notes.txt").write_text("Remember to buy milk.\n")
    out = io.StringIO()

    # When
    exit_code = transcripts_cli(
        ["--moto-url", stack.moto_url, "upload", str(folder), "--prefix", "incoming/e2e-cli/", "--timeout", "60"],
        out=out,
    )

    # Then every job finished: the samples with summaries, the note with a failure (exit code 1)
    table = out.getvalue()
    assert exit_code == 1
    assert table.count("succeeded") == len(list(FIXTURES.iterdir()))
    assert "[unknown_format]" in table
    s3 = boto3.client("s3")
    summary = json.loads(
        s3.get_object(Bucket=stack.resources.bucket, Key="summaries/e2e-cli/plain_text.txt.json")["Body"].read()
    )
    assert "router" in summary["summary"]
    assert summary["summarizer"]["component"] == "summarizer"
    failure = json.loads(
        s3.get_object(Bucket=stack.resources.bucket, Key="failed/e2e-cli/notes.txt.json")["Body"].read()
    )
    assert failure["error"]["code"] == "unknown_format"

    # And the status command shows the same jobs for the CLI's user
    status_out = io.StringIO()
    assert transcripts_cli(["--moto-url", stack.moto_url, "status", "--json", "--limit", "50"], out=status_out) == 0
    statuses = {record["filename"]: record["status"] for record in json.loads(status_out.getvalue())}
    assert statuses["notes.txt"] == "failed"
    assert statuses["webvtt_voices.vtt"] == "succeeded"


def test_api_upload_form_then_post_then_the_job_shows_its_summary(stack):
    # Given a signed-in caller asking for an upload
    alice = {"Authorization": "Bearer local-alice"}
    created = requests.post(
        f"{stack.api_url}/v1/transcripts", json={"filename": "call with Zoë.vtt"}, headers=alice, timeout=10
    )
    assert created.status_code == 201, created.text
    job, upload = created.json()["job"], created.json()["upload"]
    assert job["status"] == "queued"

    # When the file is POSTed with the presigned form
    content = (FIXTURES / "webvtt_voices.vtt").read_bytes()
    files = {"file": ("call.vtt", content, upload["content_type"])}
    posted = requests.post(upload["url"], data=upload["fields"], files=files, timeout=10)
    assert posted.status_code in (200, 201, 204), posted.text

    # Then the job succeeds with a summary, is listed for alice, and is invisible to bob
    def finished():
        response = requests.get(f"{stack.api_url}/v1/transcripts/{job['job_id']}", headers=alice, timeout=10)
        return response.json() if response.json()["status"] in ("succeeded", "failed") else None

    done = wait_for(finished)
    assert done["status"] == "succeeded"
    assert done["format"] == "webvtt" and done["speakers"] == ["Maria", "Sam Lee"]
    assert "router" in done["summary"]
    # And it carries every parsed turn (a short call), in order, each from a named speaker
    assert len(done["transcript"]) == done["turns"] and done["turns_truncated"] is False
    assert done["transcript"][0]["speaker"] in done["speakers"] and done["transcript"][0]["text"]
    assert {turn["speaker"] for turn in done["transcript"]} == set(done["speakers"])
    listed = requests.get(f"{stack.api_url}/v1/transcripts", headers=alice, timeout=10).json()
    assert job["job_id"] in [item["job_id"] for item in listed["items"]]
    assert all(item["transcript"] is None for item in listed["items"])
    bob = {"Authorization": "Bearer local-bob"}
    assert requests.get(f"{stack.api_url}/v1/transcripts/{job['job_id']}", headers=bob, timeout=10).status_code == 404
    assert requests.get(f"{stack.api_url}/v1/transcripts", timeout=10).status_code == 401

    # When bob, then alice, delete the job
    job_url = f"{stack.api_url}/v1/transcripts/{job['job_id']}"
    assert requests.delete(job_url, headers=bob, timeout=10).status_code == 404
    assert requests.delete(job_url, headers=alice, timeout=10).status_code == 204

    # Then it is gone, with its upload and summary
    assert requests.get(job_url, headers=alice, timeout=10).status_code == 404
    listing = boto3.client("s3").list_object_versions(Bucket=stack.resources.bucket)
    gone = (job["source_key"], done["summary_key"])
    assert [version for version in listing.get("Versions", []) if version["Key"] in gone] == []


def test_a_poison_message_ends_in_the_dlq_and_redrive_moves_it_back(stack):
    # Given a message on the queue that is not an S3 notification
    sqs = boto3.client("sqs")
    sqs.send_message(QueueUrl=stack.resources.queue_url, MessageBody="definitely not an S3 event")

    # When the poller has failed it maxReceiveCount times
    def in_dead_letter_queue():
        attributes = sqs.get_queue_attributes(
            QueueUrl=stack.resources.dead_letter_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) == 1

    wait_for(in_dead_letter_queue)

    # Then the redrive command moves it back to the queue
    out = io.StringIO()
    assert transcripts_cli(["--moto-url", stack.moto_url, "redrive"], out=out) == 0
    assert out.getvalue().startswith("moved 1 message(s)")
