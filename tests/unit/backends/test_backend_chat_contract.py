"""The chat payload contract shared by the chat backends: parsing each form, every error, stop handling."""

from __future__ import annotations

import json
from typing import Any

import pytest

from local.backends.base import PayloadError
from local.backends.chat_contract import (
    DEFAULT_MAX_NEW_TOKENS,
    ChatForm,
    ChatStream,
    Message,
    find_stop,
    parse_chat_request,
    resolve_max_new_tokens,
    response_body,
    safe_to_emit,
)

USER = {"role": "user", "content": "Where is my parcel?"}


def test_chat_form_keeps_messages_and_parameters():
    # Given the seed's chat form with a system prompt and every parameter
    payload = {
        "chat": [{"role": "system", "content": "Be brief."}, USER],
        "parameters": {
            "max_new_tokens": 40,
            "do_sample": True,
            "temperature": 0.7,
            "top_p": 0.9,
            "top_k": 5,
            "stop_sequences": ["\nUser:"],
            "seed": 7,
        },
    }
    # When it is parsed
    request = parse_chat_request(payload)
    # Then the messages and parameters come through as given
    assert request.form is ChatForm.CHAT
    assert request.messages == (Message("system", "Be brief."), Message("user", "Where is my parcel?"))
    assert request.system_prompt == "Be brief."
    parameters = request.parameters
    assert (parameters.max_new_tokens, parameters.do_sample, parameters.temperature) == (40, True, 0.7)
    assert (parameters.top_p, parameters.top_k, parameters.stop, parameters.seed) == (0.9, 5, ("\nUser:",), 7)


def test_lmi_inputs_form_is_greedy_unless_do_sample():
    # Given the LMI plain form with a temperature but no do_sample
    request = parse_chat_request({"inputs": "Once upon a time", "parameters": {"temperature": 0.5, "stop": "."}})
    # Then it is the prompt, greedy (LMI samples only with do_sample), with one stop sequence
    assert request.form is ChatForm.INPUTS
    assert request.prompt == "Once upon a time"
    assert request.parameters.do_sample is False
    assert request.parameters.stop == (".",)


def test_openai_form_samples_unless_temperature_is_zero():
    # Given two OpenAI-style requests, one with temperature 0
    default = parse_chat_request({"messages": [USER], "max_tokens": 12, "model": "m", "stream": False, "n": 1})
    greedy = parse_chat_request({"messages": [USER], "max_completion_tokens": 3, "temperature": 0, "stop": ["x", "y"]})
    # Then the default samples (OpenAI's temperature 1) and temperature 0 is greedy
    assert default.form is ChatForm.MESSAGES
    assert (default.parameters.do_sample, default.parameters.max_new_tokens, default.model) == (True, 12, "m")
    assert (greedy.parameters.do_sample, greedy.parameters.max_new_tokens, greedy.parameters.stop) == (
        False,
        3,
        ("x", "y"),
    )


def test_openai_text_content_parts_are_joined():
    # Given a message whose content is a list of text parts
    content = [{"type": "text", "text": "Hello "}, {"type": "text", "text": "there"}]
    # When parsed
    request = parse_chat_request({"messages": [{"role": "user", "content": content}]})
    # Then the parts form one text
    assert request.messages[-1].content == "Hello there"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([USER], "must be a JSON object"),
        ({"prompt": "hi"}, "must have `chat`"),
        ({"chat": [USER], "inputs": "hi"}, "only one of"),
        ({"chat": USER}, "`chat` must be a list"),
        ({"chat": []}, "`chat` is empty"),
        ({"chat": ["hi"]}, "chat[0] must be an object"),
        ({"chat": [{"role": "user"}]}, "chat[0] is missing `content`"),
        ({"chat": [{"role": "bot", "content": "x"}]}, "chat[0].role must be one of system, user, assistant; got 'bot'"),
        ({"chat": [USER, {"role": "system", "content": "x"}, USER]}, "chat[1] is a system message"),
        ({"chat": [USER, {"role": "assistant", "content": "x"}]}, "last message of `chat` must be from the user"),
        ({"chat": [{"role": "user", "content": 5}]}, "chat[0].content must be a string, got a number"),
        ({"chat": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}, "chat[0].content must be a string"),
        ({"chat": [USER], "parameters": []}, "`parameters` must be an object"),
        ({"chat": [USER], "parameters": {"beam": 2}}, "unsupported parameter(s) ['beam']"),
        ({"chat": [USER], "extra": 1}, "unsupported request field(s) ['extra']"),
        (
            {"chat": [USER], "parameters": {"max_new_tokens": 0}},
            "`parameters.max_new_tokens` must be a positive integer",
        ),
        ({"chat": [USER], "parameters": {"max_new_tokens": True}}, "`parameters.max_new_tokens` must be a positive"),
        ({"chat": [USER], "parameters": {"temperature": -1}}, "`parameters.temperature` must be a number >= 0"),
        ({"chat": [USER], "parameters": {"top_p": 0}}, "`parameters.top_p` must be a number in (0, 1]"),
        ({"chat": [USER], "parameters": {"top_k": 1.5}}, "`parameters.top_k` must be an integer >= 0"),
        ({"chat": [USER], "parameters": {"do_sample": "yes"}}, "`parameters.do_sample` must be true or false"),
        ({"chat": [USER], "parameters": {"seed": "1"}}, "`parameters.seed` must be an integer"),
        ({"chat": [USER], "parameters": {"stop": [""]}}, "`parameters.stop` must be a non-empty string or a list"),
        ({"chat": [USER], "parameters": {"stop": "a", "stop_sequences": ["b"]}}, "not both"),
        ({"chat": [USER], "parameters": {"stop": ["s"] * 17}}, "has 17 stop sequences; at most 16"),
        ({"chat": [USER], "parameters": {"do_sample": True, "temperature": 0}}, "must be > 0 when sampling"),
        ({"inputs": ["a"]}, "`inputs` must be a string (the prompt), got a list"),
        ({"inputs": "  "}, "`inputs` is empty"),
        ({"messages": [USER], "n": 2}, "`n` must be 1"),
        ({"messages": [USER], "stream": "yes"}, "`stream` must be true or false"),
        ({"messages": [USER], "model": 3}, "`model` must be a string"),
        ({"messages": [USER], "max_tokens": 1, "max_completion_tokens": 1}, "not both"),
        ({"messages": [USER], "max_tokens": -3}, "`max_tokens` must be a positive integer"),
        ({"messages": [USER], "logprobs": True}, "unsupported request field(s) ['logprobs']"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "messages[0].content[0] must be a text part",
        ),
    ],
)
def test_bad_requests_get_a_precise_error(payload: Any, message: str):
    # Given a request that breaks the contract, when it is parsed, then the error says exactly what is wrong
    with pytest.raises(PayloadError) as caught:
        parse_chat_request(payload)
    assert message in str(caught.value)


