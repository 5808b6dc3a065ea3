"""`make loadtest` / `python -m bench.loadtest`: locust, headless, against the whole local stack on loopback.

Starts the local stack (moto, local endpoint, API gateway, transcripts poller) on free loopback ports, runs
locust for a fixed number of users and a fixed duration (chat turns, streamed as the UI streams them, summaries and
transcript uploads), prints throughput, p50/p95/p99 and error rate per route (a streamed answer twice: TTFT, the time
to its first token, and POST, the time to the whole answer), and the cause of every error (status and body, counted by
cause with one example each), then reconciles: every sent message and every uploaded transcript must be
accounted for (bench/reconcile.py). Exits non-zero when something is lost or duplicated.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import boto3

from bench.reconcile import FIRST_TOKEN, FailedRequest, Ledger, reconcile
from local.stack import LocalStack, Ports
from local.template import DEFAULT_TEMPLATE_PATH, Template

LOCUSTFILE = Path(__file__).with_name("locust_users.py")
LOOPBACK = "127.0.0.1"
# Each locust user stands for many people, far above one person's pace: the per-user quotas would refuse most of
# its requests, so they stay on (counted on every request, as deployed) but out of the run's reach.
LOAD_TEST_PARAMETERS = {"UserChatRequestsPerMinute": "100000", "UserTranscriptUploadsPerHour": "100000"}
# The table of error causes stays short however many requests fail: the most frequent causes, then a count.
MAX_CAUSES = 20
EXAMPLE_CHARS = 200
_S3_ERROR = re.compile(r"<Code>(?P<code>[^<]*)</Code>\s*<Message>(?P<message>[^<]*)</Message>")


@dataclass(frozen=True)
class RouteStats:
    name: str
    requests: int
    failures: int
    throughput_rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


def percentile(histogram: Mapping[float, int], fraction: float) -> float:
    """The smallest response time (ms) at or below which `fraction` of the requests finished."""
    total = sum(histogram.values())
    if not total:
        return float("nan")
    seen = 0
    for response_time in sorted(histogram):
        seen += histogram[response_time]
        if seen >= fraction * total:
            return response_time
    return max(histogram)


def route_stats(entries: list[dict]) -> list[RouteStats]:
    """Per-route rows from locust's final JSON stats (`--json-file`), plus an `all requests` row last."""
    started = min((entry["start_time"] for entry in entries), default=0.0)
    finished = max((entry["last_request_timestamp"] or started for entry in entries), default=0.0)
    elapsed_s = max(finished - started, 1e-9)

    def row(name: str, group: list[dict]) -> RouteStats:
        histogram: Counter[float] = Counter()
        for entry in group:
            histogram.update({float(ms): count for ms, count in entry["response_times"].items()})
        requests = sum(entry["num_requests"] for entry in group)
        return RouteStats(
            name=name,
            requests=requests,
            failures=sum(entry["num_failures"] for entry in group),
            throughput_rps=requests / elapsed_s,
            p50_ms=percentile(histogram, 0.50),
            p95_ms=percentile(histogram, 0.95),
            p99_ms=percentile(histogram, 0.99),
        )

    rows = [row(f"{entry['method']} {entry['name']}", [entry]) for entry in entries]
    # A streamed answer's time to first token is a second figure of its request, not a request of its own.
    requests = [entry for entry in entries if entry["method"] != FIRST_TOKEN]
    return [*sorted(rows, key=lambda r: r.name), row("all requests", requests)]


@dataclass(frozen=True)
class ErrorCause:
    route: str
    status: int
    message: str
    count: int
    example: str  # one body with this cause


def failure_message(failed: FailedRequest) -> str:
    """What a failure says, without what varies per request (ids): the API's JSON `message`, S3's XML error
    code and message, else the body."""
    try:
        body = json.loads(failed.body)
    except ValueError:
        body = None
    s3_error = _S3_ERROR.search(failed.body)
    if isinstance(body, dict) and "message" in body:
        text = str(body["message"])
    elif s3_error:
        text = f"{s3_error['code']}: {s3_error['message']}"
    else:
        text = failed.body
    return " ".join(text.split())[:EXAMPLE_CHARS]


def error_causes(failures: list[FailedRequest]) -> list[ErrorCause]:
    """Failed requests grouped by route, status and message, most frequent first."""
    groups: dict[tuple[str, int, str], list[FailedRequest]] = {}
    for failed in failures:
        groups.setdefault((failed.route, failed.status, failure_message(failed)), []).append(failed)
    causes = [
        ErrorCause(route, status, message, len(group), " ".join(group[0].body.split())[:EXAMPLE_CHARS])
        for (route, status, message), group in groups.items()
    ]
    return sorted(causes, key=lambda cause: (-cause.count, cause.route, cause.status, cause.message))


