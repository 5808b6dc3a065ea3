"""Benchmark of the production serving code behind the components, against today's in-process backends.

All on smoke checkpoints (a tiny random Llama sized for vLLM's CPU attention; a tiny random BART), each
served by the local endpoint in a process of its own (`python -m local.endpoint`), as in the stack:

1. Chat, 16 concurrent boto3 clients, the same checkpoint and `max_tokens` on both sides: the LMI container's
   vLLM (continuous batching, up to 16 sequences) vs the in-process hf-causal backend (dynamic batches of up
   to 16). Throughput in generated tokens per second (the random model may stop early, so tokens are counted
   from each answer's `usage`) and in requests per second.
2. vLLM with continuous batching (max_rolling_batch_size 16) vs one sequence at a time (max 1).
3. Streamed time to first token with vLLM, 16 clients on InvokeEndpointWithResponseStream: p50 and p95 of the
   first chunk carrying text, against the time to the whole answer.
4. Summarizer: the Hugging Face toolkit in its container vs the in-process hf-seq2seq backend, one request at
   a time (the toolkit serves one at a time, as MMS with one worker does): the latency ratio is the overhead.

About 5 minutes on 2 cores, most of it starting vLLM engines. Run: `python -m bench.engines`.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.endpoint import endpoint_process, runtime_client
from local.backends.smoke import VLLM_CPU_HEAD_DIM, make_smoke_causal_lm, make_smoke_seq2seq
from provisioning.config import EndpointConfig, parse_config

ENDPOINT_NAME = "bench-engines"
_JSON = "application/json"  # the toolkit refuses a body without its content type, as in production
CLIENTS = 16
REQUESTS_PER_CLIENT = 4
MAX_TOKENS = 64
SUMMARIES = 40
CONTEXT_TOKENS = 1024  # the smoke Llama's position embeddings
CALL = (
    "Agent: Thanks for calling, how can I help?\nCustomer: My internet keeps dropping every evening.\n"
    "Agent: I have reset the line and booked a technician for Thursday morning.\nCustomer: Thank you."
)


@dataclass(frozen=True)
class Run:
    seconds: float
    latencies: list[float]
    tokens: int = 0
    first_token: tuple[float, ...] = ()

    @property
    def requests_per_s(self) -> float:
        return len(self.latencies) / self.seconds

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds


def _config(component: str, kind: str, local: dict[str, Any], environment: dict[str, str]) -> EndpointConfig:
    raw = {
        "endpoint": {"name": ENDPOINT_NAME, "instance_type": "ml.g5.12xlarge"},
        "components": {
            component: {
                "container": {
                    "kind": kind,
                    "image_version": _IMAGES[kind],
                    "model_id": "smoke",
                    "environment": environment,
                },
                "compute": {"accelerators": 1, "cpu_cores": 1, "min_memory_mb": 1024},
                "local": {"timeout_s": 300, "max_batch_wait_ms": 20, **local},
            }
        },
    }
    return parse_config(raw, "<bench>", environ={})


_IMAGES = {"lmi": "0.35.0", "huggingface": "4.51.3"}


def chat_config(backend: str, checkpoint: Path, sequences: int) -> EndpointConfig:
    local = {
        "backend": backend,
        "checkpoint": str(checkpoint),
        "max_batch_size": sequences,
        "context_tokens": CONTEXT_TOKENS,
    }
    environment = {"OPTION_MAX_ROLLING_BATCH_SIZE": str(sequences)}
    return _config("chat", "lmi", local, environment)


def summarizer_config(backend: str, checkpoint: Path) -> EndpointConfig:
    local = {"backend": backend, "checkpoint": str(checkpoint), "max_batch_size": 1}
    return _config("summarizer", "huggingface", local, {"HF_TASK": "summarization"})


def _chat_request(client: int, index: int, stream: bool = False) -> str:
    question = f"Customer {client}, question {index}: my order arrived broken, what now?"
    payload = {"messages": [{"role": "user", "content": question}], "max_tokens": MAX_TOKENS, "temperature": 0}
    return json.dumps({**payload, "stream": True} if stream else payload)


def _concurrently(clients: int, loop: Callable[[int], list[tuple[float, int, float]]]) -> Run:
    """`clients` threads each run `loop(client)`, which returns (latency, tokens, first token) per request."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = [item for per_client in pool.map(loop, range(clients)) for item in per_client]
    seconds = time.perf_counter() - started
    return Run(seconds, [r[0] for r in results], sum(r[1] for r in results), tuple(r[2] for r in results))


def chat_throughput(url: str, requests_per_client: int = REQUESTS_PER_CLIENT) -> Run:
    runtimes = [runtime_client(url, CLIENTS) for _ in range(CLIENTS)]

    def loop(client: int) -> list[tuple[float, int, float]]:
        results = []
        for index in range(requests_per_client):
            began = time.perf_counter()
            response = runtimes[client].invoke_endpoint(
                EndpointName=ENDPOINT_NAME,
                InferenceComponentName="chat",
                Body=_chat_request(client, index),
                ContentType=_JSON,
            )
            tokens = json.loads(response["Body"].read())["usage"]["completion_tokens"]
            elapsed = time.perf_counter() - began
            results.append((elapsed, tokens, elapsed))
        return results

    return _concurrently(CLIENTS, loop)


