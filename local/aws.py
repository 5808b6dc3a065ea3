"""Local AWS services: moto in server mode on loopback, and the template's DynamoDB table created in it."""

from __future__ import annotations

import collections
import copy
import json
import logging
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import boto3
import moto.dynamodb.models as moto_dynamodb
from moto.dynamodb.exceptions import MockValidationException
from moto.dynamodb.models.table import Table
from moto.dynamodbstreams.models import DynamoDBStreamsBackend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from local.template import LOCAL_REGION, Template

# boto3 reads these itself, so Lambda code talks to moto without any local-only branch.
_SERVICES_ON_MOTO = ("DYNAMODB", "DYNAMODB_STREAMS", "S3", "SQS", "SSM")
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}


def moto_client(url: str, service: str) -> Any:
    """A boto3 client of `service` on the moto server at `url` (the local region, the dummy credentials)."""
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=LOCAL_REGION,
        aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def moto_environment(url: str) -> dict[str, str]:
    """boto3 environment variables that point DynamoDB (and its streams), S3, SQS and SSM at the moto server at
    `url` (moto serves DynamoDB Streams only at an explicit endpoint)."""
    env = {f"AWS_ENDPOINT_URL_{service}": url for service in _SERVICES_ON_MOTO}
    return {**env, **DUMMY_CREDENTIALS, "AWS_DEFAULT_REGION": LOCAL_REGION, "AWS_REGION": LOCAL_REGION}


class _CopyExceptTables:
    """Stands in for the `copy` module inside moto's DynamoDB backend, whose transactions back up each table they
    touch by deep-copying it, stream history included, once per item: a cost that grows with every write ever
    made to the table (at a few hundred turns a transaction took longer than the rest of a turn). Tables are
    not copied; `_transact_write_items` backs up only the items a transaction touches."""

    @staticmethod
    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)


_moto_transact_write_items = moto_dynamodb.DynamoDBBackend.transact_write_items


def _transact_write_items(backend: Any, transact_items: list[dict[str, Any]]) -> None:
    """moto's transaction, rolled back on failure by restoring the items it touched (as moto's would)."""
    backups = []
    for entry in transact_items:
        _, operation = next(iter(entry.items()))
        table = backend.tables.get(operation.get("TableName"))
        key = operation.get("Key") or operation.get("Item")
        if table is None or not isinstance(key, dict):
            continue
        try:
            hash_key, range_key = backend.get_keys_value(table, key)
        except MockValidationException:
            continue  # moto refuses the transaction before it changes anything
        backups.append((table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))))
    try:
        _moto_transact_write_items(backend, transact_items)
    except Exception:
        for table, hash_key, range_key, item in reversed(backups):
            partition = table.items[hash_key] if range_key is not None else table.items
            slot = range_key if range_key is not None else hash_key
            if item is None:
                partition.pop(slot, None)
            else:
                partition[slot] = item
        raise


def _back_up_touched_items_only() -> None:
    moto_dynamodb.copy = _CopyExceptTables  # type: ignore[attr-defined]
    moto_dynamodb.DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]


# DynamoDB Streams: "A shard iterator expires 15 minutes after it is returned to the requester" (GetShardIterator).
SHARD_ITERATOR_LIFETIME_S = 15 * 60


class ExpiringShardIterators(dict):
    """moto's shard iterators, each forgotten once it is older than DynamoDB Streams lets it live. moto keeps every
    iterator it hands out, one per GetRecords, so the stack's stream poller would grow it by two a second, idle."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self._clock = clock
        self._handed_out: collections.deque[tuple[float, str]] = collections.deque()

    def __setitem__(self, arn: str, iterator: Any) -> None:
        super().__setitem__(arn, iterator)
        now = self._clock()
        self._handed_out.append((now, arn))
        while now - self._handed_out[0][0] > SHARD_ITERATOR_LIFETIME_S:
            self.pop(self._handed_out.popleft()[1], None)


_moto_streams_init = DynamoDBStreamsBackend.__init__


def _streams_backend_init(backend: DynamoDBStreamsBackend, region_name: str, account_id: str) -> None:
    _moto_streams_init(backend, region_name, account_id)
    backend.shard_iterators = ExpiringShardIterators()


def _expire_shard_iterators() -> None:
    DynamoDBStreamsBackend.__init__ = _streams_backend_init  # type: ignore[method-assign]


TIMINGS_PATH = "/_local/moto-timings"

#: Looks at a request's WSGI environ before moto does; returns (status, headers, body) to answer it instead.
Interceptor = Callable[[dict[str, Any]], tuple[int, dict[str, str], bytes] | None]


class _OneRequestAtATime:
    """WSGI wrapper: moto's backends are not safe under concurrent writes (a transaction deep-copies a
    table that another request is changing, and fails); serialized, moto behaves like one consistent service."""

    def __init__(self, app: Any, timings: MotoTimings, interceptor: Interceptor | None = None):
        self._app = app
        self._timings = timings
        self._interceptor = interceptor
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ.get("PATH_INFO") == TIMINGS_PATH:  # read by a parent process (start_moto_process)
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps(self._timings.snapshot()).encode()]
        answer = self._interceptor(environ) if self._interceptor else None
        if answer is not None:
            status, headers, body = answer
            start_response(f"{status} {HTTPStatus(status).phrase}", list(headers.items()))
            return [body]
        arrived = time.perf_counter()
        with self._lock:
            started = time.perf_counter()
            response = list(self._app(environ, start_response))
            self._timings.add(queued_s=started - arrived, serving_s=time.perf_counter() - started)
        return response


@dataclass
class MotoTimings:
    """Where moto's requests spent their time (totals in seconds): waiting for the one-at-a-time lock, and
    being served. Read by the API benchmark."""

    requests: int = 0
    queued_s: float = 0.0
    serving_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, queued_s: float, serving_s: float) -> None:
        with self._lock:
            self.requests += 1
            self.queued_s += queued_s
            self.serving_s += serving_s

    def snapshot(self) -> tuple[int, float, float]:
        with self._lock:
            return self.requests, self.queued_s, self.serving_s


@dataclass
class MotoHandle:
    url: str
    timings: MotoTimings
    _server: BaseWSGIServer = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def environment(self) -> dict[str, str]:
        return moto_environment(self.url)

    def __enter__(self) -> MotoHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_moto(host: str = "127.0.0.1", port: int = 5000, *, interceptor: Interceptor | None = None) -> MotoHandle:
    """moto server (all services, as `moto_server`) in a background thread; port 0 picks a free port.
    `interceptor` may answer requests itself (fault injection at the wire)."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per request otherwise
    _back_up_touched_items_only()
    _expire_shard_iterators()
    timings = MotoTimings()
    app = _OneRequestAtATime(DomainDispatcherApplication(create_backend_app), timings, interceptor)
    server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="moto-server", daemon=True)
    thread.start()
    bound_host, bound_port = server.server_address[:2]
    return MotoHandle(url=f"http://{bound_host}:{bound_port}", timings=timings, _server=server, _thread=thread)


