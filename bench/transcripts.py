"""Transcript pipeline benchmark: transcripts per minute through the local pipeline (moto S3 -> SQS -> poller ->
batch handler -> local endpoint's default extractive summarizer -> S3 + DynamoDB) with one and with two
concurrent workers, and the peak Python memory of summarizing a 10,000-turn transcript.

Run: `python -m bench.transcripts` (or `make bench`). Figures are ratios against the one-worker run of
the same process, so they compare across machines.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from subprocess import DEVNULL
from typing import Any

import boto3
from chatbot.inference import InferenceClient
from chatbot.summarization import summarize_turns
from chatbot.transcript_jobs import pipeline
from chatbot.transcript_jobs.keys import job_id_for_key
from chatbot.transcript_jobs.store import JobStore
from chatbot.transcript_parsing import parse_transcript

from local.aws import create_table_from_template, patched_environ, start_moto_process
from local.endpoint.server import start_endpoint
from local.s3_pipeline import PipelineResources, PollerHandle, create_pipeline_resources, start_poller
from local.stack import endpoint_parameters
from local.template import Template
from provisioning.config import EndpointConfig, load_config

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "transcripts"
TRANSCRIPTS_PER_RUN = 40
TIMEOUT_S = 300
LONG_CALL_TURNS = 10_000


def long_call(turn_count: int = LONG_CALL_TURNS) -> bytes:
    """A plain-text call of `turn_count` alternating turns (varied sentences, like a long support call)."""
    topics = ("the router", "my invoice", "the delivery", "the refund", "my password", "the contract")
    lines = []
    for index in range(turn_count):
        speaker = ("Agent", "Customer")[index % 2]
        topic = topics[index % len(topics)]
        lines.append(
            f"{speaker}: About {topic}, point {index}: it stopped working again after the update on day {index % 30}."
        )
    return ("\n".join(lines) + "\n").encode("utf-8")


def _samples() -> list[bytes]:
    return [path.read_bytes() for path in sorted(FIXTURES.iterdir())]


@dataclass
class PipelineRun:
    workers: int
    per_minute: float
    handler_s: float  # per transcript, inside the batch function
    moto_s: float  # per transcript, moto serving requests (the function's and the poller's)


@dataclass
class LocalPipeline:
    """moto (in a child process) and the local endpoint, with the template's table, bucket and queues."""

    config: EndpointConfig
    template: Template
    session: Any
    environment: dict[str, str]
    moto: Any
    resources: PipelineResources

    def poller(self, workers: int | None = None) -> PollerHandle:
        """The S3 -> SQS -> batch function poller (the function's logs discarded: figures only)."""
        return start_poller(
            self.template,
            self.session,
            workers=workers,
            environment=self.environment,
            retry_delay_s=1,
            function_logs=DEVNULL,
        )


@contextmanager
def local_pipeline() -> Iterator[LocalPipeline]:
    config = load_config()
    with start_moto_process(port=0) as moto, start_endpoint(config, port=0) as endpoint:
        environment = {
            **moto.environment(),
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": endpoint.url,
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
        with patched_environ(environment):
            template = Template(parameters=endpoint_parameters(config))
            session = boto3.session.Session()
            create_table_from_template(template, session.client("dynamodb"))
            resources = create_pipeline_resources(template, session)
            yield LocalPipeline(config, template, session, environment, moto, resources)


def run_pipeline(running: LocalPipeline, workers: int, run: str) -> PipelineRun:
    """Upload TRANSCRIPTS_PER_RUN transcripts and wait for every job."""
    samples = _samples()
    jobs = JobStore(running.template.physical_name("ChatbotTable"), running.session.client("dynamodb"))
    bucket = running.resources.bucket
    s3 = running.session.client("s3")
    keys = [f"incoming/bench/{run}/{index:03d}" for index in range(TRANSCRIPTS_PER_RUN)]
    with running.poller(workers) as poller:
        poller.runtime.provision(workers)  # warm environments, as after the first minutes of a real burst
        moto_before = running.moto.timings.snapshot()
        started = time.perf_counter()
        for index, key in enumerate(keys):
            s3.put_object(Bucket=bucket, Key=key, Body=samples[index % len(samples)])
        pending = {job_id_for_key(key) for key in keys}
        deadline = time.monotonic() + TIMEOUT_S
        while pending and time.monotonic() < deadline:
            pending = {job for job in pending if (jobs.get(job) or {}).get("status") not in ("succeeded", "failed")}
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        moto_serving_s = running.moto.timings.snapshot()[2] - moto_before[2]
    if pending:
        raise RuntimeError(f"{len(pending)} of {len(keys)} transcripts unfinished after {TIMEOUT_S} s")
    return PipelineRun(
        workers, len(keys) / elapsed * 60, poller.stats.handler_s / len(keys), moto_serving_s / len(keys)
    )


def peak_memory_of_long_summary(summarize: Callable[[list[str]], list[str]]) -> tuple[float, float, int, float]:
    """(peak MiB, input MiB, chunk count, seconds) of parsing and map-reducing the 10,000-turn call."""
    data = long_call()
    tracemalloc.start()
    started = time.perf_counter()
    turns = parse_transcript(data).turns
    result = summarize_turns(list(turns), summarize)
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20, len(data) / 2**20, result.chunk_count, seconds


def first_lines(texts: list[str]) -> list[str]:
    """In-process stand-in summarizer: isolates our parsing, chunking and map-reduce from any model."""
    return [text.split("\n", 1)[0] for text in texts]


def _print_memory(label: str, figures: tuple[float, float, int, float]) -> None:
    peak_mib, input_mib, chunks, seconds = figures
    print(f"  {label}: {chunks} chunks, {seconds:.2f} s, peak traced memory {peak_mib:.2f} MiB", end="")
    print(f" ({peak_mib / input_mib:.1f}x the {input_mib:.2f} MiB input)")


def main() -> None:
    print("transcripts: local pipeline throughput (moto + local endpoint, extractive summarizer)")
    pipeline.logger.setLevel("WARNING")  # one log line per transcript otherwise
    with local_pipeline() as running:
        runs = [run_pipeline(running, n, f"workers-{n}") for n in (1, 2)]
        print(f"  ({TRANSCRIPTS_PER_RUN} files per run; per transcript: time inside the batch function, moto)")
        print("  workers   transcripts/min   handler s   moto s")
        for run in runs:
            print(f"  {run.workers:7d}  {run.per_minute:16.1f}  {run.handler_s:10.3f}  {run.moto_s:7.3f}")
        speed_up = runs[1].per_minute / runs[0].per_minute
        print(f"  goal: 2 workers / 1 worker >= 1.60x; measured {speed_up:.2f}x")
        print(f"transcripts: {LONG_CALL_TURNS:,}-turn transcript, parse + map-reduce")
        _print_memory("stand-in summarizer (ours only)", peak_memory_of_long_summary(first_lines))
        client = InferenceClient(running.config.endpoint.name, "chat", "summarizer", timeout_s=120, max_attempts=3)
        # The endpoint runs in this process, so its allocations are traced too.
        _print_memory("local endpoint, extractive", peak_memory_of_long_summary(client.summarize))


if __name__ == "__main__":
    main()
