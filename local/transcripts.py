"""Transcript jobs from the command line: upload files and follow their summaries, show job status, redrive the DLQ.

    python -m local.transcripts upload calls/ "more/*.vtt"   # progress bar, then a table of results
    python -m local.transcripts status [JOB_ID | KEY ...]    # or the --user's recent jobs
    python -m local.transcripts redrive                      # DLQ -> queue, after fixing the cause

By default it talks to the local stack's moto (`make up`, http://127.0.0.1:5000); `--aws` uses your AWS
credentials instead, with names from template.yaml for --stage (bucket and table can be overridden).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import boto3
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from chatbot.transcript_jobs.api import upload_content_type
from chatbot.transcript_jobs.keys import INCOMING_PREFIX, TRANSCRIPT_MAX_BYTES, job_id_for_key
from chatbot.transcript_jobs.store import JobStore

from local.s3_pipeline import BUCKET_ID, DEAD_LETTER_QUEUE_ID, QUEUE_ID
from local.template import DEFAULT_TEMPLATE_PATH, LOCAL_ACCOUNT_ID, LOCAL_REGION, Template

DEFAULT_MOTO_URL = "http://127.0.0.1:5000"
FINISHED = {"succeeded", "failed"}
_SQS_BATCH = 10


class CliError(Exception):
    """A problem the user can fix (no files matched, unknown queue...): printed without a traceback."""


@dataclass(frozen=True)
class Target:
    session: Any
    endpoint_url: str | None
    bucket: str
    table: str
    queue_name: str
    dead_letter_queue_name: str

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.endpoint_url)

    def jobs(self) -> JobStore:
        return JobStore(self.table, self.client("dynamodb"))


def resolve_target(args: argparse.Namespace) -> Target:
    template = Template(args.template, {"Stage": args.stage})
    if args.aws:
        session, endpoint_url = boto3.session.Session(), None
        identity = session.client("sts").get_caller_identity()
        # The template's names use the local account and region; on AWS they are the caller's.
        default_bucket = template.physical_name(BUCKET_ID).replace(LOCAL_ACCOUNT_ID, identity["Account"])
        default_bucket = default_bucket.replace(LOCAL_REGION, session.region_name or LOCAL_REGION)
    else:
        endpoint_url = args.moto_url or os.environ.get("AWS_ENDPOINT_URL_S3") or DEFAULT_MOTO_URL
        session = boto3.session.Session(
            aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
            aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
            region_name=LOCAL_REGION,
        )
        default_bucket = template.physical_name(BUCKET_ID)
    return Target(
        session=session,
        endpoint_url=endpoint_url,
        bucket=args.bucket or default_bucket,
        table=args.table or template.physical_name("ChatbotTable"),
        queue_name=template.physical_name(QUEUE_ID),
        dead_letter_queue_name=template.physical_name(DEAD_LETTER_QUEUE_ID),
    )


def expand_paths(patterns: Sequence[str]) -> list[tuple[Path, str]]:
    """(file, name under the upload prefix) for every file a path, folder or glob names, in order."""
    found: dict[Path, str] = {}
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            for file in sorted(item for item in path.rglob("*") if item.is_file()):
                found.setdefault(file, file.relative_to(path).as_posix())
        elif path.is_file():
            found.setdefault(path, path.name)
        else:
            matches = sorted(Path(match) for match in glob.glob(pattern, recursive=True))
            files = [match for match in matches if match.is_file()]
            if not files:
                raise CliError(f"no file matches {pattern!r}")
            for file in files:
                found.setdefault(file, file.name)
    return list(found.items())


class ProgressBar:
    """A one-line progress bar on a terminal (plain lines when the output is not one)."""

    def __init__(self, total: int, label: str, stream: TextIO = sys.stderr):
        self.total, self.label, self.stream = max(total, 1), label, stream
        self.interactive = stream.isatty()

    def update(self, done: int, note: str = "") -> None:
        width = 30
        filled = width * done // self.total
        line = f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} {note}"
        if self.interactive:
            columns = shutil.get_terminal_size().columns
            self.stream.write("\r" + line[: columns - 1].ljust(columns - 1))
        elif done == self.total:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()


def upload(
    target: Target, files: list[tuple[Path, str]], prefix: str, user: str, *, max_bytes: int = TRANSCRIPT_MAX_BYTES
) -> list[tuple[str, str]]:
    """Announce a job per file (so `status --user` and the API list it), then put the file with the content type
    the API's upload form requires; returns (key, job id). Files over the limit the API's form enforces are
    refused before anything is announced or uploaded."""
    if not prefix.startswith(INCOMING_PREFIX):
        raise CliError(f"the prefix must start with {INCOMING_PREFIX!r} (only that prefix is summarized)")
    too_large = [f"{file} ({file.stat().st_size:,} bytes)" for file, _ in files if file.stat().st_size > max_bytes]
    if too_large:
        raise CliError(f"larger than the {max_bytes:,}-byte limit, nothing uploaded: " + ", ".join(too_large))
    s3, jobs = target.client("s3"), target.jobs()
    uploaded = []
    bar = ProgressBar(len(files), "upload ")
    for index, (file, name) in enumerate(files, start=1):
        key = f"{prefix.rstrip('/')}/{name}"
        job_id = job_id_for_key(key)
        try:
            jobs.create_queued(job_id, owner=user, source_key=key, filename=file.name, bucket=target.bucket)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        s3.upload_file(str(file), target.bucket, key, ExtraArgs={"ContentType": upload_content_type(name)})
        uploaded.append((key, job_id))
        bar.update(index, file.name)
    bar.close()
    return uploaded


def follow(target: Target, job_ids: list[str], timeout_s: float, poll_s: float = 0.5) -> dict[str, dict]:
    """Poll the job records until every job finished or the timeout passed; returns the last records."""
    jobs = target.jobs()
    records: dict[str, dict] = {}
    bar = ProgressBar(len(job_ids), "summary")
    deadline = time.monotonic() + timeout_s
    while True:
        for job_id in job_ids:
            if records.get(job_id, {}).get("status") not in FINISHED:
                records[job_id] = jobs.get(job_id) or {"job_id": job_id, "status": "queued"}
        done = sum(record["status"] in FINISHED for record in records.values())
        bar.update(done, f"{sum(r['status'] == 'failed' for r in records.values())} failed")
        if done == len(job_ids) or time.monotonic() > deadline:
            break
        time.sleep(poll_s)
    bar.close()
    return records


def format_table(records: Iterable[dict], width: int | None = None) -> str:
    """A plain-text table of jobs: id, status, format, turns, chunks, file, and the summary or reason."""
    width = width or shutil.get_terminal_size((160, 20)).columns
    header = ("JOB", "STATUS", "FORMAT", "TURNS", "CHUNKS", "FILE", "SUMMARY / REASON")
    rows = []
    for record in records:
        detail = record.get("summary") or record.get("reason") or record.get("last_error") or ""
        if record.get("failure_code"):
            detail = f"[{record['failure_code']}] {detail}"
        rows.append(
            (
                str(record.get("job_id", ""))[:8],
                str(record.get("status", "")),
                str(record.get("format") or "-"),
                str(record.get("turns") if record.get("turns") is not None else "-"),
                str(record.get("chunk_count") if record.get("chunk_count") is not None else "-"),
                str(record.get("filename") or record.get("source_key") or ""),
                " ".join(str(detail).split()),
            )
        )
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        fixed = "  ".join(cell.ljust(widths[column]) for column, cell in enumerate(row[:-1]))
        room = max(20, width - len(fixed) - 2)
        detail = row[-1] if len(row[-1]) <= room else row[-1][: room - 1] + "…"
        lines.append(f"{fixed}  {detail}".rstrip())
    return "\n".join(lines)


def redrive(target: Target, max_messages: int | None = None) -> int:
    """Move messages from the DLQ back to the queue (send first, then delete: a crash duplicates, never loses)."""
    sqs = target.client("sqs")
    try:
        dlq_url = sqs.get_queue_url(QueueName=target.dead_letter_queue_name)["QueueUrl"]
        queue_url = sqs.get_queue_url(QueueName=target.queue_name)["QueueUrl"]
    except ClientError as exc:
        raise CliError(f"queue not found: {exc.response['Error'].get('Message', exc)}") from None
    moved = 0
    while max_messages is None or moved < max_messages:
        wanted = _SQS_BATCH if max_messages is None else min(_SQS_BATCH, max_messages - moved)
        messages = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=wanted,
            # Long polls on AWS (short ones may miss messages); moto's would stall the local pipeline.
            WaitTimeSeconds=0 if target.endpoint_url else 1,
            VisibilityTimeout=60,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            break
        sent = sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {
                    "Id": str(index),
                    "MessageBody": message["Body"],
                    **({"MessageAttributes": message["MessageAttributes"]} if message.get("MessageAttributes") else {}),
                }
                for index, message in enumerate(messages)
            ],
        )
        sent_ids = {int(entry["Id"]) for entry in sent.get("Successful", [])}
        if sent_ids:
            sqs.delete_message_batch(
                QueueUrl=dlq_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": messages[index]["ReceiptHandle"]} for index in sorted(sent_ids)
                ],
            )
        moved += len(sent_ids)
        if len(sent_ids) < len(messages):
            failures = [entry.get("Message", "") for entry in sent.get("Failed", [])]
            raise CliError(f"moved {moved}; SQS refused some messages: {'; '.join(failures)}")
    return moved


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m local.transcripts", description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", default=str(DEFAULT_TEMPLATE_PATH), help="template.yaml to take names from")
    parser.add_argument("--stage", default="dev", help="the template's Stage parameter (default: dev)")
    parser.add_argument("--aws", action="store_true", help="use AWS (your credentials) instead of the local moto")
    parser.add_argument("--moto-url", help=f"local moto server (default: $AWS_ENDPOINT_URL_S3 or {DEFAULT_MOTO_URL})")
    parser.add_argument("--bucket", help="transcripts bucket (default: from the template)")
    parser.add_argument("--table", help="DynamoDB table (default: from the template)")
    commands = parser.add_subparsers(dest="command", required=True)

    upload_parser = commands.add_parser("upload", help="upload files, folders or globs; follow their jobs")
    upload_parser.add_argument("paths", nargs="+", help="files, folders (recursive) or quoted globs")
    upload_parser.add_argument("--prefix", help="key prefix under incoming/ (default: incoming/cli/<time>/)")
    upload_parser.add_argument("--user", default="cli", help="job owner, as the API's caller id (default: cli)")
    upload_parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for summaries")
    upload_parser.add_argument("--no-wait", action="store_true", help="upload only; do not follow the jobs")
    upload_parser.add_argument("--json", action="store_true", help="print the job records as JSON")

    status_parser = commands.add_parser("status", help="job status by job id or source key, or a user's recent jobs")
    status_parser.add_argument("jobs", nargs="*", help="job ids or incoming/ keys")
    status_parser.add_argument("--user", default="cli", help="list this owner's jobs when none are named")
    status_parser.add_argument("--limit", type=int, default=20)
    status_parser.add_argument("--json", action="store_true", help="print the job records as JSON")

    redrive_parser = commands.add_parser("redrive", help="move dead-lettered messages back to the queue")
    redrive_parser.add_argument("--max", type=int, help="move at most this many messages")
    return parser


def _print_records(records: list[dict], as_json: bool, out: TextIO) -> None:
    if as_json:
        out.write(json.dumps(records, indent=2, ensure_ascii=False) + "\n")
    else:
        out.write(format_table(records) + "\n")


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    args = _parser().parse_args(argv)
    try:
        target = resolve_target(args)
        if args.command == "upload":
            files = expand_paths(args.paths)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            uploaded = upload(target, files, args.prefix or f"{INCOMING_PREFIX}cli/{stamp}/", args.user)
            if args.no_wait:
                _print_records([{"job_id": job, "source_key": key} for key, job in uploaded], True, out)
                return 0
            records = follow(target, [job for _, job in uploaded], args.timeout)
            ordered = [records[job] for _, job in uploaded]
            _print_records(ordered, args.json, out)
            if any(record["status"] not in FINISHED for record in ordered):
                return 2
            return 1 if any(record["status"] == "failed" for record in ordered) else 0
        if args.command == "status":
            jobs = target.jobs()
            if args.jobs:
                ids = [job_id_for_key(name) if "/" in name else name for name in args.jobs]
                records = [jobs.get(job_id) or {"job_id": job_id, "status": "unknown"} for job_id in ids]
            else:
                records, _ = jobs.list_for_owner(args.user, limit=args.limit)
            _print_records(records, args.json, out)
            return 0
        moved = redrive(target, args.max)
        out.write(f"moved {moved} message(s) from {target.dead_letter_queue_name} to {target.queue_name}\n")
        return 0
    except CliError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except EndpointConnectionError as exc:
        hint = "" if args.aws else " (is the local stack running? `make up`)"
        sys.stderr.write(f"error: {exc}{hint}\n")
        return 2
    except NoCredentialsError:
        sys.stderr.write("error: no AWS credentials found (configure them, or drop --aws for the local stack)\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
