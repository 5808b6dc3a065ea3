"""The whole local stack with the production serving code behind both components: the chat component in the
LMI container's stack (djl-serving's vLLM async service over vLLM, `.venv-vllm`) and the summarizer in the
Hugging Face inference toolkit (`.venv-hf`), each in its own process, on smoke checkpoints.

It checks what the app relies on: chat turns and summaries through the REST API, a transcript dropped in S3
summarized by the batch job, the runtime client's reading of every chat form and of the engine's refusal of an
over-long prompt, and that the stand-in and the extractive summarizer (the instant defaults) answer, refuse and type
their streams as the containers do.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from chatbot.inference import InferenceClient, InputTooLongError

from local.backends import create_backend
from local.backends.smoke import VLLM_CPU_HEAD_DIM, make_smoke_causal_lm, make_smoke_seq2seq
from local.containers.huggingface import mms_error_body
from local.containers.lmi import gson
from local.endpoint.server import RunningEndpoint, start_endpoint
from local.stack import LocalStack, Ports
from provisioning.config import load_config

pytestmark = pytest.mark.integration

AUTH = {"Authorization": "Bearer local-engines"}
SMOKE_CONTEXT_TOKENS = 1024  # the smoke Llama's position embeddings
WAIT_S = 120
TRANSCRIPT = "Agent: Thanks for calling, how can I help?\nCustomer: My March invoice charged me twice.\n"


@pytest.fixture(autouse=True)
def aws_env() -> None:
    """Replaces the suite's per-test environment reset: this module's stack owns the AWS variables."""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    # Given the shipped configuration switched to the real engines, as the README shows
    models = tmp_path_factory.mktemp("models")
    environ = {
        "CHATBOT_LOCAL_CHAT_BACKEND": "vllm",
        "CHATBOT_LOCAL_CHAT_CHECKPOINT": str(make_smoke_causal_lm(models / "llama", head_dim=VLLM_CPU_HEAD_DIM)),
        "CHATBOT_LOCAL_CHAT_CONTEXT_TOKENS": str(SMOKE_CONTEXT_TOKENS),
        "CHATBOT_LOCAL_SUMMARIZER_BACKEND": "hf-toolkit",
        "CHATBOT_LOCAL_SUMMARIZER_CHECKPOINT": str(make_smoke_seq2seq(models / "bart")),
    }
    with LocalStack(config=load_config(environ=environ), ports=Ports.ephemeral(), with_ui=False) as running:
        yield running


@pytest.fixture(scope="module")
def runtime(stack: LocalStack) -> Any:
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=stack.urls["endpoint"],
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"total_max_attempts": 1}, read_timeout=120),
    )


@pytest.fixture(scope="module")
def defaults() -> Iterator[tuple[RunningEndpoint, Any]]:
    """The shipped configuration's in-process backends (stand-in chat, extractive summarizer) on their own endpoint."""
    with start_endpoint(load_config(environ={}), port=0) as running:
        yield (
            running,
            boto3.client(
                "sagemaker-runtime",
                endpoint_url=running.url,
                region_name="us-east-1",
                aws_access_key_id="local",
                aws_secret_access_key="local",
                config=Config(retries={"total_max_attempts": 1}, read_timeout=60),
            ),
        )


def invoke(stack: LocalStack, runtime: Any, component: str, payload: dict) -> Any:
    response = runtime.invoke_endpoint(
        EndpointName=stack.config.endpoint.name,
        InferenceComponentName=component,
        ContentType="application/json",
        Body=json.dumps(payload),
    )
    return json.loads(response["Body"].read())


def invoke_raw(stack: LocalStack, runtime: Any, payload: dict) -> bytes:
    response = runtime.invoke_endpoint(
        EndpointName=stack.config.endpoint.name,
        InferenceComponentName="chat",
        ContentType="application/json",
        Body=json.dumps(payload),
    )
    return response["Body"].read()