class _RemoteTimings:
    """The timings of a moto server in another process, read over HTTP."""

    def __init__(self, url: str):
        self._url = url + TIMINGS_PATH

    def snapshot(self) -> tuple[int, float, float]:
        with urllib.request.urlopen(self._url, timeout=10) as response:
            requests, queued_s, serving_s = json.load(response)
        return int(requests), float(queued_s), float(serving_s)


@dataclass
class MotoProcess:
    """moto in a process of its own (`python -m local.aws`): no Python thread of this process competes with it."""

    url: str
    timings: _RemoteTimings
    _process: subprocess.Popen = field(repr=False)

    def stop(self) -> None:
        if self._process.stdin:
            self._process.stdin.close()  # the server stops when its stdin closes
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def environment(self) -> dict[str, str]:
        return moto_environment(self.url)

    def __enter__(self) -> MotoProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_moto_process(host: str = "127.0.0.1", port: int = 5000) -> MotoProcess:
    """moto server (as start_moto) in a child process; port 0 picks a free port."""
    process = subprocess.Popen(
        [sys.executable, "-m", "local.aws", "--host", host, "--port", str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url:
        process.wait()
        raise RuntimeError(f"moto did not start (exit code {process.returncode})")
    return MotoProcess(url, _RemoteTimings(url), process)


def _serve_until_stdin_closes(host: str, port: int) -> None:
    with start_moto(host, port) as moto:
        print(moto.url, flush=True)
        sys.stdin.read()


@contextmanager
def patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block, then restore the previous ones."""
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def table_definition(template: Template, logical_id: str = "ChatbotTable") -> dict[str, Any]:
    """CreateTable arguments from the table's own properties in the template."""
    properties = template.resolve(template.resources[logical_id]["Properties"])
    request: dict[str, Any] = {
        "TableName": properties.get("TableName", logical_id),
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "KeySchema": properties["KeySchema"],
        "BillingMode": properties.get("BillingMode", "PROVISIONED"),
    }
    if request["BillingMode"] == "PROVISIONED":
        request["ProvisionedThroughput"] = properties["ProvisionedThroughput"]
    if properties.get("GlobalSecondaryIndexes"):
        request["GlobalSecondaryIndexes"] = properties["GlobalSecondaryIndexes"]
    if properties.get("StreamSpecification"):
        request["StreamSpecification"] = {"StreamEnabled": True, **properties["StreamSpecification"]}
    if (properties.get("SSESpecification") or {}).get("SSEEnabled"):
        request["SSESpecification"] = {"Enabled": True}
    return request


def create_table_from_template(template: Template, dynamodb_client: Any, logical_id: str = "ChatbotTable") -> str:
    """Create the template's table (keys, indexes, TTL, point-in-time recovery) unless it exists; returns its name."""
    request = table_definition(template, logical_id)
    name = request["TableName"]
    try:
        dynamodb_client.create_table(**request)
    except dynamodb_client.exceptions.ResourceInUseException:
        return name
    dynamodb_client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    properties = template.resolve(template.resources[logical_id]["Properties"])
    ttl = properties.get("TimeToLiveSpecification") or {}
    if ttl.get("Enabled"):
        dynamodb_client.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True}
        )
    if (properties.get("PointInTimeRecoverySpecification") or {}).get("PointInTimeRecoveryEnabled"):
        dynamodb_client.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
    return name


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m local.aws", description="moto server until stdin closes")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    arguments = parser.parse_args()
    _serve_until_stdin_closes(arguments.host, arguments.port)
