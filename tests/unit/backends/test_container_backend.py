"""ContainerBackend: a copy served by its own process over SageMaker's container contract, relayed as is."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.backends.base import Invocation, ModelServerError
from local.backends.container import ContainerBackend, ContainerSpec, ContainerStartError

_RELAY = "relay_container"
# The relay container lives beside this file; only its process gets this folder on its path.
_BESIDE_THIS_FILE = {"PYTHONPATH": str(Path(__file__).parent)}


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ContainerBackend]:
    spec = ContainerSpec(_RELAY, ".venv", tmp_path_factory.mktemp("model"), _BESIDE_THIS_FILE)
    backend = ContainerBackend("relay", spec, "relay")
    yield backend
    backend.close()


def _invocation(payload: dict, content_type: str = "application/json") -> Invocation:
    return Invocation(json.dumps(payload).encode(), content_type, "application/json")


def test_a_buffered_answer_comes_back_byte_for_byte(relay: ContainerBackend):
    # Given a request the container answers with its own body
    prepared = relay.prepare(_invocation({"status": 200, "text": "héllo"}))
    # When it is served without a sink
    response = relay.serve(prepared, None)
    # Then the body and content type are what the container sent
    assert response is not None and response.content_type == "application/json"
    answer = json.loads(response.body)
    assert (answer["status"], answer["text"]) == (200, "héllo")


def test_the_callers_content_type_and_accept_reach_the_container(relay: ContainerBackend):
    # Given a request described with a charset, as some clients send it
    prepared = relay.prepare(_invocation({"status": 200}, content_type="application/json; charset=utf-8"))
    # When it is served, then the container sees the caller's headers unchanged (the toolkit is strict about them)
    response = relay.serve(prepared, None)
    assert response is not None
    received = json.loads(response.body)["received_headers"]
    assert (received["content-type"], received["accept"]) == ("application/json; charset=utf-8", "application/json")


def test_an_error_status_travels_with_the_containers_own_body(relay: ContainerBackend):
    # Given a request the container answers with a 424
    # When it is served, then the status and body are kept for the ModelError SageMaker relays
    with pytest.raises(ModelServerError) as raised:
        relay.serve(relay.prepare(_invocation({"status": 424, "error": "bad chat"})), None)
    assert raised.value.status == 424
    assert json.loads(raised.value.body)["error"] == "bad chat"


def test_a_stream_is_relayed_chunk_by_chunk_as_it_arrives(relay: ContainerBackend):
    # Given a streamed answer with a pause between its chunks
    received: list[tuple[float, bytes, str | None]] = []
    prepared = relay.prepare(_invocation({"chunks": ['{"a": 1}\n', '{"b": 2}\n'], "delay_s": 0.5}))
    # When it is served with a sink
    started = time.monotonic()
    relay.serve(
        prepared, lambda part, content_type=None: received.append((time.monotonic() - started, part, content_type))
    )
    # Then the first chunk arrived before the pause ended, and the parts join to the whole stream
    assert b"".join(part for _, part, _ in received) == b'{"a": 1}\n{"b": 2}\n'
    assert received[0][0] < 0.4 <= received[-1][0]
    # And the parts come with the container's Content-Type, which types the stream
    assert {content_type for _, _, content_type in received} == {"application/jsonlines"}


def test_a_container_that_dies_while_loading_fails_with_its_output(tmp_path: Path):
    # Given a container module that does not exist
    spec = ContainerSpec(module="local.containers.no_such_container", venv=".venv", model_dir=tmp_path)
    # When the backend starts it, then the start fails with the process's own error
    with pytest.raises(ContainerStartError, match="No module named"):
        ContainerBackend("broken", spec, "broken")


def test_a_missing_virtualenv_is_named(tmp_path: Path):
    spec = ContainerSpec(module=_RELAY, venv=".venv-missing", model_dir=tmp_path)
    with pytest.raises(ContainerStartError, match=r"\.venv-missing/bin/python is missing"):
        ContainerBackend("c", spec, "c")


def test_close_stops_the_container_process(tmp_path: Path):
    # Given a running container
    backend = ContainerBackend("c", ContainerSpec(_RELAY, ".venv", tmp_path, _BESIDE_THIS_FILE), "c")
    pid = backend._process.pid
    # When it is closed
    backend.close()
    # Then its process is gone
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
