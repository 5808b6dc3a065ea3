"""The hosted endpoint without HTTP: scaling, failed loads, readiness, payload parsing."""

from __future__ import annotations

import time

import pytest
from endpoint_unit_fakes import RecordingBackend, json_invocation, make_config

from local.backends.base import Invocation, PayloadError
from local.endpoint.errors import NO_CAPACITY_MESSAGE, ModelError, ValidationError
from local.endpoint.runtime import LocalEndpoint, parse_json_invocation


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


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "Expecting value: line 1 column 1 (char 0)"),
        (b"{", "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
        (b"\xff", "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"),
        (b"[1, 2", "Expecting ',' delimiter: line 1 column 6 (char 5)"),
    ],
)
def test_bodies_that_are_not_json_are_the_containers_refusal_with_the_decoders_message(body, message):
    # A payload is the container's to refuse, not SageMaker's: the backend frames the decoder's message
    with pytest.raises(PayloadError) as refused:
        parse_json_invocation(Invocation(body, "application/json"))
    assert str(refused.value) == message


def test_json_bodies_are_parsed():
    invocation = Invocation('{"inputs": "caf\u00e9"}'.encode(), "application/json")
    assert parse_json_invocation(invocation) == {"inputs": "caf\u00e9"}


def test_a_payload_the_backend_refuses_is_a_model_error_with_the_backends_status_and_body():
    # Given a component whose backend refuses payloads without a `value`
    endpoint = LocalEndpoint(make_config(), lambda name, component: RecordingBackend())
    endpoint.start()
    component = endpoint.components["chat"]
    try:
        # When a bad payload and a body that is not JSON are submitted
        with pytest.raises(ModelError) as bad_payload:
            component.submit(json_invocation({"other": 1}), streaming=False)
        with pytest.raises(ModelError) as not_json:
            component.submit(Invocation(b"{", "application/json"), streaming=False)
        outstanding = [copy["outstanding"] for copy in component.snapshot()["copies"]]
    finally:
        endpoint.stop()
    # Then SageMaker relays the backend's refusal (RecordingBackend keeps the base class's plain 400)
    assert (bad_payload.value.fields["OriginalStatusCode"], bad_payload.value.fields["OriginalMessage"]) == (
        400,
        "payload needs a `value`",
    )
    assert not_json.value.fields["OriginalMessage"].startswith("Expecting property name")
    # And the refused requests do not stay counted on their copy
    assert outstanding == [0]