def test_context_window_check_names_both_numbers():
    # Given a prompt of 1000 tokens asking for 100 more in a window of 1024
    parameters = parse_chat_request({"chat": [USER], "parameters": {"max_new_tokens": 100}}).parameters
    # When the answer length is resolved, then the error names the prompt length and max_new_tokens
    with pytest.raises(PayloadError) as caught:
        resolve_max_new_tokens(parameters, prompt_tokens=1000, context_tokens=1024)
    assert "1000 tokens plus max_new_tokens 100" in str(caught.value)
    assert "context window of 1024 tokens" in str(caught.value)
    assert "too long" in str(caught.value)  # the wording callers recognise as input-too-long


def test_default_answer_length_fits_the_room_left():
    # Given requests without max_new_tokens
    parameters = parse_chat_request({"chat": [USER]}).parameters
    # Then the answer gets the default length, or what the context window leaves
    assert resolve_max_new_tokens(parameters, prompt_tokens=10, context_tokens=4096) == DEFAULT_MAX_NEW_TOKENS
    assert resolve_max_new_tokens(parameters, prompt_tokens=1000, context_tokens=1024) == 24
    with pytest.raises(PayloadError, match="leave no room"):
        resolve_max_new_tokens(parameters, prompt_tokens=1024, context_tokens=1024)


def test_stop_helpers_find_stops_and_hold_back_possible_starts():
    # Given a stop sequence "END"
    stop = ("END",)
    # Then the earliest occurrence is found, and a tail that may begin a stop sequence is not yet streamed
    assert find_stop("abcENDxEND", stop) == 3
    assert find_stop("abc", stop) is None
    assert safe_to_emit("hello E", stop) == len("hello ")
    assert safe_to_emit("hello EN", stop) == len("hello ")
    assert safe_to_emit("hello ENx", stop) == len("hello ENx")


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"chat": [USER]}, {"role": "assistant", "content": "Fine."}),
        ({"inputs": "hi"}, {"generated_text": "Fine."}),
    ],
)
def test_response_shape_follows_the_form(payload: dict[str, Any], expected: dict[str, Any]):
    # Given a parsed request, when its answer is rendered, then it has the form's shape
    body = response_body(parse_chat_request(payload), "Fine.", "stop", prompt_tokens=3, completion_tokens=2, model="c")
    assert body == expected


def test_openai_response_has_choices_and_usage():
    # Given an OpenAI-style request
    request = parse_chat_request({"messages": [USER]})
    # When its answer is rendered
    body = response_body(request, "Fine.", "length", prompt_tokens=3, completion_tokens=2, model="chat")
    # Then it is a chat.completion with one choice and token usage
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "chat"
    assert body["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "Fine."}, "finish_reason": "length"}
    ]
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def test_stream_lines_for_lmi_and_openai_forms():
    # Given a stream for each form
    parts: dict[str, list[bytes]] = {"chat": [], "messages": []}
    for form, payload in (("chat", {"chat": [USER]}), ("messages", {"messages": [USER]})):
        stream = ChatStream(parse_chat_request(payload), parts[form].append, model="chat")
        # When two pieces and the end are written
        stream.piece("Hel")
        stream.piece("lo")
        stream.finish("Hello", "stop", prompt_tokens=4, completion_tokens=2)
    # Then the LMI form has token lines and a last line with the full text
    lmi = [json.loads(part) for part in parts["chat"]]
    assert lmi == [
        {"token": {"text": "Hel"}},
        {"token": {"text": "lo"}},
        {"token": {"text": ""}, "generated_text": "Hello"},
    ]
    # And the OpenAI form has chunks with deltas, then a finish_reason and usage
    chunks = [json.loads(part) for part in parts["messages"]]
    assert [chunk["object"] for chunk in chunks] == ["chat.completion.chunk"] * 3
    assert [chunk["choices"][0]["delta"] for chunk in chunks] == [{"content": "Hel"}, {"content": "lo"}, {}]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["total_tokens"] == 6
    assert len({chunk["id"] for chunk in chunks}) == 1