def streamed_first_token(url: str) -> Run:
    runtimes = [runtime_client(url, CLIENTS) for _ in range(CLIENTS)]

    def loop(client: int) -> list[tuple[float, int, float]]:
        results = []
        for index in range(REQUESTS_PER_CLIENT):
            began = time.perf_counter()
            response = runtimes[client].invoke_endpoint_with_response_stream(
                EndpointName=ENDPOINT_NAME,
                InferenceComponentName="chat",
                Body=_chat_request(client, index, True),
                ContentType=_JSON,
            )
            first, buffer, tokens = 0.0, b"", 0
            for event in response["Body"]:
                buffer += event.get("PayloadPart", {}).get("Bytes", b"")
                *lines, buffer = buffer.split(b"\n")
                for line in filter(None, lines):
                    choices = json.loads(line).get("choices") or [{}]
                    if choices[0].get("delta", {}).get("content"):
                        tokens += 1
                        first = first or time.perf_counter() - began
            results.append((time.perf_counter() - began, tokens, first))
        return results

    return _concurrently(CLIENTS, loop)


def summarizer_latency(url: str) -> Run:
    runtime = runtime_client(url, CLIENTS)
    body = json.dumps({"inputs": CALL, "parameters": {"max_length": 24}})
    latencies = []
    for _ in range(SUMMARIES):
        began = time.perf_counter()
        runtime.invoke_endpoint(
            EndpointName=ENDPOINT_NAME, InferenceComponentName="summarizer", Body=body, ContentType=_JSON
        )["Body"].read()
        latencies.append(time.perf_counter() - began)
    return Run(sum(latencies), latencies)


def _percentile(values: tuple[float, ...] | list[float], percent: int) -> float:
    return statistics.quantiles(values, n=100)[percent - 1]


def main() -> None:
    with tempfile.TemporaryDirectory() as directory, ExitStack() as stack:
        llama = make_smoke_causal_lm(Path(directory) / "llama", head_dim=VLLM_CPU_HEAD_DIM)
        bart = make_smoke_seq2seq(Path(directory) / "bart")
        configs = {
            "vllm": chat_config("vllm", llama, CLIENTS),
            "vllm-1": chat_config("vllm", llama, 1),
            "hf-causal": chat_config("hf-causal", llama, CLIENTS),
            "hf-toolkit": summarizer_config("hf-toolkit", bart),
            "hf-seq2seq": summarizer_config("hf-seq2seq", bart),
        }
        # Each endpoint serves alone while it is measured; idle ones cost no CPU once loaded.
        urls = {name: stack.enter_context(endpoint_process(config)) for name, config in configs.items()}
        runs: dict[str, Run] = {}
        for name in ("vllm", "vllm-1", "hf-causal"):
            chat_throughput(urls[name], requests_per_client=1)  # warm-up
            runs[name] = chat_throughput(urls[name])
        runs["stream"] = streamed_first_token(urls["vllm"])
        for name in ("hf-toolkit", "hf-seq2seq"):
            summarizer_latency(urls[name])  # warm-up
            runs[name] = summarizer_latency(urls[name])

    vllm, one, hf, streamed = runs["vllm"], runs["vllm-1"], runs["hf-causal"], runs["stream"]
    toolkit, seq2seq = runs["hf-toolkit"], runs["hf-seq2seq"]
    print(
        f"engines bench: smoke checkpoints; chat: {CLIENTS} clients x {REQUESTS_PER_CLIENT} requests, "
        f"max_tokens {MAX_TOKENS}; summarizer: {SUMMARIES} sequential calls"
    )
    print(f"{'measurement':<52}{'value':>10}{'baseline':>10}{'ratio':>8}")
    rows = [
        ("1 chat tokens/s: vLLM (LMI) vs hf-causal", vllm.tokens_per_s, hf.tokens_per_s),
        ("1 chat req/s: vLLM (LMI) vs hf-causal", vllm.requests_per_s, hf.requests_per_s),
        ("2 vLLM tokens/s: continuous batching vs max_num_seqs 1", vllm.tokens_per_s, one.tokens_per_s),
        (
            "3 streamed first token vs whole answer, p50 (s)",
            _percentile(streamed.first_token, 50),
            _percentile(streamed.latencies, 50),
        ),
        (
            "3 streamed first token vs whole answer, p95 (s)",
            _percentile(streamed.first_token, 95),
            _percentile(streamed.latencies, 95),
        ),
        (
            "4 summary latency p50: toolkit container vs hf-seq2seq (s)",
            _percentile(toolkit.latencies, 50),
            _percentile(seq2seq.latencies, 50),
        ),
    ]
    for name, value, baseline in rows:
        print(f"{name:<60}{value:>10.3f}{baseline:>10.3f}{value / baseline:>7.2f}x")
    print(
        f"tokens generated: vLLM {vllm.tokens}, max_num_seqs 1 {one.tokens}, hf-causal {hf.tokens}; "
        f"mean chat latency (s): vLLM {statistics.mean(vllm.latencies):.3f}, "
        f"hf-causal {statistics.mean(hf.latencies):.3f}"
    )


if __name__ == "__main__":
    main()