def print_error_causes(failures: list[FailedRequest]) -> None:
    causes = error_causes(failures)
    if not causes:
        print("errors: none")
        return
    print(f"errors: {len(failures)} failed requests, {len(causes)} causes")
    print(f"  {'count':>6} {'status':>6}  route / cause / one example body")
    for cause in causes[:MAX_CAUSES]:
        print(f"  {cause.count:>6} {cause.status or 'none':>6}  {cause.route}: {cause.message}")
        if cause.example != cause.message:
            print(f"  {'':>13}  e.g. {cause.example}")
    left_out = causes[MAX_CAUSES:]
    if left_out:
        print(f"  ... {len(left_out)} more causes ({sum(cause.count for cause in left_out)} requests)")


def run_locust(host: str, users: int, duration_s: int, workdir: Path, ledger: Ledger) -> list[RouteStats]:
    """Locust in a child process (it monkey-patches sockets with gevent; the stack's threads stay untouched)."""
    stats_prefix = workdir / "locust-stats"  # locust adds ".json"
    log_file = workdir / "locust.log"
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--users",
        str(users),
        "--spawn-rate",
        str(users),
        "--run-time",
        f"{duration_s}s",
        "--stop-timeout",
        "10",
        "--host",
        host,
        "--json-file",
        str(stats_prefix),
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--exit-code-on-error",
        "0",
    ]
    environment = {**os.environ, "LOADTEST_LEDGER": str(ledger.path)}
    with log_file.open("wb") as log:
        finished = subprocess.run(command, env=environment, timeout=duration_s + 120, stdout=log, stderr=log)
    if finished.returncode != 0:
        sys.exit(f"locust failed (exit {finished.returncode}):\n{log_file.read_text(errors='replace')[-4000:]}")
    return route_stats(json.loads(stats_prefix.with_suffix(".json").read_text(encoding="utf-8")))


def print_stats(rows: list[RouteStats]) -> None:
    print(f"{'route':<48} {'requests':>8} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'errors':>7}")
    for row in rows:
        print(
            f"{row.name:<48} {row.requests:>8} {row.throughput_rps:>7.1f} {row.p50_ms:>7.0f} {row.p95_ms:>7.0f}"
            f" {row.p99_ms:>7.0f} {row.error_rate:>7.1%}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loadtest", description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=8, help="concurrent locust users (default 8)")
    parser.add_argument("--duration", type=int, default=30, help="seconds of load (default 30)")
    parser.add_argument("--settle", type=int, default=120, help="seconds to wait for transcript jobs (default 120)")
    args = parser.parse_args(argv)
    if not (1 <= args.users <= 64 and 1 <= args.duration <= 600):
        parser.error("--users must be 1..64 and --duration 1..600 (bounded runs only)")

    # Lambda's own log-level control (it outranks POWERTOOLS_LOG_LEVEL): keep the in-process handlers' INFO lines
    # out of the figures. Powertools warns that this drops its INFO lines, which is the point here.
    os.environ["AWS_LAMBDA_LOG_LEVEL"] = "WARN"
    warnings.filterwarnings("ignore", message="Current log level")
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    template = Template(DEFAULT_TEMPLATE_PATH)
    with (
        tempfile.TemporaryDirectory(prefix="loadtest-") as workdir,
        LocalStack(host=LOOPBACK, ports=Ports.ephemeral(), with_ui=False, parameters=LOAD_TEST_PARAMETERS) as stack,
    ):
        api_url = stack.urls["api"]
        ledger = Ledger(Path(workdir) / "ledger.jsonl")
        print(f"local stack up: api {api_url}, endpoint {stack.urls['endpoint']}, moto {stack.urls['moto']}")
        print(f"locust: {args.users} users for {args.duration} s (chat 4 : transcripts 1)", flush=True)
        started = time.monotonic()
        rows = run_locust(api_url, args.users, args.duration, Path(workdir), ledger)
        print(f"load phase took {time.monotonic() - started:.1f} s")
        print_stats(rows)
        print_error_causes(ledger.failures())
        s3 = boto3.client("s3")
        report = reconcile(
            api_url,
            ledger,
            s3=s3,
            bucket=template.physical_name("TranscriptsBucket"),
            transcripts_timeout_s=args.settle,
        )
    print("reconciliation:")
    for line in report.lines():
        print(f"  {line}")
    if not report.ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
