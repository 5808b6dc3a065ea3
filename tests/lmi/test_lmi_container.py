"""The LMI container end to end: local.containers.lmi serving the chat package on the smoke Llama through vLLM, over
HTTP. The shapes asserted are what LMI 0.35.0 answers (see local/containers/lmi.py for the source lines); the smoke
model's text is noise, so only shapes and lengths are checked.
"""

from __future__ import annotations

import http.client
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def invoke(port: int, body: Any, *, raw: bytes | None = None) -> tuple[int, str, bytes, str | None]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    connection.request(
        "POST",
        "/invocations",
        body=raw if raw is not None else json.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    response = connection.getresponse()
    content = response.read()
    return response.status, response.getheader("Content-Type"), content, response.getheader("Transfer-Encoding")


def test_seed_chat_answers_in_the_seeds_shape(lmi_port):
    # Given the seed's chat request
    payload = {
        "chat": [{"role": "user", "content": "My internet keeps dropping."}],
        "parameters": {"max_new_tokens": 8},
    }
    # When the container answers it
    status, content_type, body, chunked = invoke(lmi_port, payload)
    # Then it is one JSON line in the seed's shape, not chunked
    assert (status, content_type, chunked) == (200, "application/json", None)
    assert body.endswith(b"}\n") and body.count(b"\n") == 1
    reply = json.loads(body)
    assert set(reply) == {"role", "content"} and reply["role"] == "assistant" and reply["content"]


def test_lmi_plain_inputs_answer_generated_text(lmi_port):
    status, _, body, _ = invoke(lmi_port, {"inputs": "Hello, how can I", "parameters": {"max_new_tokens": 5}})
    assert status == 200
    assert set(json.loads(body)) == {"generated_text"}


def test_openai_messages_answer_a_chat_completion(lmi_port):
    # Given an OpenAI chat request
    status, content_type, body, _ = invoke(lmi_port, {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 6})
    # Then the body is vLLM's chat completion, model name "lmi" as LMI serves it
    completion = json.loads(body)
    assert (status, content_type) == (200, "application/json")
    assert completion["object"] == "chat.completion" and completion["model"] == "lmi"
    assert completion["choices"][0]["message"]["role"] == "assistant"
    assert completion["usage"]["completion_tokens"] == 6


def test_openai_messages_stream_as_json_lines(lmi_port):
    # Given a streamed OpenAI chat request
    payload = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 6, "stream": True}
    # When the container answers it
    status, content_type, body, chunked = invoke(lmi_port, payload)
    # Then it is chunked JSON lines, one per vLLM event, closed by the empty line LMI sends for [DONE]
    assert (status, content_type, chunked) == (200, "application/jsonlines", "chunked")
    lines = body.decode().split("\n")
    assert lines[-2:] == ["", ""]
    chunks = [json.loads(line) for line in lines[:-2]]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_concurrent_requests_are_all_answered(lmi_port):
    # Given more requests in flight than one at a time (vLLM batches them)
    payload = {"chat": [{"role": "user", "content": "Hi"}], "parameters": {"max_new_tokens": 16}}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: invoke(lmi_port, payload), range(8)))
    # Then every one gets the seed's reply
    assert [status for status, *_ in answers] == [200] * 8


def test_an_over_long_prompt_gets_vllms_400(lmi_port, smoke_context):
    # Given a seed chat whose prompt does not fit the model's context
    payload = {"chat": [{"role": "user", "content": "Hi " * smoke_context}], "parameters": {"max_new_tokens": 4}}
    # When the container answers it
    status, content_type, body, _ = invoke(lmi_port, payload)
    # Then the client gets vLLM's status and message, framed by LMI's frontend
    assert (status, content_type) == (400, "application/json")
    assert body.startswith(f'{{"error":"This model\\u0027s maximum context length is {smoke_context} tokens.'.encode())
    assert json.loads(body)["code"] == 400


def test_a_bad_sampling_parameter_gets_vllms_400(lmi_port):
    payload = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "temperature": -1}
    status, _, body, _ = invoke(lmi_port, payload)
    assert status == 400
    # Gson escapes "=" (Request.java:133)
    message = "temperature must be non-negative, got -1.0. (parameter\\u003dtemperature, value\\u003d-1.0)"
    assert body == f'{{"error":"{message}","code":400}}'.encode()


def test_a_request_the_hook_rejects_keeps_its_message(lmi_port):
    payload = {"chat": [{"role": "user", "content": "Hi"}], "parameters": {"max_new_tokens": 0}}
    status, content_type, body, _ = invoke(lmi_port, payload)
    assert (status, content_type) == (424, "application/json")
    assert json.loads(body) == {
        "error": "Input parsing failed: parameters.max_new_tokens must be a positive integer, got 0",
        "code": 424,
    }


def test_a_body_that_is_not_json_is_an_input_parsing_failure(lmi_port):
    status, _, body, _ = invoke(lmi_port, None, raw=b"not json")
    assert status == 424
    assert json.loads(body) == {"error": "Input parsing failed: Expecting value: line 1 column 1 (char 0)", "code": 424}
