"""Conversations API benchmark (`python -m bench api`).

1. DynamoDB read units per turn with 10 and with 1,000 stored messages (target: within 10%). Units are
   computed from the sizes of the items each turn reads, the way DynamoDB bills them (4 KB per unit,
   Query totals rounded up, strongly consistent = 1 unit), because moto's ConsumedCapacity is a constant.
2. Chat turns with 1 and 8 concurrent clients (TURNS_PER_CLIENT each, one conversation per client), over HTTP
   through the local gateway, the functions' own execution environments and a moto server in its own process,
   with a model endpoint that answers instantly: turns/s, p50/p95 (a plain GET of the conversation is the
   baseline), and where a turn's time goes (gateway, waiting for an environment, the handler's own work,
   moto queued and serving, endpoint), from the gateway's, moto's and the endpoint's own counters.
3. Cold import of the conversations handler in a fresh interpreter, against `import boto3` alone, and a
   check that no torch / transformers / sagemaker SDK module is loaded.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import requests
from aws_lambda_powertools import Metrics
from moto import mock_aws

from bench.read_units import ReadUnitMeter
from local.aws import DUMMY_CREDENTIALS, create_table_from_template, moto_client, patched_environ, start_moto_process
from local.gateway import start_gateway
from local.lambda_runtime import FunctionDefinition
from local.template import LOCAL_REGION, PROJECT_ROOT, Template

MEASURED_TURNS = 5
WARM_UP_TURNS_MAX = 20
TURNS_PER_CLIENT = 30
BENCH_USER_QUOTA = 100_000
FORBIDDEN_MODULES = ("torch", "transformers", "sagemaker")


class InstantModel:
    """Stands in for the endpoint in-process: answers at once, so only our own work is measured."""

    def chat(self, messages: list[dict], *, max_new_tokens: int, temperature: float | None = None, **_: Any) -> str:
        return "Noted."

    def summarize(self, texts: list[str], **_: Any) -> list[str]:
        return [text[:200] for text in texts]


def _discard_metrics() -> None:
    """Outside Lambda nothing flushes Powertools' shared metric set; drop it per turn as log_metrics would."""
    Metrics().clear_metrics()


