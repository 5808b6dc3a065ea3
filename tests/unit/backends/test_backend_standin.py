"""The weight-free stand-in chat backend."""

from __future__ import annotations

import json

import pytest

from local.backends.base import ModelResponse, PayloadError
from local.backends.standin import StandinChatBackend

CONVERSATION = [
    {"role": "system", "content": "You are a helpful support agent."},
    {"role": "user", "content": "My router keeps rebooting."},
    {"role": "assistant", "content": "Have you tried another power socket?"},
    {"role": "user", "content": "Yes, it still reboots every hour."},
]


@pytest.fixture
def standin() -> StandinChatBackend:
    return StandinChatBackend("chat", context_tokens=4096)


def test_answer_says_it_is_a_standin_and_reflects_the_conversation(standin: StandinChatBackend):
    # Given a conversation with a system prompt and two earlier turns
    # When the stand-in answers it
    [answer] = standin.run_batch([standin.prepare({"chat": CONVERSATION})], [None])
    # Then it says plainly it is a stand-in, echoes the last message and describes the context it got
    content = answer["content"]
    assert answer["role"] == "assistant"
    assert "stand-in" in content and "not a real language model" in content
    assert "Yes, it still reboots every hour." in content
    assert "2 earlier turns" in content
    assert "a system prompt" in content and "no system prompt" not in content


def test_answers_are_deterministic_and_each_request_gets_its_own(standin: StandinChatBackend):
    # Given two different requests served in one batch
    first = {"messages": [{"role": "user", "content": "first question"}], "temperature": 0}
    second = {"messages": [{"role": "user", "content": "second question"}], "temperature": 0}
    # When they are served together and again alone
    together = standin.run_batch([standin.prepare(first), standin.prepare(second)], [None, None])
    alone = standin.run_batch([standin.prepare(second)], [None])
    # Then each answer is about its own request and repeating it gives the same text
    contents = [body["choices"][0]["message"]["content"] for body in together]
    assert "first question" in contents[0] and "second question" in contents[1]
    assert contents[1] == alone[0]["choices"][0]["message"]["content"]
    assert "no system prompt" in contents[0]


def test_max_new_tokens_and_stop_sequences_are_honoured(standin: StandinChatBackend):
    # Given a full answer, and the same request limited to 4 words or stopped at "model"
    full = standin.run_batch([standin.prepare({"inputs": "Tell me a story"})], [None])[0]["generated_text"]
    limited = standin.prepare({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
    stopped = standin.prepare({"inputs": "Tell me a story", "parameters": {"stop": ["model"]}})
    # When served
    limited_body, stopped_body = standin.run_batch([limited, stopped], [None, None])
    # Then the first is cut at 4 words ("length") and the second just before the stop sequence
    assert len(limited_body["choices"][0]["message"]["content"].split()) == 4
    assert limited_body["choices"][0]["finish_reason"] == "length"
    assert stopped_body["generated_text"] == full[: full.index("model")]


def test_streams_word_by_word_in_openai_chunks_when_asked(standin: StandinChatBackend, run_streamed):
    # Given an OpenAI-style request with `"stream": true`
    payload = {"messages": CONVERSATION, "stream": True}
    [whole] = standin.run_batch([standin.prepare({"messages": CONVERSATION})], [None])
    # When it is streamed
    lines, result = run_streamed(standin, payload)
    # Then the role comes first, then every word is its own chunk, and the words make up the whole answer
    assert lines[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    pieces = [line["choices"][0]["delta"]["content"] for line in lines[1:-1]]
    assert len(pieces) > 10 and all(len(piece.split()) == 1 for piece in pieces)
    assert "".join(pieces) == whole["choices"][0]["message"]["content"]
    assert lines[-1]["choices"][0]["finish_reason"] == "stop"
    assert result is None


def test_streamed_chunks_stop_at_max_tokens(standin: StandinChatBackend, run_streamed):
    # Given a streamed OpenAI-style request for 5 tokens
    payload = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 5, "stream": True}
    # When streamed
    lines, _ = run_streamed(standin, payload)
    # Then the role chunk and five content chunks are followed by a final chunk that says why it ended
    assert [line["object"] for line in lines] == ["chat.completion.chunk"] * 7
    assert len([line for line in lines if line["choices"][0]["delta"].get("content")]) == 5
    assert lines[-1]["choices"][0] == {
        "index": 0,
        "delta": {"content": ""},
        "logprobs": None,
        "finish_reason": "length",
    }


@pytest.mark.parametrize(
    "payload",
    [
        {"chat": CONVERSATION},
        {"inputs": "Tell me a story"},
        {"messages": CONVERSATION},
    ],
    ids=["chat", "inputs", "messages"],
)
def test_requests_not_asking_to_stream_answer_whole_through_the_stream(
    standin: StandinChatBackend, payload, run_streamed
):
    # Given a request of each form without `"stream": true`
    [whole] = standin.run_batch([standin.prepare(payload)], [None])
    # When it is sent through the response stream
    lines, result = run_streamed(standin, payload)
    # Then the stream holds the one answer the request gets without a stream (as the LMI container answers it)
    assert result is None
    assert len(lines) == 1
    assert without_id(lines[0]) == without_id(whole)  # each answer has its own id and creation time


def without_id(body: dict) -> dict:
    return {key: value for key, value in body.items() if key not in {"id", "created"}}


def test_a_streamed_request_through_invoke_endpoint_gets_the_jsonlines_body(standin: StandinChatBackend):
    # Given an OpenAI-style request with `"stream": true`, served without a sink (plain InvokeEndpoint)
    payload = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 3, "stream": True}
    # When it is answered
    [response] = standin.run_batch([standin.prepare(payload)], [None])
    # Then it is every chunk line as one application/jsonlines body, for the endpoint to send as is
    assert isinstance(response, ModelResponse) and response.content_type == "application/jsonlines"
    chunks = [json.loads(line) for line in response.body.decode().splitlines() if line]
    assert [chunk["choices"][0]["finish_reason"] for chunk in chunks] == [None, None, None, None, "length"]


@pytest.mark.parametrize("payload", [{"chat": CONVERSATION, "stream": True}, {"inputs": "hi", "stream": False}])
def test_a_stream_field_in_the_lmi_forms_is_refused_as_the_chat_package_does(standin: StandinChatBackend, payload):
    # When a seed chat or LMI plain request carries `stream`, then it is refused with the chat package's message
    with pytest.raises(PayloadError) as caught:
        standin.prepare(payload)
    assert str(caught.value) == "this form answers in one piece; to stream, send `messages` with `stream: true`"


def test_prompt_beyond_context_window_is_refused():
    # Given a stand-in with a small context window
    standin = StandinChatBackend("chat", context_tokens=64)
    # When a request's prompt and answer cannot fit, then it is refused with both numbers
    with pytest.raises(PayloadError, match=r"plus max_new_tokens 32 exceed the context window of 64"):
        standin.prepare({"inputs": "word " * 60, "parameters": {"max_new_tokens": 32}})
