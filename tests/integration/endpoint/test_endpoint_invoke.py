"""InvokeEndpoint and InvokeEndpointWithResponseStream through unmodified boto3 clients."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from endpoint_fakes import client, component_config, endpoint_config

from local.endpoint import start_endpoint

pytestmark = pytest.mark.integration


def invoke(runtime, component: str, payload: dict, **kwargs) -> dict:
    response = runtime.invoke_endpoint(
        EndpointName="local-test", InferenceComponentName=component, Body=json.dumps(payload), **kwargs
    )
    return {**response, "Body": json.loads(response["Body"].read())}


def test_invoke_answers_each_component_with_sagemaker_response_metadata(runtime):
    # When both components are invoked
    chat = invoke(runtime, "chat", {"text": "hello"}, ContentType="application/json", Accept="application/json")
    summary = invoke(runtime, "summarizer", {"text": "a long talk"})
    # Then each answers from its own backend, with SageMaker's response members
    assert chat["Body"] == {"component": "chat", "echo": "hello"}
    assert summary["Body"] == {"component": "summarizer", "echo": "a long talk"}
    assert chat["ContentType"] == "application/json"
    assert chat["InvokedProductionVariant"] == "AllTraffic"
    assert chat["ResponseMetadata"]["RequestId"] != summary["ResponseMetadata"]["RequestId"]


def test_stream_sends_each_part_as_the_backend_produces_it(runtime, echo_factory):
    # Given a request whose backend pauses after its first part until the test has seen it
    response = runtime.invoke_endpoint_with_response_stream(
        EndpointName="local-test",
        InferenceComponentName="chat",
        Body=json.dumps({"text": "one two three", "gate_after_first_part": "first-seen", "content_type": "text/plain"}),
    )
    events = iter(response["Body"])
    # When the first event is read, then the pause is lifted
    first = next(events)
    echo_factory.gates.open("first-seen")
    rest = list(events)
    # Then the first part arrived before the backend went on, and all parts came as PayloadPart events
    assert echo_factory.gates.timed_out == []
    assert [first, *rest] == [{"PayloadPart": {"Bytes": word}} for word in (b"one", b"two", b"three")]
    # And the stream is typed as the backend typed the answer
    assert response["ContentType"] == "text/plain"
    assert response["InvokedProductionVariant"] == "AllTraffic"


def test_fifty_concurrent_callers_each_get_their_own_answer(echo_factory):
    # Given two copies that batch up to 8 requests within 20 ms
    config = endpoint_config(chat=component_config(copies=2, max_batch_size=8, max_batch_wait_ms=20))
    with start_endpoint(config, port=0, backend_factory=echo_factory) as running:
        runtime = client("sagemaker-runtime", running.url)

        # When 50 threads call at once, half of them streaming
        def call(index: int) -> str:
            text = f"request {index}"
            if index % 2:
                response = runtime.invoke_endpoint_with_response_stream(
                    EndpointName="local-test", InferenceComponentName="chat", Body=json.dumps({"text": text})
                )
                return " ".join(event["PayloadPart"]["Bytes"].decode() for event in response["Body"])
            return invoke(runtime, "chat", {"text": text})["Body"]["echo"]

        with ThreadPoolExecutor(max_workers=50) as pool:
            answers = list(pool.map(call, range(50)))
        status = running.endpoint.status()["components"]["chat"]
    # Then every caller got exactly its own answer, and some requests shared a batch
    assert answers == [f"request {index}" for index in range(50)]
    assert status["counters"]["requests"] == 50
    assert sum(sum(backend.batch_sizes) for backend in echo_factory.backends) == 50
    assert status["counters"]["batches"] < 50


def test_copy_count_changes_under_load_lose_no_request(echo_factory):
    # Given two copies serving a steady stream of requests
    config = endpoint_config(chat=component_config(copies=2, max_batch_size=4, max_batch_wait_ms=2))
    with start_endpoint(config, port=0, backend_factory=echo_factory) as running:
        runtime = client("sagemaker-runtime", running.url)
        control = client("sagemaker", running.url)
        stop_load = threading.Event()

        def caller(worker: int) -> list[tuple[str, str]]:
            results = []
            for index in range(200):  # bounded; stopped early once the scaling is done
                if stop_load.is_set() and index >= 5:
                    break
                text = f"w{worker} r{index}"
                results.append((text, invoke(runtime, "chat", {"text": text})["Body"]["echo"]))
            return results

        # When copies are scaled 2 -> 4 -> 1 while eight callers keep sending
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [pool.submit(caller, worker) for worker in range(8)]
            for copies in (4, 1):
                control.update_inference_component_runtime_config(
                    InferenceComponentName="chat", DesiredRuntimeConfig={"CopyCount": copies}
                )
            stop_load.set()
            results = [pair for future in futures for pair in future.result()]
        status = running.endpoint.status()["components"]["chat"]
    # Then every request got its own answer, three copies were retired after draining, one remains
    assert results and all(sent == answered for sent, answered in results)
    assert len(echo_factory.backends) == 4
    assert sum(backend.closed for backend in echo_factory.backends) == 4  # the endpoint has stopped since
    assert not any(backend.ran_after_close for backend in echo_factory.backends)
    assert status["current_copies"] == 1
    assert status["counters"]["requests"] == len(results)
    assert status["counters"]["errors"] == {}


def test_ping_and_status_describe_the_endpoint(running, runtime):
    # Given one answered request
    invoke(runtime, "chat", {"text": "hi"})
    # When /ping and /status are read
    ping = requests.get(f"{running.url}/ping", timeout=5)
    status = requests.get(f"{running.url}/status", timeout=5).json()
    # Then the endpoint is healthy and the status lists components, copies, placement and counters
    assert ping.status_code == 200
    assert ping.json() == {"status": "Healthy"}
    chat = status["components"]["chat"]
    assert chat["backend_label"] == "echo fake for chat"
    assert chat["copies"] == [
        {"copy_id": 1, "instance_id": "instance-0", "state": "serving", "outstanding": 0, "queue_depth": 0}
    ]
    assert chat["counters"] == {"requests": 1, "errors": {}, "batches": 1, "mean_batch_size": 1.0}
    assert status["instances"][0]["copies"] == ["chat/1", "summarizer/1"]
    assert status["endpoint"]["routing_strategy"] == "LEAST_OUTSTANDING_REQUESTS"


def test_ping_is_unhealthy_while_a_copy_is_still_loading(running, control, echo_factory):
    # Given the summarizer scaled to zero, and backend loading that waits until the test allows it
    control.update_inference_component_runtime_config(
        InferenceComponentName="summarizer", DesiredRuntimeConfig={"CopyCount": 0}
    )
    echo_factory.loading.clear()
    echo_factory.loading_gate = "loaded"
    # When it is scaled back to one copy in the background
    scaler = threading.Thread(
        target=control.update_inference_component_runtime_config,
        kwargs={"InferenceComponentName": "summarizer", "DesiredRuntimeConfig": {"CopyCount": 1}},
    )
    scaler.start()
    assert echo_factory.loading.wait(10)
    while_loading = requests.get(f"{running.url}/ping", timeout=5)
    status_while_loading = control.describe_inference_component(InferenceComponentName="summarizer")
    echo_factory.gates.open("loaded")
    scaler.join(10)
    after = requests.get(f"{running.url}/ping", timeout=5)
    # Then /ping answers 503 and the component is Updating until the copy is loaded; 200 after
    assert while_loading.status_code == 503
    assert while_loading.json() == {"status": "Unhealthy"}
    assert status_while_loading["InferenceComponentStatus"] == "Updating"
    assert after.status_code == 200
