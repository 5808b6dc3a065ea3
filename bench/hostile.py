"""Hostile-file batch: the corpus (bench.hostile_corpus) dropped into the local pipeline's bucket at once, then
reconciled; prints the corpus size, the outcome counts against the expected ones, and the time per file.

Reconciliation (shared with the fault suite's tests/integration/faults/test_hostile_batch.py): every uploaded
object has exactly one job record and it is terminal; its outcome (summarized, or failed with a code) is the
expected one; a failed job has a failure record (failed/<key>.json) whose code and sentence match the job's, in
words rather than exception text, and no summary; a summarized job has its summary and no failure record; and
no notification of the batch is left on the queue or in the dead-letter queue.

Run: `python -m bench.hostile` (or `make bench`). Parsing speed is a ratio to decoding and splitting the same
bytes into lines in the same run, so it compares across machines.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chatbot.transcript_jobs import pipeline
from chatbot.transcript_jobs.events import MalformedMessageError, parse_notification
from chatbot.transcript_jobs.keys import failure_key, job_id_for_key, summary_key
from chatbot.transcript_jobs.store import JobStore
from chatbot.transcript_parsing import TranscriptError, parse_transcript

from bench.hostile_corpus import CORPUS, SUMMARIZED, is_raw_exception_text
from bench.parsing import best_cpu_s
from bench.transcripts import local_pipeline
from local.s3_pipeline import PipelineResources

TERMINAL = {"succeeded", "failed"}
TIMEOUT_S = 600
# Long enough to read the whole dead-letter queue once (a received message is hidden meanwhile).
PEEK_HIDDEN_S = 10


@dataclass
class BatchReport:
    expected: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    jobs: dict[str, dict | None] = field(default_factory=dict)  # by source key, as last read


def outcome_of(job: Mapping[str, Any] | None) -> str:
    """SUMMARIZED, a failure code, or the status of a job not finished ("missing" without a record)."""
    if job is None:
        return "missing"
    if job["status"] == "succeeded":
        return SUMMARIZED
    if job["status"] == "failed":
        return str(job.get("failure_code"))
    return str(job["status"])


def drop_batch(s3: Any, bucket: str, files: Mapping[str, bytes]) -> None:
    """Put every file under its key, one after the other without waiting (S3 notifies the queue of each)."""
    for key, data in files.items():
        s3.put_object(Bucket=bucket, Key=key, Body=data)


def await_jobs(jobs: JobStore, keys: list[str], timeout_s: float, poll_s: float = 0.5) -> dict[str, dict | None]:
    """Each key's job record once all are terminal, or as they are when timeout_s has passed."""
    latest: dict[str, dict | None] = dict.fromkeys(keys)
    deadline = time.monotonic() + timeout_s
    while True:
        for key in keys:
            if (latest[key] or {}).get("status") not in TERMINAL:
                latest[key] = jobs.get(job_id_for_key(key))
        if all((job or {}).get("status") in TERMINAL for job in latest.values()) or time.monotonic() > deadline:
            return latest
        time.sleep(poll_s)


def reconcile_batch(
    *,
    prefix: str,
    expected: Mapping[str, str],
    jobs: JobStore,
    dynamodb: Any,
    s3: Any,
    sqs: Any,
    resources: PipelineResources,
    timeout_s: float = TIMEOUT_S,
) -> BatchReport:
    """Account for every key uploaded under `prefix` (see the module docstring); `expected` maps each key to its
    outcome, and a job record under `prefix` for any other key is a problem too."""
    report = BatchReport(expected=Counter(expected.values()))
    latest = report.jobs = await_jobs(jobs, list(expected), timeout_s)
    records = Counter(_job_source_keys(dynamodb, jobs.table_name, prefix))
    for key, outcome in expected.items():
        job = latest[key]
        got = outcome_of(job)
        report.outcomes[got] += 1
        if records[key] != 1:
            report.problems.append(f"{key}: {records[key]} job records")
        if got != outcome:
            report.problems.append(f"{key}: expected {outcome}, got {got}")
        if job is not None and job["status"] in TERMINAL:
            report.problems.extend(f"{key}: {problem}" for problem in _outputs_problems(s3, resources.bucket, job))
    report.problems.extend(f"{key}: a job record for a key never uploaded" for key in set(records) - set(expected))
    report.problems.extend(_queue_problems(sqs, resources, set(expected), timeout_s))
    return report


def _outputs_problems(s3: Any, bucket: str, job: Mapping[str, Any]) -> list[str]:
    source_key = job["source_key"]
    summary, failure = _read_json(s3, bucket, summary_key(source_key)), _read_json(s3, bucket, failure_key(source_key))
    if job["status"] == "succeeded":
        return [problem for problem, bad in (("no summary", summary is None), ("a failure record", failure)) if bad]
    if failure is None:
        return ["failed without a failure record"]
    problems = []
    error = failure["error"]
    if (error["code"], error["message"]) != (job.get("failure_code"), job.get("reason")):
        problems.append(
            f"failure record {error} disagrees with the job ({job.get('failure_code')}, {job.get('reason')})"
        )
    for shown in (error["message"], job.get("last_error") or ""):
        if is_raw_exception_text(shown):
            problems.append(f"exception text shown to users: {shown!r}")
    if summary is not None:
        problems.append("failed but has a summary")
    return problems


