"""The local stack for API tests: moto server, the local endpoint (standin chat, extractive summarizer,
with a switch to make the chat fail on demand) and the local gateway, all on loopback free ports."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import boto3
import pytest

from local.aws import create_table_from_template, moto_client, patched_environ, start_moto
from local.backends import create_backend
from local.backends.base import Backend
from local.endpoint.server import start_endpoint
from local.gateway import start_gateway
from local.s3_pipeline import create_pipeline_resources, start_poller
from local.stack import endpoint_parameters
from local.template import Template
from provisioning.config import load_config

FAIL_MARKER = "[model-fails-once]"
MID_STREAM_FAIL_MARKER = "[model-fails-mid-stream]"  # two parts, then the model breaks
SLOW_STREAM_MARKER = "[slow-stream]"  # each streamed part 0.2 s after the previous one
SLOW_PART_S = 0.2


class FailsOnceOnMarker(Backend):
    """Wraps a real chat backend; the first request containing FAIL_MARKER fails like a broken model."""

    def __init__(self, inner: Backend):
        self.inner = inner
        self.label = inner.label
        self.content_type = inner.content_type
        self._failed: set[str] = set()
        self._lock = threading.Lock()

    def prepare(self, payload: Any) -> Any:
        text = json.dumps(payload)
        with self._lock:
            fail = FAIL_MARKER in text and text not in self._failed
            if fail:
                self._failed.add(text)
        return fail, self.inner.prepare(payload)

    def run_batch(self, prepared: list[Any], sinks: list) -> list[Any]:
        passing = [index for index, (fail, _) in enumerate(prepared) if not fail]
        results: list[Any] = [RuntimeError("injected model failure")] * len(prepared)
        if passing:
            answers = self.inner.run_batch([prepared[i][1] for i in passing], [sinks[i] for i in passing])
            for index, answer in zip(passing, answers, strict=True):
                results[index] = answer
        return results

    def close(self) -> None:
        self.inner.close()


class StreamFaultsOnMarker(Backend):
    """Wraps a real chat backend; a request naming a stream marker has its streamed parts broken or slowed."""

    def __init__(self, inner: Backend):
        self.inner = inner
        self.label = inner.label
        self.content_type = inner.content_type

    def prepare(self, payload: Any) -> Any:
        text = json.dumps(payload)
        mode = "fail" if MID_STREAM_FAIL_MARKER in text else "slow" if SLOW_STREAM_MARKER in text else None
        return mode, self.inner.prepare(payload)

    def run_batch(self, prepared: list[Any], sinks: list) -> list[Any]:
        wrapped = [
            self._sink(mode, sink) if sink is not None else sink
            for (mode, _), sink in zip(prepared, sinks, strict=True)
        ]
        return self.inner.run_batch([item for _, item in prepared], wrapped)

    @staticmethod
    def _sink(mode: str | None, sink):
        sent = 0

        def forward(part: bytes, content_type: str | None = None) -> None:
            nonlocal sent
            if mode == "fail" and sent == 2:
                raise RuntimeError("injected failure mid-stream")
            if mode == "slow" and sent:
                time.sleep(SLOW_PART_S)
            sent += 1
            sink(part, content_type)

        return forward

    def close(self) -> None:
        self.inner.close()


def backend_factory(component_name, component):
    backend = create_backend(component_name, component)
    return StreamFaultsOnMarker(FailsOnceOnMarker(backend)) if component_name == "chat" else backend


@pytest.fixture(scope="module")
def local_stack():
    """Gateway URL, endpoint URL and endpoint name for one test module, with the summary requests queue and its
    worker (long summaries); everything is stopped when the module is done."""
    moto = start_moto(port=0)
    config = load_config()
    template = Template(parameters=endpoint_parameters(config))
    endpoint = start_endpoint(config, port=0, backend_factory=backend_factory)
    try:
        dynamodb = moto_client(moto.url, "dynamodb")
        create_table_from_template(template, dynamodb)
        environment = {**moto.environment(), "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": endpoint.url}
        with patched_environ(environment):  # the queues' and the poller's clients reach moto
            session = boto3.session.Session()
            create_pipeline_resources(template, session)
            summaries = start_poller(
                template, session, function_id="SummarizeConversationFunction", environment=environment
            )
        gateway = start_gateway(port=0, environment=environment, parameters=endpoint_parameters(config))
        try:
            yield {"url": gateway.url, "endpoint_url": endpoint.url, "endpoint_name": config.endpoint.name}
        finally:
            gateway.stop()
            summaries.stop()
    finally:
        endpoint.stop()
        moto.stop()


@pytest.fixture
def api(local_stack):
    return local_stack["url"]


@pytest.fixture(autouse=True)
def aws_env():
    """Overrides the unit-test guard: here the running gateway owns the AWS variables of this process
    (it points boto3 at moto and the local endpoint, as Lambda's environment would)."""
