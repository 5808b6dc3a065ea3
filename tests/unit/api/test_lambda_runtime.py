"""The local Lambda runtime: one process per execution environment, each with its own function's environment,
one invocation at a time, scaled out up to the function's concurrency, killed when it outlives its timeout."""

from __future__ import annotations

import logging
import os
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from local.lambda_runtime import FunctionDefinition, FunctionRuntime, InvocationError, LambdaRuntime
from local.template import Template

TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage: {Type: String, Default: test}
Globals:
  Function:
    Timeout: 5
    MemorySize: 256
    Environment:
      Variables:
        SHARED: !Sub shared-${Stage}
Resources:
  FastFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: code/
      Handler: handler.main
      Environment:
        Variables:
          MODEL_TIMEOUT_S: "24"
  BatchFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: code/
      Handler: handler.main
      ReservedConcurrentExecutions: 2
      Timeout: 1
      Environment:
        Variables:
          MODEL_TIMEOUT_S: "120"
  BrokenFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: code/
      Handler: broken.main
"""

HANDLER = """
import os
import time

IMPORTED_AT = time.time()  # module level runs once per environment (the cold start)


def main(event, context):
    if event.get("raise"):
        raise ValueError("bad input")
    time.sleep(event.get("sleep_s", 0))
    return {
        "pid": os.getpid(),
        "imported_at": IMPORTED_AT,
        "shared": os.environ.get("SHARED"),
        "model_timeout_s": os.environ.get("MODEL_TIMEOUT_S"),
        "platform": os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"),
        "function_name": context.function_name,
        "memory_mb": context.memory_limit_in_mb,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
"""


@pytest.fixture
def template(tmp_path) -> Template:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "handler.py").write_text(textwrap.dedent(HANDLER))
    (tmp_path / "code" / "broken.py").write_text("import not_a_module_anywhere\n")
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE)
    return Template(path)


@pytest.fixture
def runtime(template):
    with LambdaRuntime(template, {"AWS_ENDPOINT_URL_DYNAMODB": "http://moto.local:5000"}) as running:
        yield running


def test_each_function_runs_with_its_own_template_environment(runtime):
    # When both functions are invoked
    fast = runtime.invoke("FastFunction", {}).response
    batch = runtime.invoke("BatchFunction", {}).response

    # Then each saw Globals plus its own variables (never the other's), the platform variables, and its context
    assert (fast["shared"], fast["model_timeout_s"]) == ("shared-test", "24")
    assert (batch["shared"], batch["model_timeout_s"]) == ("shared-test", "120")
    assert fast["platform"] == batch["platform"] == "http://moto.local:5000"
    assert (fast["function_name"], fast["memory_mb"]) == ("FastFunction", 256)
    assert 0 < batch["remaining_ms"] <= 1000
    # And in processes of their own, with nothing leaking into this one
    assert len({fast["pid"], batch["pid"], os.getpid()}) == 3
    assert "MODEL_TIMEOUT_S" not in os.environ or os.environ["MODEL_TIMEOUT_S"] not in {"24", "120"}


def test_a_warm_environment_is_reused_and_only_the_first_invocation_is_a_cold_start(runtime, caplog):
    # When one function is invoked three times, one after the other
    with caplog.at_level(logging.INFO, logger="local.lambda_runtime"):
        results = [runtime.invoke("FastFunction", {}) for _ in range(3)]

    # Then one environment served them all: imported once, one cold start logged and reported
    assert len({result.response["pid"] for result in results}) == 1
    assert len({result.response["imported_at"] for result in results}) == 1
    assert [result.cold_start_ms is not None for result in results] == [True, False, False]
    assert [record.message for record in caplog.records if "cold start" in record.message] != []
    assert all(result.handler_ms >= 0 for result in results)


def test_concurrent_invocations_scale_out_but_never_past_reserved_concurrency(runtime):
    # When six invocations of a function with ReservedConcurrentExecutions 2 arrive at once
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: runtime.invoke("BatchFunction", {"sleep_s": 0.3}), range(6)))

    # Then exactly two environments served them, each one request at a time
    assert len({result.response["pid"] for result in results}) == 2
    assert runtime.function("BatchFunction").environments == 2


def test_one_environment_serves_one_request_at_a_time(template):
    # Given a function limited to one environment
    definition = FunctionDefinition.from_template(template, "FastFunction")
    runtime = FunctionRuntime(definition, default_concurrency=1)
    try:
        # When two slow invocations arrive together
        started = time.perf_counter()
        threads = [threading.Thread(target=runtime.invoke, args=({"sleep_s": 0.4},)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
    finally:
        runtime.stop()
    # Then the second waited for the first
    assert elapsed >= 0.8


def test_a_handler_error_comes_back_as_lambdas_error_payload_and_the_environment_stays_warm(runtime):
    first = runtime.invoke("FastFunction", {}).response["pid"]
    with pytest.raises(InvocationError) as raised:
        runtime.invoke("FastFunction", {"raise": True})
    assert (raised.value.error_type, raised.value.error_message) == ("ValueError", "bad input")
    assert any("bad input" in line for line in raised.value.stack_trace)
    assert runtime.invoke("FastFunction", {}).response["pid"] == first


def test_an_invocation_past_the_timeout_kills_its_environment(runtime):
    # Given a warm environment of a function with a 1 s timeout
    first = runtime.invoke("BatchFunction", {}).response["pid"]

    # When an invocation runs longer than that
    with pytest.raises(InvocationError) as raised:
        runtime.invoke("BatchFunction", {"sleep_s": 3})

    # Then it fails as Lambda's timeout does, and the next invocation gets a fresh environment
    assert raised.value.error_type == "Sandbox.Timedout"
    assert runtime.invoke("BatchFunction", {}).response["pid"] != first


def test_a_handler_that_cannot_be_imported_fails_its_init(runtime):
    with pytest.raises(InvocationError) as raised:
        runtime.invoke("BrokenFunction", {})
    assert raised.value.error_type == "ModuleNotFoundError"
    assert runtime.function("BrokenFunction").environments == 0


def test_provisioned_environments_are_started_ahead_and_found_warm(runtime):
    # Given two environments provisioned ahead of any invocation
    function = runtime.function("BatchFunction")
    function.provision(5)  # more than ReservedConcurrentExecutions: capped at 2
    assert function.environments == 2

    # When two invocations arrive together
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: function.invoke({"sleep_s": 0.2}), range(2)))

    # Then neither was a cold start
    assert [result.cold_start_ms for result in results] == [None, None]