def _queue_problems(sqs: Any, resources: PipelineResources, keys: set[str], timeout_s: float) -> list[str]:
    """Messages of the batch still on the queue (waiting a little for the last deletes) or dead-lettered."""
    deadline = time.monotonic() + min(timeout_s, 30)
    while (left := _messages_in(sqs, resources.queue_url)) and time.monotonic() < deadline:
        time.sleep(0.5)
    problems = [f"{left} message(s) left on the queue"] if left else []
    for message in _peek_all(sqs, resources.dead_letter_queue_url):
        try:
            named = {created.key for created in parse_notification(message["Body"])} & keys
        except MalformedMessageError:
            continue  # not a notification of any object (another test's poison message)
        problems.extend(f"{key}: its notification is in the dead-letter queue" for key in sorted(named))
    return problems


def _peek_all(sqs: Any, queue_url: str) -> list[dict]:
    """Every message on the queue, each received once (hidden for a few seconds, then back as it was)."""
    messages: dict[str, dict] = {}
    for _batch in range(1_000):
        received = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=PEEK_HIDDEN_S, WaitTimeSeconds=0
        ).get("Messages", [])
        if not received:
            break
        messages |= {message["MessageId"]: message for message in received}
    return list(messages.values())


def _messages_in(sqs: Any, queue_url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[name]) for name in names)


def _job_source_keys(dynamodb: Any, table: str, prefix: str) -> list[str]:
    """The source key of every job record under `prefix` (a scan: one record per key is what is checked)."""
    keys: list[str] = []
    request: dict[str, Any] = {
        "TableName": table,
        "FilterExpression": "begins_with(pk, :job) AND begins_with(source_key, :prefix)",
        "ExpressionAttributeValues": {":job": {"S": JobStore.PK_PREFIX}, ":prefix": {"S": prefix}},
        "ProjectionExpression": "source_key",
    }
    for _page in range(10_000):
        page = dynamodb.scan(**request)
        keys.extend(item["source_key"]["S"] for item in page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            break
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return keys


def _read_json(s3: Any, bucket: str, key: str) -> dict | None:
    try:
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        return None


def _parse_outcome(data: bytes) -> str:
    try:
        parse_transcript(data)
    except TranscriptError as exc:
        return exc.code.value
    return SUMMARIZED


def _decoded_lines(data: bytes) -> list[str]:
    """The baseline: decode (Latin-1 takes any bytes) and split into lines."""
    return data.decode("latin-1").split("\n")


def _print_outcomes(report: BatchReport) -> None:
    print("  outcome                      expected   got")
    for outcome in sorted(set(report.expected) | set(report.outcomes), key=lambda name: (name != SUMMARIZED, name)):
        label = outcome if outcome == SUMMARIZED else f"failed: {outcome}"
        print(f"  {label:28s} {report.expected[outcome]:8d} {report.outcomes[outcome]:5d}")


def main() -> None:
    prefix = "incoming/hostile-bench/"
    files = {f"{prefix}{case.name}": case.data for case in CORPUS}
    expected = {f"{prefix}{case.name}": case.outcome for case in CORPUS}
    total_mb = sum(map(len, files.values())) / 1e6
    print(f"hostile: {len(CORPUS)} hostile files, {total_mb:.1f} MB, dropped at once into the local pipeline")
    print("  (moto S3 -> SQS -> batch function, one file per invocation -> local endpoint's extractive summarizer)")
    pipeline.logger.setLevel("WARNING")  # one log line per transcript otherwise
    with local_pipeline() as running:
        session = running.session
        jobs = JobStore(running.template.physical_name("ChatbotTable"), session.client("dynamodb"))
        with running.poller() as poller:
            started = time.perf_counter()
            drop_batch(session.client("s3"), running.resources.bucket, files)
            report = reconcile_batch(
                prefix=prefix,
                expected=expected,
                jobs=jobs,
                dynamodb=session.client("dynamodb"),
                s3=session.client("s3"),
                sqs=session.client("sqs"),
                resources=running.resources,
            )
            elapsed = time.perf_counter() - started
    _print_outcomes(report)
    print(f"  reconciliation: {'every file accounted for' if not report.problems else 'PROBLEMS'}")
    for problem in report.problems:
        print(f"    {problem}")
    print(
        f"  batch, upload to reconciled: {elapsed:.1f} s for {len(files)} files with {poller.workers} workers:"
        f" {elapsed / len(files):.2f} s per file; inside the batch function {poller.stats.handler_s / len(files):.2f} s"
        " per file"
    )
    summarized = [job for job in report.jobs.values() if job and "timings_ms" in job]
    if summarized:
        slowest_job = max(summarized, key=lambda job: float(job["timings_ms"]["total_ms"]))
        slowest_s = float(slowest_job["timings_ms"]["total_ms"]) / 1000
        print(
            f"  slowest summarized file: {slowest_job['filename']}, {slowest_s:.1f} s"
            f" ({slowest_job['chunk_count']} chunks)"
        )
    parse_s = sum(best_cpu_s(lambda data=data: _parse_outcome(data)) for data in files.values())
    baseline_s = sum(best_cpu_s(lambda data=data: _decoded_lines(data)) for data in files.values())
    slowest = max(CORPUS, key=lambda case: best_cpu_s(lambda: _parse_outcome(case.data)))
    print(
        f"  parsing the corpus: {total_mb / parse_s:.1f} MB/s vs decode + split lines {total_mb / baseline_s:.1f} MB/s"
        f" ({parse_s / baseline_s:.1f}x the baseline); {parse_s / len(CORPUS) * 1000:.1f} ms CPU per file,"
        f" slowest {slowest.name}"
    )


if __name__ == "__main__":
    main()
