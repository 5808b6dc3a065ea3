"""The hosted endpoint without HTTP: scaling, failed loads, readiness, payload parsing."""

from __future__ import annotations

import time

import pytest
from endpoint_unit_fakes import RecordingBackend, json_invocation, make_config

from local.endpoint.errors import NO_CAPACITY_MESSAGE, ValidationError
from local.endpoint.runtime import LocalEndpoint, parse_json_payload


def test_a_backend_that_fails_to_load_rolls_the_scale_up_back():
    # Given a running one-copy component whose next backend load fails
    loaded: list[RecordingBackend] = []

    def factory(name, component):
        if len(loaded) == 2:
            raise OSError("checkpoint unreadable")
        loaded.append(RecordingBackend())
        return loaded[-1]

    endpoint = LocalEndpoint(make_config(copies=1), factory)
    endpoint.start()
    component = endpoint.components["chat"]
    try:
        # When it is scaled to three copies
        with pytest.raises(OSError, match="checkpoint unreadable"):
            component.scale_to(3)
        snapshot = component.snapshot()
        instances = endpoint.placement.snapshot()
    finally:
        endpoint.stop()
    # Then the copy loaded for it is closed, its reservations are freed, and the component is as before
    assert loaded[1].closed
    assert snapshot["current_copies"] == 1
    assert snapshot["desired_copies"] == 1
    assert snapshot["status"] == "InService"
    assert instances[0]["copies"] == ["chat/1"]


def test_scaling_to_zero_answers_with_no_capacity_and_back_up_serves_again():
    # Given a running component
    endpoint = LocalEndpoint(make_config(copies=2), lambda name, component: RecordingBackend())
    endpoint.start()
    component = endpoint.components["chat"]
    try:
        # When it is scaled to zero, then requests get the no-capacity error
        component.scale_to(0)
        with pytest.raises(ValidationError) as refused:
            component.submit(json_invocation({"value": 1}), streaming=False)
        ready_at_zero = endpoint.ready()
        # And when scaled back up, then it serves again on a new copy
        component.scale_to(1)
        job = component.submit(json_invocation({"value": 2}), streaming=False)
        answer = job.next_event(time.monotonic() + 10)
        copy_ids = [copy["copy_id"] for copy in component.snapshot()["copies"] if copy["state"] == "serving"]
    finally:
        endpoint.stop()
    assert refused.value.message == NO_CAPACITY_MESSAGE
    assert ready_at_zero  # zero copies asked for is a healthy state
    assert answer == ("result", {"value": 2})
    assert copy_ids == [3]


def test_payload_errors_from_prepare_become_validation_errors_and_free_the_copy():
    # Given a running component
    endpoint = LocalEndpoint(make_config(copies=1), lambda name, component: RecordingBackend())
    endpoint.start()
    component = endpoint.components["chat"]
    try:
        # When a payload breaking the contract is submitted
        with pytest.raises(ValidationError) as refused:
            component.submit(json_invocation({"no": "value"}), streaming=False)
        outstanding = component.snapshot()["copies"][0]["outstanding"]
    finally:
        endpoint.stop()
    # Then the backend's message is the error, and the copy holds no phantom request
    assert refused.value.message == "payload needs a `value`"
    assert outstanding == 0


@pytest.mark.parametrize("body", [b"", b"{", b"\xff", b"[1, 2"])
def test_bodies_that_are_not_json_are_refused(body):
    with pytest.raises(ValidationError, match="not valid JSON"):
        parse_json_payload(body)


def test_json_bodies_are_parsed():
    assert parse_json_payload('{"inputs": "caf\u00e9"}'.encode()) == {"inputs": "caf\u00e9"}
