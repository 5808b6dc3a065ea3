"""Streamed answers benchmark (`python -m bench streaming`).

Through the whole local stack (HTTP client -> local gateway -> ConversationsStreamFunction's own environments ->
the local endpoint's InvokeEndpointWithResponseStream, moto in its own process), with a chat backend that
produces 128 tokens at a fixed pace (a sleep per decoding step, batched requests stepping together, as an
accelerator would): time to the first `delta` event against time to the `done` event, p50 and p95, at 1 and 8
clients. Target: at 1 client, the first delta arrives in at most 1/5 of the full-answer time.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import threading
import time
from typing import Any

import requests

from bench.api import _percentiles
from local.aws import create_table_from_template, moto_client, start_moto_process
from local.backends import create_backend
from local.backends.base import Backend, TokenSink
from local.backends.chat_contract import ChatAnswer, parse_chat_request
from local.endpoint import start_endpoint
from local.gateway import start_gateway
from local.stack import endpoint_parameters
from local.template import Template
from provisioning.config import load_config

TOKENS = 128
SECONDS_PER_TOKEN = 0.01
TURNS_PER_CLIENT = {1: 8, 8: 4}
TIMEOUT_S = 60


class PacedChat(Backend):
    """Answers every chat request with TOKENS words, one decoding step per SECONDS_PER_TOKEN for the whole batch."""

    label = f"paced chat: {TOKENS} tokens, {SECONDS_PER_TOKEN * 1000:.0f} ms per step"

    def prepare(self, payload: Any) -> Any:
        return parse_chat_request(payload)

    def run_batch(self, prepared: list[Any], sinks: list[TokenSink | None]) -> list[Any]:
        answers = [ChatAnswer(request, sink, model="paced") for request, sink in zip(prepared, sinks, strict=True)]
        words = [f" word{index}" for index in range(TOKENS)]
        for word in words:
            time.sleep(SECONDS_PER_TOKEN)
            for answer in answers:
                answer.piece(word)
        text = "".join(words)
        return [answer.finish(text, "length", prompt_tokens=8, completion_tokens=TOKENS) for answer in answers]


def _streamed_turn(api: str, user: str, conversation_id: str, number: int) -> tuple[float, float]:
    """(seconds to the first delta, seconds to done) of one streamed send."""
    started = time.perf_counter()
    first = None
    with requests.post(
        f"{api}/v1/conversations/{conversation_id}/messages",
        json={"content": f"Question {number}: tell me a long story."},
        headers={"Authorization": f"Bearer local-{user}", "Accept": "text/event-stream"},
        stream=True,
        timeout=TIMEOUT_S,
    ) as response:
        response.raise_for_status()
        for line in response.iter_lines(decode_unicode=True):
            if line == "event: delta" and first is None:
                first = time.perf_counter() - started
            if line == "event: done":
                return first or 0.0, time.perf_counter() - started
    raise RuntimeError("the stream ended without a done event")


def run(clients: int) -> tuple[list[float], list[float]]:
    config = load_config()

    def backend_factory(name: str, component: Any) -> Backend:
        return PacedChat() if name == "chat" else create_backend(name, component)

    firsts: list[float] = []
    fulls: list[float] = []
    lock = threading.Lock()
    with (
        start_moto_process(port=0) as moto,
        start_endpoint(config, port=0, backend_factory=backend_factory) as endpoint,
    ):
        dynamodb = moto_client(moto.url, "dynamodb")
        create_table_from_template(Template(), dynamodb)
        environment = {**moto.environment(), "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": endpoint.url}
        with start_gateway(
            port=0, environment=environment, parameters=endpoint_parameters(config), function_logs=subprocess.DEVNULL
        ) as gateway:
            for function in ("ConversationsFunction", "ConversationsStreamFunction"):
                gateway.runtime.function(function).provision(clients)

            def client(index: int) -> None:
                user = f"bench-{index}"
                created = requests.post(
                    f"{gateway.url}/v1/conversations",
                    json={},
                    headers={"Authorization": f"Bearer local-{user}"},
                    timeout=TIMEOUT_S,
                )
                conversation_id = created.json()["id"]
                _streamed_turn(gateway.url, user, conversation_id, 0)  # warm: the environment's clients connect
                for number in range(1, TURNS_PER_CLIENT[clients] + 1):
                    first, full = _streamed_turn(gateway.url, user, conversation_id, number)
                    with lock:
                        firsts.append(first)
                        fulls.append(full)

            threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    return firsts, fulls


def main() -> None:
    print(f"streamed chat turns through the local stack, {TOKENS} tokens at {SECONDS_PER_TOKEN * 1000:.0f} ms per step")
    print(
        f"{'clients':>7} | {'first delta p50/p95 (s)':>24} | {'full answer p50/p95 (s)':>24} | first/full p50 | target"
    )
    for clients in (1, 8):
        firsts, fulls = run(clients)
        first_p50, first_p95 = _percentiles(firsts)
        full_p50, full_p95 = _percentiles(fulls)
        ratio = first_p50 / full_p50
        target = "<= 0.20" + (" met" if ratio <= 0.2 else " MISSED") if clients == 1 else ""
        print(
            f"{clients:>7} | {first_p50:>11.3f} / {first_p95:<10.3f} | {full_p50:>11.3f} / {full_p95:<10.3f} | "
            f"{ratio:>14.2f} | {target}"
        )
        print(json.dumps({"clients": clients, "answers": len(fulls), "mean_full_s": statistics.fmean(fulls)}))


if __name__ == "__main__":
    main()
