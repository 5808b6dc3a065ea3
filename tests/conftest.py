"""Fixtures shared by every test: no real AWS ever, a Lambda context, and the template's table in moto."""

from __future__ import annotations

import importlib.util
import io
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws

from local.aws import create_table_from_template
from local.lambda_runtime import FunctionDefinition
from local.template import Template

# Powertools reads these when its objects are created at import time, before any fixture runs.
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "GenAIChatbotTest")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "genai-chatbot-test")

_LOCAL_ENDPOINT_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_DYNAMODB_STREAMS",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_ENDPOINT_URL_SSM",
    "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME",
    "AWS_PROFILE",
)


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials and region, no endpoint overrides: a test that forgets moto cannot reach AWS."""
    for name in _LOCAL_ENDPOINT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SECURITY_TOKEN", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "GenAIChatbotTest")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "genai-chatbot-test")


@dataclass
class FakeLambdaContext:
    function_name: str = "genai-chatbot-test"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:genai-chatbot-test"
    aws_request_id: str = ""
    log_group_name: str = "/aws/lambda/genai-chatbot-test"
    log_stream_name: str = "local"
    remaining_ms: int = 28_000

    def __post_init__(self) -> None:
        self.aws_request_id = self.aws_request_id or str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture(scope="session")
def template() -> Template:
    return Template()


@pytest.fixture
def moto_table(template: Template) -> Iterator[str]:
    """The template's DynamoDB table (keys, GSI, TTL) in in-process moto; yields its name."""
    with mock_aws():
        yield create_table_from_template(template, boto3.client("dynamodb", region_name="us-east-1"))


@pytest.fixture
def load_handler(template: Template, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], ModuleType]:
    """Imports a function's handler module into this test's process as Lambda would: with the function's own
    template environment (Globals + its Environment, resolved; the table and bucket names are the ones the
    moto fixtures create), from its CodeUri and Handler. A fresh module object per call."""

    def load(logical_id: str) -> ModuleType:
        definition = FunctionDefinition.from_template(template, logical_id)
        for name, value in definition.environment.items():
            if not name.startswith("POWERTOOLS_"):  # the suite's own service name and namespace stay
                monkeypatch.setenv(name, value)
        module_name = definition.handler.rsplit(".", 1)[0]
        file = definition.code_dir / (module_name.replace(".", "/") + ".py")
        spec = importlib.util.spec_from_file_location(f"{logical_id}_{uuid.uuid4().hex[:8]}", file)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


class _RawEventStream:
    """What botocore reads an event stream from (urllib3's response), over fixed bytes."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)

    def stream(self, amt: int = 1024, decode_content: bool | None = None) -> Iterator[bytes]:
        while chunk := self._data.read(amt):
            yield chunk

    def close(self) -> None:
        self._data.close()


@pytest.fixture
def stream_answers() -> Callable[..., list]:
    """`stream_answers(client, [event bytes...], ...)`: each InvokeEndpointWithResponseStream of the sagemaker-runtime
    `client` answers the next list of event-stream messages (local.endpoint.eventstream frames them), parsed by
    botocore's own event-stream parser. Returns the requests sent."""

    def install(client, *answers: list[bytes]) -> list:
        queued, requests = list(answers), []

        def answer(request, **_):
            requests.append(request)
            headers = {"Content-Type": "application/vnd.amazon.eventstream"}
            return AWSResponse(request.url, 200, headers, _RawEventStream(b"".join(queued.pop(0))))

        client.meta.events.register("before-send.sagemaker-runtime.InvokeEndpointWithResponseStream", answer)
        return requests

    return install
