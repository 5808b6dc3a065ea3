"""Every failure reaches boto3 as SageMaker's modelled error, never as a bare 500 or an HTML page."""

from __future__ import annotations

import json
import socket

import pytest
import requests
from botocore.exceptions import ClientError, EventStreamError
from endpoint_fakes import client, component_config, endpoint_config

from local.endpoint import start_endpoint
from local.endpoint.errors import MISSING_COMPONENT_MESSAGE, NO_CAPACITY_MESSAGE

pytestmark = pytest.mark.integration


def call(runtime, body: bytes | str = b'{"text": "hi"}', **kwargs):
    arguments = {"EndpointName": "local-test", "InferenceComponentName": "chat", "Body": body, **kwargs}
    return runtime.invoke_endpoint(**{key: value for key, value in arguments.items() if value is not None})


def error_of(runtime, **kwargs) -> ClientError:
    with pytest.raises(ClientError) as raised:
        call(runtime, **kwargs)
    return raised.value


def test_unknown_endpoint_is_a_validation_error(runtime):
    error = error_of(runtime, EndpointName="no-such-endpoint")
    assert isinstance(error, runtime.exceptions.ValidationError)
    assert error.response["Error"]["Message"] == "Endpoint no-such-endpoint of account 123456789012 not found."
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_missing_component_header_gets_sagemakers_message(runtime):
    error = error_of(runtime, InferenceComponentName=None)
    assert isinstance(error, runtime.exceptions.ValidationError)
    assert error.response["Error"]["Message"] == MISSING_COMPONENT_MESSAGE


def test_unknown_component_is_a_validation_error_naming_it(runtime):
    error = error_of(runtime, InferenceComponentName="translator")
    assert isinstance(error, runtime.exceptions.ValidationError)
    assert "translator" in error.response["Error"]["Message"]


def test_an_oversized_payload_is_sagemakers_validation_error(runtime):
    error = error_of(runtime, body=b"x" * (6 * 1024 * 1024 + 1))
    assert isinstance(error, runtime.exceptions.ValidationError)
    assert "6291457 bytes" in error.response["Error"]["Message"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"not json", "Expecting value: line 1 column 1 (char 0)"),
        (b"\xff", "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"),
        (b'{"text": 42}', "`text` is required and must be a string"),
    ],
    ids=["not-json", "not-utf8", "payload-error"],
)
def test_bad_payloads_are_the_backends_refusal_relayed_as_a_model_error(runtime, body, expected):
    # SageMaker does not read payloads: the model server refuses them, and SageMaker relays its answer
    error = error_of(runtime, body=body)
    assert isinstance(error, runtime.exceptions.ModelError)
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error.response["Error"]["Message"].startswith("Received client error (400) from primary")
    # (the echo fake keeps the base class's plain refusal; the real backends frame theirs as their containers do)
    assert (error.response["OriginalStatusCode"], error.response["OriginalMessage"]) == (400, expected)


def test_the_connection_stays_usable_after_an_oversized_payload(runtime):
    # Given an oversized request was refused
    error_of(runtime, body=b"x" * (7 * 1024 * 1024))
    # When the same client calls again, then it is answered normally
    assert json.loads(call(runtime)["Body"].read())["echo"] == "hi"


def test_non_json_content_type_is_the_backends_refusal(runtime):
    error = error_of(runtime, ContentType="text/csv")
    assert isinstance(error, runtime.exceptions.ModelError)
    assert "text/csv" in error.response["OriginalMessage"]


def test_oversized_custom_attributes_are_sagemakers_validation_error(runtime):
    error = error_of(runtime, CustomAttributes="x" * 1025)
    assert isinstance(error, runtime.exceptions.ValidationError)
    assert "CustomAttributes" in error.response["Error"]["Message"]


def test_backend_failure_is_a_model_error_with_the_original_status_and_message(runtime):
    error = error_of(runtime, body=json.dumps({"text": "boom", "fail": True}))
    assert isinstance(error, runtime.exceptions.ModelError)
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error.response["OriginalStatusCode"] == 500
    assert error.response["OriginalMessage"] == "RuntimeError: cannot answer 'boom'"
    assert error.response["LogStreamArn"].endswith(":log-group:/aws/sagemaker/InferenceComponents/chat")


def test_zero_copies_gets_the_no_capacity_error(running, runtime):
    # Given the chat component scaled to zero copies
    client("sagemaker", running.url).update_inference_component_runtime_config(
        InferenceComponentName="chat", DesiredRuntimeConfig={"CopyCount": 0}
    )
    # When it is invoked, then SageMaker's no-capacity ValidationError comes back
    error = error_of(runtime)
    assert isinstance(error, runtime.exceptions.ValidationError)
    assert error.response["Error"]["Message"] == NO_CAPACITY_MESSAGE


def test_request_over_the_timeout_is_a_model_error(echo_factory):
    # Given a component with a short timeout whose backend waits longer
    config = endpoint_config(chat=component_config(timeout_s=0.3))
    with start_endpoint(config, port=0, backend_factory=echo_factory) as running:
        runtime = client("sagemaker-runtime", running.url)
        # When a request outlasts the timeout
        error = error_of(runtime, body=json.dumps({"text": "slow", "wait_for": "never"}))
        echo_factory.gates.open("never")
    # Then it is SageMaker's model-timeout ModelError
    assert isinstance(error, runtime.exceptions.ModelError)
    assert error.response["OriginalStatusCode"] == 0
    assert "timed out while waiting for a response" in error.response["OriginalMessage"]