def stream(stack: LocalStack, runtime: Any, payload: dict) -> list[bytes]:
    response = runtime.invoke_endpoint_with_response_stream(
        EndpointName=stack.config.endpoint.name,
        InferenceComponentName="chat",
        ContentType="application/json",
        Body=json.dumps(payload),
    )
    return [event["PayloadPart"]["Bytes"] for event in response["Body"] if "PayloadPart" in event]


def shape(value: Any) -> Any:
    """The JSON structure without its values: keys and types, lists by their first item."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return "number" if isinstance(value, int | float) and not isinstance(value, bool) else type(value).__name__


def missing_from(real: Any, imitation: Any, path: str = "$") -> list[str]:
    """Where the imitation's structure is not in the real one: fields the real answer lacks or types it differs in.
    The real answer may carry more (vLLM adds fields release by release); a client of the imitation then still
    finds everything it read."""
    if isinstance(imitation, dict) and isinstance(real, dict):
        return [
            problem
            for key, item in imitation.items()
            for problem in ([f"{path}.{key}: not in the real answer"] if key not in real else [])
            or missing_from(real[key], item, f"{path}.{key}")
        ]
    if isinstance(imitation, list) and isinstance(real, list):
        return missing_from(real[0], imitation[0], f"{path}[0]") if imitation and real else []
    return [] if imitation == real or real == "NoneType" else [f"{path}: {imitation} where the real one has {real}"]


def streamed_lines(parts: list[bytes]) -> list[Any]:
    return [json.loads(line) for line in b"".join(parts).decode().splitlines() if line.strip()]


CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "My order arrived broken."}]
FORMS = {
    "seed chat": {"chat": CHAT, "parameters": {"max_new_tokens": 8}},
    "lmi inputs": {"inputs": "Where is my parcel?", "parameters": {"max_new_tokens": 8}},
    "openai messages": {"messages": CHAT, "max_tokens": 8, "temperature": 0},
}


def test_the_endpoint_serves_both_components_from_their_containers(stack: LocalStack):
    components = requests.get(f"{stack.urls['endpoint']}/status", timeout=10).json()["components"]
    assert components["chat"]["backend_label"].startswith("vllm: LMI 0.35.0")
    assert components["summarizer"]["backend_label"].startswith("hf-toolkit: transformers 4.51.3")


def test_the_seed_chat_form_comes_back_as_one_assistant_message(stack: LocalStack, runtime: Any):
    # When the seed's contract is invoked on the LMI container with the chat package
    answer = invoke(stack, runtime, "chat", FORMS["seed chat"])
    # Then it is the seed's answer shape (on the real 0.35.0 post-processing the package used to fail with 424)
    assert set(answer) == {"role", "content"} and answer["role"] == "assistant"
    assert isinstance(answer["content"], str)


@pytest.mark.parametrize("streamed", [False, True], ids=["buffered", "response stream"])
@pytest.mark.parametrize("form", sorted(FORMS))
def test_the_standin_answers_in_the_containers_shapes(stack: LocalStack, runtime: Any, form: str, streamed: bool):
    # Given the instant default backend, which imitates the container so that no weights are needed
    standin = create_backend("chat", load_config(environ={}).components["chat"])
    # When both answer the same request, through InvokeEndpoint or InvokeEndpointWithResponseStream
    if streamed:
        real = streamed_lines(stream(stack, runtime, FORMS[form]))
        parts: list[bytes] = []
        [returned] = standin.run_batch([standin.prepare(FORMS[form])], [parts.append])
        imitation = streamed_lines(parts) if parts else [returned]
    else:
        real = [invoke(stack, runtime, "chat", FORMS[form])]
        imitation = standin.run_batch([standin.prepare(FORMS[form])], [None])
    # Then the stand-in frames its answer as the container does, with no field or type the real one lacks
    assert len(imitation) == len(real) if len(real) == 1 else len(imitation) > 1
    problems = [problem for line in imitation for problem in missing_from(shape(real[-1]), shape(line))]
    assert problems == []


@pytest.mark.parametrize("streamed", [False, True], ids=["buffered", "response stream"])
def test_the_standin_streams_openai_chunks_as_the_container_does(stack: LocalStack, runtime: Any, streamed: bool):
    # Given a chat completion that asks to stream, sent through either API (LMI streams it on both)
    payload = {**FORMS["openai messages"], "stream": True}
    standin = create_backend("chat", load_config(environ={}).components["chat"])
    if streamed:
        real = streamed_lines(stream(stack, runtime, payload))
        parts: list[bytes] = []
        standin.run_batch([standin.prepare(payload)], [parts.append])
        imitation = streamed_lines(parts)
    else:
        real = streamed_lines([invoke_raw(stack, runtime, payload)])
        [response] = standin.run_batch([standin.prepare(payload)], [None])
        imitation = streamed_lines([response.body])
    # Then both are chunk lines; the stand-in's opening, middle and closing chunks have nothing the real ones lack
    assert {line["object"] for line in imitation} == {line["object"] for line in real} == {"chat.completion.chunk"}
    pairs = [(real[0], imitation[0]), (real[-1], imitation[-1])] + [(real[1], line) for line in imitation[1:-1]]
    assert [problem for truth, line in pairs for problem in missing_from(shape(truth), shape(line))] == []
    assert imitation[-1]["choices"][0]["finish_reason"] in {"stop", "length"}


def model_error(runtime: Any, endpoint_name: str, component: str, body: bytes) -> dict:
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint(
            EndpointName=endpoint_name, InferenceComponentName=component, ContentType="application/json", Body=body
        )
    return raised.value.response


REFUSED = {
    "assistant last": ("chat", {"chat": [*CHAT, {"role": "assistant", "content": "Sorry."}]}),
    "unknown parameter": ("chat", {"chat": CHAT, "parameters": {"max_new_tokens": 8, "beams": 2}}),
    "stream in the seed form": ("chat", {"chat": CHAT, "parameters": {"max_new_tokens": 8}, "stream": True}),
    "not json": ("chat", "not json"),
    "sampling out of range": ("chat", {**FORMS["openai messages"], "temperature": -1}),
    "summary without inputs": ("summarizer", {"parameters": {"max_length": 20}}),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_the_defaults_refuse_as_the_containers_do(stack: LocalStack, runtime: Any, defaults: Any, case: str):
    # Given a request the component refuses, sent to the containers and to the in-process defaults
    component, payload = REFUSED[case]
    body = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
    real = model_error(runtime, stack.config.endpoint.name, component, body)
    running, default_runtime = defaults
    imitation = model_error(default_runtime, running.endpoint.name, component, body)
    # Then both are SageMaker's ModelError relaying the same status, in the same body shape and framing
    for error in (real, imitation):
        assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == ("ModelError", 424)
    assert imitation["OriginalStatusCode"] == real["OriginalStatusCode"]
    real_body, imitated_body = json.loads(real["OriginalMessage"]), json.loads(imitation["OriginalMessage"])
    assert shape(imitated_body) == shape(real_body)
    if component == "chat":  # LMI: compact Gson; the chat package's refusals keep LMI's prefix, vLLM's do not
        assert [gson(body).decode() for body in (real_body, imitated_body)] == [
            real["OriginalMessage"],
            imitation["OriginalMessage"],
        ]
        prefix = "Input parsing failed: "
        assert imitated_body["error"].startswith(prefix) == real_body["error"].startswith(prefix)
    else:  # MMS: pretty-printed Gson with a closing newline
        assert [mms_error_body(body["code"], body["message"]).decode() for body in (real_body, imitated_body)] == [
            real["OriginalMessage"],
            imitation["OriginalMessage"],
        ]


@pytest.mark.parametrize("form", [*sorted(FORMS), "openai messages streamed", "summary"])
def test_the_defaults_type_their_streams_as_the_containers_do(stack: LocalStack, runtime: Any, defaults: Any, form):
    # Given a request sent through InvokeEndpointWithResponseStream to the containers and to the defaults
    component, payload = "chat", FORMS.get(form)
    if form == "openai messages streamed":
        payload = {**FORMS["openai messages"], "stream": True}
    elif form == "summary":
        component, payload = "summarizer", {"inputs": TRANSCRIPT, "parameters": {"max_length": 20}}
    running, default_runtime = defaults

    def stream_type(client: Any, endpoint_name: str) -> str:
        response = client.invoke_endpoint_with_response_stream(
            EndpointName=endpoint_name,
            InferenceComponentName=component,
            ContentType="application/json",  # the toolkit refuses a request without one
            Body=json.dumps(payload),
        )
        assert [event for event in response["Body"] if "PayloadPart" not in event] == []
        return response["ContentType"]

    # Then the stream is typed the same (one piece: application/json; chunks: application/jsonlines)
    real = stream_type(runtime, stack.config.endpoint.name)
    assert stream_type(default_runtime, running.endpoint.name) == real
    assert real == ("application/jsonlines" if form == "openai messages streamed" else "application/json")


def test_the_runtime_client_reads_every_answer_and_knows_an_over_long_prompt(stack: LocalStack, runtime: Any):
    client = InferenceClient(stack.config.endpoint.name, "chat", "summarizer", runtime, timeout_s=120)
    # When the Lambdas' client chats, then it gets text back
    assert isinstance(client.chat(CHAT, max_new_tokens=8), str)
    # And a prompt longer than the model's window is the engine's 400, read as "input too long" (the API's 413)
    with pytest.raises(InputTooLongError):
        client.chat([{"role": "user", "content": "refund " * 2 * SMOKE_CONTEXT_TOKENS}], max_new_tokens=8)


def test_a_streamed_answer_arrives_as_openai_chunks(stack: LocalStack, runtime: Any):
    # When a chat completion is streamed
    chunks = streamed_lines(stream(stack, runtime, {**FORMS["openai messages"], "stream": True}))
    # Then it is LMI's jsonlines: one chat.completion.chunk per line, the last one saying why it ended
    assert len(chunks) > 1 and {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert chunks[-1]["choices"][0]["finish_reason"] in {"stop", "length"}


def test_a_conversation_turn_and_its_summary_go_through_both_engines(stack: LocalStack):
    api = stack.urls["api"]
    # Given a conversation
    created = requests.post(f"{api}/v1/conversations", json={"title": "Refund"}, headers=AUTH, timeout=30)
    assert created.status_code == 201, created.text
    conversation = created.json()["id"]
    # When a message is sent, then the chat model's answer is stored with it
    sent = requests.post(
        f"{api}/v1/conversations/{conversation}/messages",
        json={"content": "My order arrived broken."},
        headers=AUTH,
        timeout=120,
    )
    assert sent.status_code == 201, sent.text
    assert sent.json()["assistant_message"]["role"] == "assistant"
    assert isinstance(sent.json()["assistant_message"]["content"], str)
    # And the summarizer summarizes the conversation
    summary = requests.post(f"{api}/v1/conversations/{conversation}/summary", headers=AUTH, timeout=120)
    assert summary.status_code == 200, summary.text
    assert isinstance(summary.json()["summary"], str)


def test_a_transcript_dropped_in_s3_is_summarized_by_the_toolkit(stack: LocalStack):
    s3 = boto3.client("s3")
    # When a call transcript lands under incoming/
    s3.put_object(Bucket=stack.bucket_name, Key="incoming/engines/call.txt", Body=TRANSCRIPT.encode())
    # Then the batch job writes its summary document
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        listed = s3.list_objects_v2(Bucket=stack.bucket_name, Prefix="summaries/engines/")
        if listed.get("KeyCount"):
            break
        time.sleep(0.5)
    else:
        failed = s3.list_objects_v2(Bucket=stack.bucket_name, Prefix="failed/").get("Contents", [])
        pytest.fail(f"no summary within {WAIT_S} s; failure records: {[item['Key'] for item in failed]}")
    document = json.loads(s3.get_object(Bucket=stack.bucket_name, Key=listed["Contents"][0]["Key"])["Body"].read())
    assert isinstance(document["summary"], str) and len(document["transcript"]) == 2
