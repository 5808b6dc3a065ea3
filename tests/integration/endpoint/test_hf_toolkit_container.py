"""The summarizer served by the Hugging Face inference container (`local.containers.huggingface`, in
`.venv-hf`: the real toolkit handler with the image's transformers) behind the local endpoint, called with
boto3 as the Lambdas call it: endpoint → container backend → container process → toolkit.

The error bodies are the bytes MMS's frontend answered for the same requests (MMS 1.1.11 run once with Java,
same packages); local.containers.huggingface's docstring cites the source they follow. SageMaker relays a
container's error as a ModelError carrying its status and body (OriginalStatusCode, OriginalMessage).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from local.backends.smoke import make_smoke_seq2seq
from local.endpoint.server import RunningEndpoint, start_endpoint
from provisioning.config import load_config

pytestmark = pytest.mark.integration

CALL = "Agent: Thanks for calling, how can I help?\nCustomer: My invoice for March charged me twice."


def _mms_error(message: str) -> str:
    return (
        json.dumps({"code": 400, "type": "InternalServerException", "message": "MESSAGE"}, indent=2).replace(
            "MESSAGE", message
        )
        + "\n"
    )


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEndpoint]:
    # Given the shipped configuration with the summarizer switched to the toolkit on a smoke BART
    model_dir = make_smoke_seq2seq(tmp_path_factory.mktemp("smoke-bart"))
    backend = {"CHATBOT_LOCAL_SUMMARIZER_BACKEND": "hf-toolkit", "CHATBOT_LOCAL_SUMMARIZER_CHECKPOINT": str(model_dir)}
    config = load_config(environ=backend)
    with start_endpoint(config, port=0) as running:
        yield running


@pytest.fixture(scope="module")
def invoke(endpoint: RunningEndpoint):
    client = boto3.client(
        "sagemaker-runtime",
        endpoint_url=endpoint.url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"total_max_attempts": 1}, read_timeout=60),
    )

    def call(body: str) -> Any:
        response = client.invoke_endpoint(
            EndpointName=endpoint.endpoint.name,
            InferenceComponentName="summarizer",
            ContentType="application/json",
            Accept="application/json",
            Body=body,
        )
        assert response["ContentType"] == "application/json"
        return json.loads(response["Body"].read())

    return call


def test_the_endpoint_status_names_the_toolkit_container(endpoint: RunningEndpoint):
    label = endpoint.endpoint.status()["components"]["summarizer"]["backend_label"]
    assert label.startswith("hf-toolkit: transformers 4.51.3") and "container pid" in label


def test_one_input_gets_one_summary(invoke):
    # When the summarizer contract's request is invoked
    answer = invoke(json.dumps({"inputs": CALL, "parameters": {"max_length": 20}}))
    # Then the toolkit answers a list with one summary
    [summary] = answer
    assert list(summary) == ["summary_text"] and isinstance(summary["summary_text"], str)


def test_a_list_of_inputs_gets_one_summary_each(invoke):
    answer = invoke(json.dumps({"inputs": [CALL, "Customer: hello?", "Agent: bye."], "parameters": {"max_length": 20}}))
    assert len(answer) == 3 and all(isinstance(summary["summary_text"], str) for summary in answer)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # longer than BART's 1024 positions: the toolkit does not truncate, the embedding lookup fails
        (json.dumps({"inputs": CALL * 100, "parameters": {"max_length": 20}}), "index out of range in self"),
        ('{"inputs": "Customer: hello?"', "Expecting \\u0027,\\u0027 delimiter: line 1 column 30 (char 29)"),
        ('"Customer: hello?"', "\\u0027str\\u0027 object has no attribute \\u0027pop\\u0027"),
    ],
    ids=["over-long input", "truncated JSON", "not an object"],
)
def test_bad_requests_come_back_as_model_errors_with_the_toolkits_400(invoke, body: str, message: str):
    # When a request the toolkit refuses is invoked
    with pytest.raises(ClientError) as raised:
        invoke(body)
    # Then SageMaker's ModelError carries the container's status and MMS's error body, byte for byte
    error = raised.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert (error["OriginalStatusCode"], error["OriginalMessage"]) == (400, _mms_error(message))
