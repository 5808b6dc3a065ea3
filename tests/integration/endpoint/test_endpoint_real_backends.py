"""The endpoint with the real backends of `local.backends.create_backend`: the default configuration
(stand-in chat, extractive summarizer) and the smoke Llama, whose output is noise but whose loading,
batching and streaming are the real Hugging Face code paths."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from botocore.exceptions import ClientError
from chatbot.inference import InferenceClient, InputTooLongError
from endpoint_fakes import client

from local.endpoint import start_endpoint
from provisioning.config import load_config, parse_config

pytestmark = pytest.mark.integration

CALL = (
    "Agent: Thanks for calling, how can I help?\n"
    "Customer: My invoice for March charged me twice, 49 euros each time.\n"
    "Agent: I see the duplicate charge. I have refunded 49 euros; it reaches your card in 3 days.\n"
    "Customer: Great, thank you."
)


def test_default_configuration_serves_chat_and_summaries():
    # Given the shipped endpoint.yaml with its default, weight-free backends
    config = load_config(environ={})
    seed_chat = json.dumps({"chat": [{"role": "user", "content": "Hello?"}], "parameters": {"max_new_tokens": 30}})
    streamed_chat = json.dumps({"messages": [{"role": "user", "content": "Hello?"}], "max_tokens": 30, "stream": True})
    with start_endpoint(config, port=0) as running:
        runtime = client("sagemaker-runtime", running.url)

        def invoke(body: str, component: str = "chat") -> dict:
            return runtime.invoke_endpoint(
                EndpointName=config.endpoint.name, InferenceComponentName=component, Body=body
            )

        def stream(body: str, component: str = "chat") -> list[bytes]:
            response = runtime.invoke_endpoint_with_response_stream(
                EndpointName=config.endpoint.name, InferenceComponentName=component, Body=body
            )
            stream_types[component].append(response["ContentType"])
            return [event["PayloadPart"]["Bytes"] for event in response["Body"]]

        # When the chat component is invoked in the seed form and in the OpenAI form with `"stream": true`, each
        # through both APIs, and the summarizer through both
        stream_types: dict[str, list[str]] = {"chat": [], "summarizer": []}
        chat, chat_parts = invoke(seed_chat), stream(seed_chat)
        chunks_buffered, chunk_parts = invoke(streamed_chat), stream(streamed_chat)
        summary = invoke(json.dumps({"inputs": CALL}), "summarizer")
        summary_parts = stream(json.dumps({"inputs": CALL}), "summarizer")
        chat_body, chunks_body = chat["Body"].read(), chunks_buffered["Body"].read()
    # Then the seed form is one assistant message, through the response stream too (one part, as LMI answers it)
    chat_answer = json.loads(chat_body)
    assert chat_answer["role"] == "assistant" and chat_answer["content"]
    assert len(chat_parts) == 1 and json.loads(chat_parts[0]) == chat_answer
    # And the streamed request is chat.completion.chunk lines through both APIs, as jsonlines when buffered
    assert chunks_buffered["ContentType"] == "application/jsonlines"
    for body in (chunks_body, b"".join(chunk_parts)):
        chunks = [json.loads(line) for line in body.decode().splitlines() if line]
        assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
        assert "".join(chunk["choices"][0]["delta"]["content"] for chunk in chunks).strip()
        assert chunks[-1]["choices"][0]["finish_reason"] in {"stop", "length"}
    assert len(chunk_parts) > 3  # streamed piece by piece
    [summary_answer] = json.loads(summary["Body"].read())
    assert "refund" in summary_answer["summary_text"]
    assert len(summary_parts) == 1 and json.loads(summary_parts[0]) == [summary_answer]
    # And each response stream is typed as LMI and the toolkit type the answer: one piece JSON, chunks JSON lines
    assert stream_types == {"chat": ["application/json", "application/jsonlines"], "summarizer": ["application/json"]}


def test_default_backends_refuse_as_their_containers_and_the_client_reads_an_over_long_input():
    # Given the shipped configuration's stand-in chat and extractive summarizer, and the Lambdas' client
    config = load_config(environ={})
    with start_endpoint(config, port=0) as running:
        runtime = client("sagemaker-runtime", running.url)
        inference = InferenceClient(config.endpoint.name, "chat", "summarizer", runtime, timeout_s=30)

        def refusal(component: str, body: bytes) -> dict:
            with pytest.raises(ClientError) as raised:
                runtime.invoke_endpoint(
                    EndpointName=config.endpoint.name,
                    InferenceComponentName=component,
                    ContentType="application/json",
                    Body=body,
                )
            return raised.value.response

        # When requests break the contracts
        assistant_last = refusal("chat", json.dumps({"chat": [{"role": "assistant", "content": "Hi"}]}).encode())
        not_json = refusal("chat", b"not json")
        openai = {"messages": [{"role": "user", "content": "Hi"}], "top_p": 2}
        bad_sampling = refusal("chat", json.dumps(openai).encode())
        no_inputs = refusal("summarizer", json.dumps({"parameters": {"max_length": 20}}).encode())
        # And the client sends a prompt and a text longer than the components read
        with pytest.raises(InputTooLongError) as chat_too_long:
            inference.chat([{"role": "user", "content": "refund " * 5000}], max_new_tokens=8)
        with pytest.raises(InputTooLongError) as summary_too_long:
            inference.summarize(["Customer: my parcel is late. " * 800])
    # Then each is SageMaker's ModelError relaying the container's status and body: the chat package's 424 and
    # vLLM's 400 as LMI frames them (compact Gson), the toolkit's 400 as MMS frames it (pretty-printed)
    assert {error["Error"]["Code"] for error in (assistant_last, not_json, bad_sampling, no_inputs)} == {"ModelError"}
    assert (assistant_last["OriginalStatusCode"], assistant_last["OriginalMessage"]) == (
        424,
        '{"error":"Input parsing failed: the last message of `chat` must be from the user, '
        'got \\u0027assistant\\u0027","code":424}',
    )
    assert (not_json["OriginalStatusCode"], not_json["OriginalMessage"]) == (
        424,
        '{"error":"Input parsing failed: Expecting value: line 1 column 1 (char 0)","code":424}',
    )
    assert (bad_sampling["OriginalStatusCode"], bad_sampling["OriginalMessage"]) == (
        400,
        '{"error":"`top_p` must be a number in (0, 1], got 2","code":400}',
    )
    assert no_inputs["OriginalStatusCode"] == 400
    assert no_inputs["OriginalMessage"] == (
        '{\n  "code": 400,\n  "type": "InternalServerException",\n  "message": '
        '"the request is missing `inputs` (the text to summarize, or a list of texts)"\n}\n'
    )
    # And the client reads the stand-in's and the summarizer's over-long refusals as "input too long" (the API's
    # 413 path), as it reads vLLM's "maximum context length" (tests/integration/test_real_engines_end_to_end.py)
    assert "prompt is too long" in str(chat_too_long.value)
    assert "too long" in str(summary_too_long.value)


def test_smoke_llama_batches_concurrent_requests_without_mixing_answers():
    # Given one smoke-Llama copy batching up to 8 requests
    config = parse_config(
        {
            "endpoint": {"name": "smoke"},
            "components": {
                "chat": {
                    "container": {"kind": "lmi", "image_version": "0.33.0", "model_id": "smoke"},
                    "local": {"backend": "smoke-llama", "max_batch_size": 8, "max_batch_wait_ms": 50},
                }
            },
        },
        environ={},
    )
    with start_endpoint(config, port=0) as running:
        runtime = client("sagemaker-runtime", running.url)

        def generate(index: int) -> str:
            body = {"inputs": f"prompt number {index}", "parameters": {"max_new_tokens": 6 + index % 3}}
            response = runtime.invoke_endpoint(
                EndpointName="smoke", InferenceComponentName="chat", Body=json.dumps(body)
            )
            return json.loads(response["Body"].read())["generated_text"]

        # When eight requests are sent at once, and then each again alone
        with ThreadPoolExecutor(max_workers=8) as pool:
            together = list(pool.map(generate, range(8)))
        alone = [generate(index) for index in range(8)]
        counters = running.endpoint.status()["components"]["chat"]["counters"]
    # Then each batched answer equals the same (greedy) request served alone, and batching happened
    assert together == alone
    assert counters["batches"] < 16
    assert counters["errors"] == {}


def test_module_entry_point_serves_until_terminated():
    # Given `python -m local.endpoint` started on a free port with the shipped configuration, no overrides
    process = subprocess.Popen(
        [sys.executable, "-m", "local.endpoint", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={name: value for name, value in os.environ.items() if not name.startswith("CHATBOT_")},
    )
    try:
        first_line = process.stdout.readline()
        url = first_line.rsplit(" ", 1)[-1].strip()
        # When it is pinged and then sent SIGTERM
        ping = requests.get(f"{url}/ping", timeout=10)
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        process.stdout.close()
        process.stderr.close()
    # Then it announced its URL, was healthy, and stopped cleanly
    assert first_line.startswith("endpoint genai-chatbot serving at http://127.0.0.1:")
    assert ping.status_code == 200
    assert exit_code == 0
