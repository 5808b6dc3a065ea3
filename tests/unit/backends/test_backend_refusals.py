"""In-process backends refuse a request as the container they imitate answers it: the chat backends as the LMI
container (the chat package's input hook: 424 "Input parsing failed"; vLLM: 400 with its message; compact Gson),
the summarizers as the Hugging Face container (MMS's pretty-printed 400). The exact container bodies are asserted in
tests/lmi/test_lmi_container.py and tests/integration/endpoint/test_hf_toolkit_container.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from local.backends.base import ModelServerError, PayloadError
from local.backends.chat_contract import EngineRefusal, lmi_refusal
from local.backends.extractive import ExtractiveSummarizerBackend
from local.backends.standin import StandinChatBackend
from local.backends.summary_contract import toolkit_refusal

USER = {"role": "user", "content": "Hi"}


def refusal(backend: Any, payload: Any) -> ModelServerError:
    with pytest.raises(PayloadError) as refused:
        backend.prepare(payload)
    return backend.refuse(refused.value)


@pytest.fixture
def standin() -> StandinChatBackend:
    return StandinChatBackend("chat", context_tokens=64)


def test_a_request_the_chat_package_refuses_is_lmis_424_in_gson(standin: StandinChatBackend):
    # When a seed chat ends with the assistant's message
    answer = refusal(standin, {"chat": [USER, {"role": "assistant", "content": "Hello"}]})
    # Then it is LMI's input-parsing failure, compact, with Gson's escape of the quote
    assert answer.status == 424
    assert answer.body == (
        '{"error":"Input parsing failed: the last message of `chat` must be from the user, got \\u0027assistant\\u0027"'
        ',"code":424}'
    )


@pytest.mark.parametrize(
    "payload",
    [
        {"chat": [USER], "stream": True},
        {"chat": [USER], "parameters": {"max_new_tokens": 0}},
        {"chat": [USER], "parameters": {"temperature": -1}},
        {"chat": [USER], "parameters": {"beams": 2}},
        {"messages": [USER], "temperature": "hot"},
        ["not", "an", "object"],
    ],
    ids=[
        "stream in the seed form",
        "hook's max_new_tokens",
        "hook's temperature",
        "unknown parameter",
        "wrong type",
        "not an object",
    ],
)
def test_request_errors_are_input_parsing_failures(standin: StandinChatBackend, payload: Any):
    answer = refusal(standin, payload)
    body = json.loads(answer.body)
    assert (answer.status, list(body), body["code"]) == (424, ["error", "code"], 424)
    assert body["error"].startswith("Input parsing failed: ")


@pytest.mark.parametrize(
    "payload",
    [
        {"messages": [USER], "temperature": -1},
        {"messages": [USER], "top_p": 0},
        {"messages": [USER], "max_tokens": 0},
        {"inputs": "word " * 60, "parameters": {"max_new_tokens": 32}},
        {"chat": [{"role": "user", "content": "word " * 80}]},
    ],
    ids=["temperature", "top_p", "max_tokens", "over-long with max_new_tokens", "over-long"],
)
def test_what_vllm_refuses_is_its_400_with_its_message_unwrapped(standin: StandinChatBackend, payload: Any):
    answer = refusal(standin, payload)
    body = json.loads(answer.body)
    assert (answer.status, list(body), body["code"]) == (400, ["error", "code"], 400)
    assert not body["error"].startswith("Input parsing failed")


def test_gson_escapes_the_html_sensitive_characters():
    assert lmi_refusal(EngineRefusal("a <b> & c='d'")).body == (
        '{"error":"a \\u003cb\\u003e \\u0026 c\\u003d\\u0027d\\u0027","code":400}'
    )


def test_the_chat_answer_is_typed_by_its_form(standin: StandinChatBackend):
    streamed = standin.prepare({"messages": [USER], "stream": True})
    assert standin.answer_content_type(streamed) == "application/jsonlines"
    for payload in ({"messages": [USER]}, {"chat": [USER]}, {"inputs": "Hi"}):
        assert standin.answer_content_type(standin.prepare(payload)) == "application/json"


def test_a_summary_request_refused_is_mms_400_pretty_printed():
    # When a summary request lacks `inputs`
    summarizer = ExtractiveSummarizerBackend(context_tokens=1024)
    answer = refusal(summarizer, {"text": "Agent: hello"})
    # Then it is MMS's error body, byte for byte as its frontend writes it
    message = (
        "unsupported request field(s) [\\u0027text\\u0027]; supported: [\\u0027inputs\\u0027, \\u0027parameters\\u0027]"
    )
    assert (answer.status, answer.body) == (
        400,
        f'{{\n  "code": 400,\n  "type": "InternalServerException",\n  "message": "{message}"\n}}\n',
    )
    assert summarizer.answer_content_type(summarizer.prepare({"inputs": "Agent: hello"})) == "application/json"


def test_a_body_that_is_not_json_is_refused_as_each_container_refuses_it():
    error = PayloadError("Expecting value: line 1 column 1 (char 0)")
    assert lmi_refusal(error).status == 424
    assert json.loads(lmi_refusal(error).body) == {
        "error": "Input parsing failed: Expecting value: line 1 column 1 (char 0)",
        "code": 424,
    }
    assert toolkit_refusal(error).status == 400
    assert json.loads(toolkit_refusal(error).body)["message"] == "Expecting value: line 1 column 1 (char 0)"