def _prefill(client: Any, table: str, conversation_id: str, messages: int) -> None:
    from chatbot.conversations.store import conversation_pk, message_sk
    from chatbot.dynamodb import serialize

    """Write `messages` stored messages straight to the table (as `messages / 2` answered turns would leave
    them, but nothing folded yet): the warm-up turns then fold them through the real code path."""
    requests_ = []
    for seq in range(1, messages + 1):
        role = "user" if seq % 2 else "assistant"
        item = {
            "pk": conversation_pk(conversation_id),
            "sk": message_sk(seq),
            "type": "message",
            "seq": seq,
            "role": role,
            "content": f"stored message {seq}: " + "some detail " * 12,
            "created_at": "2026-11-25T12:00:00.000Z",
            **({"status": "answered"} if role == "user" else {"reply_to": seq - 1}),
        }
        requests_.append({"PutRequest": {"Item": serialize(item)}})
    for offset in range(0, len(requests_), 25):
        client.batch_write_item(RequestItems={table: requests_[offset : offset + 25]})
    client.update_item(
        TableName=table,
        Key=serialize({"pk": conversation_pk(conversation_id), "sk": "META"}),
        UpdateExpression="SET turn_count = :turns, message_count = :messages",
        ExpressionAttributeValues=serialize({":turns": messages // 2, ":messages": messages}),
    )


def read_units_per_turn() -> dict[int, float]:
    """Mean read units of a turn once a conversation holds 10 and 1,000 messages (steady state: the
    warm-up turns fold what is older than the window into the rolling summary first)."""
    from chatbot.conversations.policy import ChatPolicy
    from chatbot.conversations.service import ConversationService
    from chatbot.conversations.store import ConversationStore

    results = {}
    with patched_environ({**DUMMY_CREDENTIALS, "AWS_DEFAULT_REGION": LOCAL_REGION}), mock_aws():
        client = boto3.client("dynamodb", region_name=LOCAL_REGION)
        table = create_table_from_template(Template(), client)
        store = ConversationStore(table, client)
        meter = ReadUnitMeter(client)
        policy = ChatPolicy()
        service = ConversationService(store, InstantModel(), policy)  # type: ignore[arg-type]
        for stored_messages in (10, 1000):
            conversation_id = service.create_conversation("bench-user", None, "Answer briefly.")["id"]
            _prefill(client, table, conversation_id, stored_messages)
            for turn in range(WARM_UP_TURNS_MAX):
                conversation = store.get_conversation(conversation_id)
                if 2 * conversation["turn_count"] - conversation["summarized_through"] <= policy.chat_window_messages:
                    break
                service.send_message("bench-user", conversation_id, f"warm-up question {turn}")
                _discard_metrics()
            before = meter.total
            for turn in range(MEASURED_TURNS):
                service.send_message("bench-user", conversation_id, f"measured question {turn}")
                _discard_metrics()
            results[stored_messages] = (meter.total - before) / MEASURED_TURNS
    return results


class _InstantEndpoint(ThreadingHTTPServer):
    """Stands in for the SageMaker endpoint over HTTP: answers at once, and adds up its serving time."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _InstantEndpointHandler)
        self.serving_s = 0.0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _InstantEndpointHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _InstantEndpoint

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms delayed-ACK stall

    def do_POST(self) -> None:
        started = time.perf_counter()
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        component = self.headers.get("X-Amzn-SageMaker-Inference-Component")
        answer: Any = {"choices": [{"message": {"role": "assistant", "content": "Noted."}}]}
        if component == "summarizer":
            answer = [{"summary_text": "A summary."}]
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        with self.server.lock:
            self.server.serving_s += time.perf_counter() - started

    def log_message(self, format: str, *args: Any) -> None:
        return


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


def _run_clients(
    clients: int, requests_per_client: int, request: Callable[[int, int], None]
) -> tuple[list[float], float]:
    """Latencies (ms) of every request, and the wall time (s) of the whole run."""
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def client(index: int) -> None:
        barrier.wait(timeout=30)
        for number in range(requests_per_client):
            started = time.perf_counter()
            request(index, number)
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)

    threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    return latencies, time.perf_counter() - started


class _BenchUsers:
    """One HTTP session, user and conversation per concurrent client."""

    def __init__(self, url: str, clients: int):
        self.url = url
        self.sessions = [requests.Session() for _ in range(clients)]
        self.headers = [{"Authorization": f"Bearer local-bench{index}"} for index in range(clients)]
        self.conversations = [
            session.post(f"{url}/v1/conversations", json={}, headers=headers).json()["id"]
            for session, headers in zip(self.sessions, self.headers, strict=True)
        ]

    def turn(self, index: int, number: int) -> None:
        response = self.sessions[index].post(
            f"{self.url}/v1/conversations/{self.conversations[index]}/messages",
            json={"content": f"message {number} " + "words " * 20},
            headers=self.headers[index],
        )
        if response.status_code != 201:
            raise RuntimeError(f"turn failed: {response.status_code} {response.text}")

    def read(self, index: int, _number: int) -> None:
        response = self.sessions[index].get(
            f"{self.url}/v1/conversations/{self.conversations[index]}", headers=self.headers[index]
        )
        if response.status_code != 200:
            raise RuntimeError(f"read failed: {response.status_code} {response.text}")


@dataclass
class TurnRun:
    """One measured run: latencies, throughput, and where a turn's time went (mean ms per turn)."""

    clients: int
    turns: int
    turns_per_s: float
    p50_ms: float
    p95_ms: float
    get_p50_ms: float
    breakdown_ms: dict[str, float]


def _per_turn(before: tuple[float, ...], after: tuple[float, ...], turns: int) -> list[float]:
    return [(later - earlier) * 1000 / turns for earlier, later in zip(before[1:], after[1:], strict=True)]


def _turns_with(clients: int) -> TurnRun:
    """TURNS_PER_CLIENT turns by each of `clients` concurrent clients (one conversation each, so every turn
    reads and writes a conversation of the same size), on a fresh moto and gateway."""
    endpoint = _InstantEndpoint()
    threading.Thread(target=endpoint.serve_forever, daemon=True).start()
    try:
        with start_moto_process(port=0) as moto:
            client = moto_client(moto.url, "dynamodb")
            create_table_from_template(Template(), client)
            environment = {**moto.environment(), "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": endpoint.url}
            parameters = {
                "EndpointName": "bench",
                "ChatComponentName": "chat",
                "SummarizerComponentName": "summarizer",
                # A client sends more turns a minute than one user may: the quota stays on (its counter is part
                # of a turn's work), out of the run's reach.
                "UserChatRequestsPerMinute": str(BENCH_USER_QUOTA),
            }
            with start_gateway(
                port=0, environment=environment, parameters=parameters, function_logs=subprocess.DEVNULL
            ) as gateway:
                for function in ("ConversationsFunction", "ConversationsStreamFunction"):  # reads; sends
                    gateway.runtime.function(function).provision(clients)
                users = _BenchUsers(gateway.url, clients)
                _run_clients(clients, 2, users.read)  # every environment has served a request: all warm
                before = (gateway.timings.snapshot(), moto.timings.snapshot(), endpoint.serving_s)
                latencies, seconds = _run_clients(clients, TURNS_PER_CLIENT, users.turn)
                after = (gateway.timings.snapshot(), moto.timings.snapshot(), endpoint.serving_s)
                get_latencies, _ = _run_clients(clients, 5, users.read)
    finally:
        endpoint.shutdown()
        endpoint.server_close()
    turns = len(latencies)
    invoke_ms, handler_ms, _ = _per_turn(before[0], after[0], turns)
    moto_queued_ms, moto_serving_ms = _per_turn(before[1], after[1], turns)
    endpoint_ms = (after[2] - before[2]) * 1000 / turns
    mean_ms = statistics.fmean(latencies)
    p50, p95 = _percentiles(latencies)
    return TurnRun(
        clients=clients,
        turns=turns,
        turns_per_s=turns / seconds,
        p50_ms=p50,
        p95_ms=p95,
        get_p50_ms=_percentiles(get_latencies)[0],
        breakdown_ms={
            "client + gateway": mean_ms - invoke_ms,
            "waiting for an environment": invoke_ms - handler_ms,
            "handler (our code, botocore)": handler_ms - moto_queued_ms - moto_serving_ms - endpoint_ms,
            "moto: queued": moto_queued_ms,
            "moto: serving": moto_serving_ms,
            "endpoint": endpoint_ms,
        },
    )


def api_turns() -> dict[int, TurnRun]:
    """The same turns with 1 and with 8 concurrent clients (instant model)."""
    return {clients: _turns_with(clients) for clients in (1, 8)}


_IMPORT_PROBE = textwrap.dedent(
    """
    import importlib.util, json, sys, time
    started = time.perf_counter()
    {statement}
    elapsed = time.perf_counter() - started
    loaded = sorted({{name.split(".")[0] for name in sys.modules}} & set({forbidden!r}))
    print(json.dumps({{"seconds": elapsed, "forbidden": loaded}}))
    """
)


def _import_seconds(statement: str) -> dict[str, Any]:
    # The function's own environment from the template, so the probe imports the handler as Lambda would (a
    # hand-written list fell behind when the function gained variables).
    function = FunctionDefinition.from_template(Template(), "ConversationsFunction")
    environment = {**os.environ, **DUMMY_CREDENTIALS, "AWS_DEFAULT_REGION": LOCAL_REGION, **function.environment}
    code = _IMPORT_PROBE.format(statement=statement, forbidden=FORBIDDEN_MODULES)
    output = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


def cold_import(repeats: int = 3) -> tuple[float, float, list[str]]:
    handler = PROJECT_ROOT / "functions" / "conversations" / "app.py"
    load = (
        f"spec = importlib.util.spec_from_file_location('app', {str(handler)!r}); "
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)"
    )
    handler_runs = [_import_seconds(load) for _ in range(repeats)]
    baseline_runs = [_import_seconds("import boto3; boto3.client('dynamodb')") for _ in range(repeats)]
    forbidden = sorted({name for run in handler_runs for name in run["forbidden"]})
    return (
        statistics.median(run["seconds"] for run in handler_runs),
        statistics.median(run["seconds"] for run in baseline_runs),
        forbidden,
    )


def main() -> None:
    # As in Lambda, the functions' environment exists before the layer is imported: Powertools reads its
    # metrics namespace at import, so the layer is imported lazily, inside this environment (quieter logs).
    powertools = {"POWERTOOLS_SERVICE_NAME": "bench", "POWERTOOLS_METRICS_NAMESPACE": "Bench"}
    with patched_environ({**powertools, "POWERTOOLS_LOG_LEVEL": "WARNING"}):
        _report()


def print_turn_table(runs: dict[int, TurnRun]) -> None:
    one, many = runs[1], runs[8]
    print(f"\nAPI turns, instant model, local gateway + Lambda runtime + moto ({TURNS_PER_CLIENT} turns per client)")
    print("  clients   turns/s   turn p50   turn p95   GET p50   turn/GET p50")
    for run in runs.values():
        print(
            f"  {run.clients:7d}  {run.turns_per_s:8.1f}  {run.p50_ms:7.1f}ms  {run.p95_ms:7.1f}ms  "
            f"{run.get_p50_ms:6.1f}ms  {run.p50_ms / run.get_p50_ms:10.2f}x"
        )
    print("  goal                                                     measured")
    print(f"  throughput at 8 clients / 1 client      >= 1.50x        {many.turns_per_s / one.turns_per_s:7.2f}x")
    print(f"  p95 at 8 clients / p50 at 1 client      <= 6.00x        {many.p95_ms / one.p50_ms:7.2f}x")


def print_breakdown_table(runs: dict[int, TurnRun]) -> None:
    print("\nWhere a turn's time goes (mean ms per turn; moto serves one request at a time)")
    print("  " + "".join(f"{f'{clients} client(s)':>14}" for clients in runs) + "   part")
    for part in runs[1].breakdown_ms:
        print("  " + "".join(f"{run.breakdown_ms[part]:14.1f}" for run in runs.values()) + f"   {part}")
    for run in runs.values():
        busy = run.breakdown_ms["moto: serving"] * run.turns_per_s / 1000
        print(f"  moto busy at {run.clients} client(s): {busy:.0%} of the wall time")


def _report() -> None:
    units = read_units_per_turn()
    ratio = units[1000] / units[10]
    print("DynamoDB read units per turn (computed from item sizes as DynamoDB bills; moto reports a constant)")
    print(f"  10 stored messages     {units[10]:8.2f} RCU")
    print(f"  1,000 stored messages  {units[1000]:8.2f} RCU   ratio {ratio:.2f} (target 0.90-1.10)")

    runs = api_turns()
    print_turn_table(runs)
    print_breakdown_table(runs)

    handler_s, boto3_s, forbidden = cold_import()
    print("\nCold import (fresh interpreter, median of 3)")
    print(f"  conversations handler  {handler_s * 1000:7.0f} ms")
    print(f"  boto3 + one client     {boto3_s * 1000:7.0f} ms   (baseline; handler is {handler_s / boto3_s:.2f}x)")
    print(f"  torch / transformers / sagemaker loaded: {', '.join(forbidden) or 'none'}")


if __name__ == "__main__":
    main()
