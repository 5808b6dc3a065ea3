"""Benchmark of the local endpoint with the smoke chat model (tiny random Llama), all baselines in the same run.

1. Throughput of 16 concurrent boto3 clients with dynamic batching (max batch 16) vs batching off (max batch 1,
   as the Hugging Face inference container serves). Target: at least 3x.
2. Throughput served over HTTP vs calling the backend in-process (prepare + run_batch, batch 1), batching off,
   one copy kept busy by two concurrent clients. Target: at least 0.9.
3. p95 latency of least-outstanding-requests vs random routing over 2 copies, with short requests and some long
   ones, batching off. Lower is better; no target. The smoke copies share the machine's CPU cores, so routing
   cannot give one more capacity than the other; 3b repeats it with paced copies (a per-token sleep, as an
   accelerator per copy would give), where only the routing differs.

The served endpoints run as `python -m local.endpoint` processes of their own (as in the stack), so the
benchmark's boto3 clients do not compete with them for the GIL. About 1.5 minutes on 2 cores.

Run: `python -m bench.endpoint`.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import requests
import yaml
from botocore.config import Config

from local.backends import create_backend
from local.backends.base import Backend, TokenSink
from local.endpoint import start_endpoint
from local.endpoint.runtime import tune_torch_threads
from provisioning.config import EndpointConfig, RoutingStrategy, parse_config

ENDPOINT_NAME = "bench-endpoint"
COMPONENT = "chat"
ROUNDS = 3
CLIENTS = 16
REQUESTS_PER_CLIENT = 2
# Two callers keep one copy busy (one request running, one queued) without the client side's own CPU
# use, which shares this machine and process, being charged to the server.
OVERHEAD_CLIENTS, OVERHEAD_REQUESTS_PER_CLIENT = 2, 16
TOKENS = 128  # a short chat answer
SHORT_TOKENS, LONG_TOKENS, LONG_SHARE = 4, 128, 0.03  # p95 then falls among the short requests
ROUTING_CLIENTS, ROUTING_REQUESTS_PER_CLIENT, ROUTING_ROUNDS = 4, 30, 5

PayloadFor = Callable[[int, int], dict]


@dataclass(frozen=True)
class Run:
    seconds: float
    latencies: list[float]
    batches: int = 0

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds

    @property
    def mean_batch_size(self) -> float:
        return len(self.latencies) / self.batches if self.batches else 1.0

    @property
    def p95(self) -> float:
        return statistics.quantiles(self.latencies, n=20)[-1]


def smoke_config(*, copies: int, max_batch_size: int, routing: RoutingStrategy) -> EndpointConfig:
    # A 20 ms window lets 16 closed-loop callers (whose boto3 work shares this process) refill a batch.
    component = {
        "container": {"kind": "lmi", "image_version": "0.33.0", "model_id": "smoke/llama"},
        "compute": {"accelerators": 1, "cpu_cores": 1, "min_memory_mb": 1024},
        "copies": copies,
        "autoscaling": {"min_copies": copies, "max_copies": copies},
        "local": {
            "backend": "smoke-llama",
            "max_batch_size": max_batch_size,
            "max_batch_wait_ms": 20,
            "timeout_s": 300,
        },
    }
    raw = {
        "endpoint": {"name": ENDPOINT_NAME, "instance_type": "ml.g5.12xlarge", "routing_strategy": routing.value},
        "components": {COMPONENT: component},
    }
    return parse_config(raw, "<bench>", environ={})


def chat_request(index: int, max_new_tokens: int) -> dict:
    return {
        "inputs": f"Question {index}: what should I pack for a trip?",
        "parameters": {"max_new_tokens": max_new_tokens},
    }


def fixed_length(client: int, index: int) -> dict:
    return chat_request(client * 1000 + index, TOKENS)


def mixed_length(client: int, index: int) -> dict:
    # The same pseudo-random mix for every strategy, so both see identical work.
    is_long = random.Random(client * 1000 + index).random() < LONG_SHARE
    return chat_request(client * 1000 + index, LONG_TOKENS if is_long else SHORT_TOKENS)


def runtime_client(url: str, connections: int) -> Any:
    """A boto3 sagemaker-runtime client of the local endpoint at `url`: no retries, long reads."""
    config = Config(retries={"total_max_attempts": 1}, read_timeout=300, max_pool_connections=connections)
    return boto3.client(
        "sagemaker-runtime",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=config,
    )


def drive(url: str, clients: int, requests_per_client: int, payload_for: PayloadFor) -> Run:
    """`clients` threads, each with its own boto3 client, each sending its requests one after another."""
    runtimes = [runtime_client(url, clients) for _ in range(clients)]

    def client_loop(client: int) -> list[float]:
        latencies = []
        for index in range(requests_per_client):
            body = json.dumps(payload_for(client, index))
            started = time.perf_counter()
            response = runtimes[client].invoke_endpoint(
                EndpointName=ENDPOINT_NAME, InferenceComponentName=COMPONENT, Body=body
            )
            json.loads(response["Body"].read())
            latencies.append(time.perf_counter() - started)
        return latencies

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        per_client = list(pool.map(client_loop, range(clients)))
    return Run(time.perf_counter() - started, [latency for client in per_client for latency in client])


@contextmanager
def endpoint_process(config: EndpointConfig) -> Iterator[str]:
    """`python -m local.endpoint` serving `config` in its own process, as it runs in the stack; yields its URL.
    Its own process keeps the benchmark's boto3 clients from competing with it for the GIL."""
    with tempfile.TemporaryDirectory() as directory:
        config_path = Path(directory) / "endpoint.yaml"
        config_path.write_text(yaml.safe_dump(config.model_dump(mode="json")), encoding="utf-8")
        environment = {name: value for name, value in os.environ.items() if not name.startswith("CHATBOT_")}
        process = subprocess.Popen(
            [sys.executable, "-m", "local.endpoint", "--config", str(config_path), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=environment,
        )
        try:
            announcement = process.stdout.readline() if process.stdout else ""
            if " serving at " not in announcement:
                raise RuntimeError(f"the endpoint process did not start (exit code {process.poll()})")
            yield announcement.rsplit(" ", 1)[-1].strip()
        finally:
            process.terminate()
            process.wait(timeout=60)
            if process.stdout:
                process.stdout.close()


def batch_count(url: str) -> int:
    return requests.get(f"{url}/status", timeout=10).json()["components"][COMPONENT]["counters"]["batches"]


def served(url: str, clients: int, requests_per_client: int, payload_for: PayloadFor) -> Run:
    drive(url, clients, 1, payload_for)  # warm-up: refills connection pools, first forward passes
    batches_before = batch_count(url)
    run = drive(url, clients, requests_per_client, payload_for)
    return Run(run.seconds, run.latencies, batch_count(url) - batches_before)


def in_process(requests: int) -> Run:
    """The backend called directly, one request at a time, on a thread of its own as a copy's worker is
    (torch runs markedly slower on the main thread of a busy machine, which would flatter the served path).
    It runs with the torch thread count the endpoint gives one copy."""
    config = smoke_config(copies=1, max_batch_size=1, routing=RoutingStrategy.LEAST_OUTSTANDING_REQUESTS)
    backend = create_backend(COMPONENT, config.components[COMPONENT])
    tune_torch_threads(copies=1)  # as the endpoint process does for its one copy, now that torch is loaded

    def serve_all() -> Run:
        for index in range(CLIENTS):  # warm-up, as served() does
            backend.run_batch([backend.prepare(fixed_length(index, 99))], [None])
        latencies = []
        started = time.perf_counter()
        for index in range(requests):
            began = time.perf_counter()
            backend.run_batch([backend.prepare(fixed_length(index % CLIENTS, index // CLIENTS))], [None])
            latencies.append(time.perf_counter() - began)
        return Run(time.perf_counter() - started, latencies)

    try:
        with ThreadPoolExecutor(max_workers=1) as worker:
            return worker.submit(serve_all).result()
    finally:
        backend.close()


class InstantBackend(Backend):
    """Answers at once: what remains of a call is the HTTP and boto3 cost."""

    label = "instant: answers at once"

    def prepare(self, payload: Any) -> Any:
        return payload

    def run_batch(self, prepared: list[Any], sinks: list[TokenSink | None]) -> list[Any]:
        return [{"generated_text": ""} for _ in prepared]


class PacedBackend(Backend):
    """Spends a fixed time per token without using the CPU, as a copy with an accelerator of its own would:
    copies are then independent, which the smoke model's copies on shared CPU cores are not."""

    label = "paced: sleeps per token (an accelerator stand-in)"
    seconds_per_token = 0.002

    def prepare(self, payload: Any) -> Any:
        return payload["parameters"]["max_new_tokens"]

    def run_batch(self, prepared: list[Any], sinks: list[TokenSink | None]) -> list[Any]:
        time.sleep(max(prepared) * self.seconds_per_token)
        return [{"generated_text": ""} for _ in prepared]


def paced_routing(strategy: RoutingStrategy) -> Run:
    config = smoke_config(copies=2, max_batch_size=1, routing=strategy)
    with start_endpoint(config, port=0, backend_factory=lambda name, component: PacedBackend()) as running:
        drive(running.url, ROUTING_CLIENTS, 1, mixed_length)  # warm-up
        return drive(running.url, ROUTING_CLIENTS, ROUTING_REQUESTS_PER_CLIENT, mixed_length)


def round_trip_ms(calls: int = 300) -> float:
    """Mean time of one sequential boto3 InvokeEndpoint against an instant backend, in milliseconds."""
    config = smoke_config(copies=1, max_batch_size=1, routing=RoutingStrategy.LEAST_OUTSTANDING_REQUESTS)
    with start_endpoint(config, port=0, backend_factory=lambda name, component: InstantBackend()) as running:
        drive(running.url, 1, 20, fixed_length)  # warm-up
        return drive(running.url, 1, calls, fixed_length).seconds / calls * 1000


def interleaved(rounds: int, measurements: dict[str, Callable[[], Run]]) -> dict[str, Run]:
    """Run the measurements in turn, `rounds` times, pooling each one's results: background load on a shared
    machine then hits all of them alike instead of skewing whichever ran during a busy spell."""
    pooled = {name: Run(0.0, []) for name in measurements}
    for _ in range(rounds):
        for name, measure in measurements.items():
            run = measure()
            total = pooled[name]
            pooled[name] = Run(
                total.seconds + run.seconds, total.latencies + run.latencies, total.batches + run.batches
            )
    return pooled


def main() -> None:
    lor, rnd = RoutingStrategy.LEAST_OUTSTANDING_REQUESTS, RoutingStrategy.RANDOM
    configs = {
        "batched": smoke_config(copies=1, max_batch_size=16, routing=lor),
        "unbatched": smoke_config(copies=1, max_batch_size=1, routing=lor),
        lor: smoke_config(copies=2, max_batch_size=1, routing=lor),
        rnd: smoke_config(copies=2, max_batch_size=1, routing=rnd),
    }
    # One process per configuration, all started up front (idle ones cost no CPU), measured in rounds.
    with ExitStack() as stack:
        urls = {name: stack.enter_context(endpoint_process(config)) for name, config in configs.items()}
        throughput = interleaved(
            ROUNDS,
            {
                "batched": lambda: served(urls["batched"], CLIENTS, REQUESTS_PER_CLIENT, fixed_length),
                "unbatched": lambda: served(urls["unbatched"], CLIENTS, REQUESTS_PER_CLIENT, fixed_length),
                "served": lambda: served(
                    urls["unbatched"], OVERHEAD_CLIENTS, OVERHEAD_REQUESTS_PER_CLIENT, fixed_length
                ),
                "in-process": lambda: in_process(OVERHEAD_CLIENTS * OVERHEAD_REQUESTS_PER_CLIENT),
            },
        )
        routing = interleaved(
            ROUTING_ROUNDS,
            {
                strategy: lambda strategy=strategy: served(
                    urls[strategy], ROUTING_CLIENTS, ROUTING_REQUESTS_PER_CLIENT, mixed_length
                )
                for strategy in (lor, rnd)
            },
        )
    paced_runs = {strategy: (lambda strategy=strategy: paced_routing(strategy)) for strategy in (lor, rnd)}
    paced = interleaved(ROUTING_ROUNDS, paced_runs)
    overhead_ms = round_trip_ms()
    batched, unbatched = throughput["batched"], throughput["unbatched"]
    over_http, direct = throughput["served"], throughput["in-process"]
    routing_runs = {lor: routing[lor], rnd: routing[rnd]}

    rows = [
        ("1 batching on vs off (req/s)", batched.throughput, unbatched.throughput, ">= 3.0x"),
        ("2 HTTP vs in-process, batch 1 (req/s)", over_http.throughput, direct.throughput, ">= 0.9x"),
        ("3 p95 latency RANDOM vs LOR (s)", routing_runs[rnd].p95, routing_runs[lor].p95, "> 1.0x: LOR better"),
        ("3b same, paced copies (s)", paced[rnd].p95, paced[lor].p95, "> 1.0x: LOR better"),
    ]
    print(
        f"local endpoint bench: smoke-llama, {ROUNDS} interleaved rounds each of {CLIENTS} clients x "
        f"{REQUESTS_PER_CLIENT} requests of {TOKENS} tokens;"
    )
    print(
        f"routing: 2 copies, {ROUTING_ROUNDS} rounds of {ROUTING_CLIENTS} clients x "
        f"{ROUTING_REQUESTS_PER_CLIENT} requests, "
        f"{LONG_SHARE:.0%} long ({LONG_TOKENS} tokens), others {SHORT_TOKENS} tokens"
    )
    print(f"{'measurement':<40}{'value':>10}{'baseline':>10}{'ratio':>8}  target")
    for name, value, baseline, target in rows:
        print(f"{name:<40}{value:>10.3f}{baseline:>10.3f}{value / baseline:>7.2f}x  {target}")
    print(
        f"mean batch size with batching on: {batched.mean_batch_size:.1f} (max 16, wait 20 ms); "
        f"mean latency (s): batched {statistics.mean(batched.latencies):.3f}, "
        f"unbatched {statistics.mean(unbatched.latencies):.3f}, served to {OVERHEAD_CLIENTS} clients "
        f"{statistics.mean(over_http.latencies):.3f}, in-process {statistics.mean(direct.latencies):.3f}"
    )
    for label, runs in (("smoke", routing_runs), ("paced", paced)):
        for strategy, run in runs.items():
            p50, p95, p99 = (statistics.quantiles(run.latencies, n=100)[index] for index in (49, 94, 98))
            print(f"routing {label} {strategy.value:<27} p50 {p50:.3f} s  p95 {p95:.3f} s  p99 {p99:.3f} s")
    print(f"one sequential boto3 call to an instant backend (HTTP + boto3 cost): {overhead_ms:.2f} ms")


if __name__ == "__main__":
    main()