def test_stream_failure_before_the_first_part_is_an_http_model_error(runtime):
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint_with_response_stream(
            EndpointName="local-test", InferenceComponentName="chat", Body=json.dumps({"text": "x", "fail": True})
        )
    assert isinstance(raised.value, runtime.exceptions.ModelError)
    assert raised.value.response["OriginalStatusCode"] == 500


def test_stream_failure_after_parts_is_a_model_stream_error_event(runtime):
    # Given a stream that breaks after two parts
    response = runtime.invoke_endpoint_with_response_stream(
        EndpointName="local-test",
        InferenceComponentName="chat",
        Body=json.dumps({"text": "one two three", "fail_after_parts": 2}),
    )
    received = []
    # When it is read, then the parts come first and the failure is raised as ModelStreamError
    with pytest.raises(EventStreamError) as raised:
        for event in response["Body"]:
            received.append(event["PayloadPart"]["Bytes"])
    assert received == [b"one", b"two"]
    assert raised.value.response["Error"]["Code"] == "ModelStreamError"
    assert "cannot answer" in raised.value.response["Error"]["Message"]


def test_stream_timeout_after_parts_is_a_model_stream_error_event(echo_factory):
    # Given a short timeout and a stream that stalls after its first part
    config = endpoint_config(chat=component_config(timeout_s=0.3))
    with start_endpoint(config, port=0, backend_factory=echo_factory) as running:
        runtime = client("sagemaker-runtime", running.url)
        response = runtime.invoke_endpoint_with_response_stream(
            EndpointName="local-test",
            InferenceComponentName="chat",
            Body=json.dumps({"text": "one two", "gate_after_first_part": "never"}),
        )
        events = iter(response["Body"])
        first = next(events)
        with pytest.raises(EventStreamError) as raised:
            list(events)
        echo_factory.gates.open("never")
    assert first == {"PayloadPart": {"Bytes": b"one"}}
    assert raised.value.response["Error"]["Code"] == "ModelStreamError"
    assert "timed out" in raised.value.response["Error"]["Message"]


def test_unexpected_failure_mid_stream_is_an_internal_stream_failure_event(runtime):
    # Given a backend that streams text where bytes are due
    response = runtime.invoke_endpoint_with_response_stream(
        EndpointName="local-test",
        InferenceComponentName="chat",
        Body=json.dumps({"text": "one two", "parts_as_text": True}),
    )
    # When the stream is read, then the failure arrives as InternalStreamFailure, not as a broken body
    with pytest.raises(EventStreamError) as raised:
        list(response["Body"])
    assert raised.value.response["Error"]["Code"] == "InternalStreamFailure"
    assert "TypeError" in raised.value.response["Error"]["Message"]


def test_unexpected_server_failure_is_a_json_internal_failure(runtime):
    # Given a backend answer that cannot be serialised, when it is requested
    error = error_of(runtime, body=json.dumps({"text": "x", "unserialisable": True}))
    # Then boto3 gets SageMaker's InternalFailure, not an HTML page
    assert isinstance(error, runtime.exceptions.InternalFailure)
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert "TypeError" in error.response["Error"]["Message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/nowhere"), ("POST", "/endpoints/local-test/elsewhere"), ("DELETE", "/ping")],
)
def test_unknown_routes_are_json_404(running, method, path):
    response = requests.request(method, f"{running.url}{path}", timeout=5)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["x-amzn-ErrorType"].startswith("UnknownOperationException:")
    assert path in response.json()["Message"]


def test_a_malformed_request_line_gets_json_not_html(running):
    # Given a raw connection sending garbage instead of HTTP
    with socket.create_connection((running.host, running.port), timeout=5) as connection:
        connection.sendall(b"GET /a b HTTP/1.1\r\n\r\n")
        received = b""
        for _ in range(100):  # the server closes the connection after its answer
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += chunk
        reply = received.decode("latin-1")
    # Then the answer is a JSON error
    head, _, body = reply.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.")
    assert "Content-Type: application/json" in head
    assert json.loads(body)["__type"] == "ValidationError"


def test_errors_are_counted_by_code(running, runtime):
    # Given one request SageMaker refuses and one the model fails
    error_of(runtime, CustomAttributes="x" * 1025)
    error_of(runtime, body=json.dumps({"text": "x", "fail": True}))
    # When the status is read, then both are counted under their codes
    counters = requests.get(f"{running.url}/status", timeout=5).json()["components"]["chat"]["counters"]
    assert counters["errors"] == {"ValidationError": 1, "ModelError": 1}
    assert counters["requests"] == 2


def test_chunked_request_bodies_are_read_and_limited(running):
    # Given requests whose bodies are sent with chunked transfer encoding
    url = f"{running.url}/endpoints/local-test/invocations"
    headers = {"X-Amzn-SageMaker-Inference-Component": "chat"}
    small = requests.post(url, data=iter([b'{"text":', b' "chunked"}']), headers=headers, timeout=10)
    large = requests.post(url, data=iter([b"x" * 1024 * 1024] * 7), headers=headers, timeout=10)
    # Then a small one is served and one over 6 MB is a ValidationError
    assert small.status_code == 200
    assert small.json()["echo"] == "chunked"
    assert large.status_code == 400
    assert large.headers["x-amzn-ErrorType"].startswith("ValidationError:")
    assert "7340032 bytes" in large.json()["Message"]
