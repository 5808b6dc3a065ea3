"""The chat payload contract shared by the chat backends: parsing each form, every error, stop handling, and
framing answers as the LMI container does."""

from __future__ import annotations

import json
from typing import Any

import pytest

from local.backends.base import ModelResponse, PayloadError
from local.backends.chat_contract import (
    DEFAULT_MAX_NEW_TOKENS,
    ONE_PIECE_FORM_MESSAGE,
    ChatAnswer,
    ChatForm,
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


def test_only_an_openai_request_asking_for_it_streams():
    # Given OpenAI-style requests without stream, with stream, and with stream and usage
    plain = parse_chat_request({"messages": [USER], "stream_options": {}})
    streamed = parse_chat_request({"messages": [USER], "stream": True})
    with_usage = parse_chat_request({"messages": [USER], "stream": True, "stream_options": {"include_usage": True}})
    # And the LMI forms, which never stream
    lmi = [parse_chat_request({"chat": [USER]}), parse_chat_request({"inputs": "hi"})]
    # Then only the requests with `"stream": true` stream, and only the one that asks ends with usage
    assert [plain.stream, streamed.stream, with_usage.stream] == [False, True, True]
    assert [plain.include_usage, streamed.include_usage, with_usage.include_usage] == [False, False, True]
    assert [request.stream for request in lmi] == [False, False]


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
        ({"chat": [USER], "stream": True}, ONE_PIECE_FORM_MESSAGE),
        ({"inputs": "hi", "stream": False, "extra": 1}, ONE_PIECE_FORM_MESSAGE),
        (
            {"messages": [USER], "stream_options": {"include_usage": True}},
            "Stream options can only be defined when `stream=True`.",
        ),
        ({"messages": [USER], "stream": True, "stream_options": True}, "`stream_options` must be an object"),
        ({"messages": [USER], "stream": True, "stream_options": {"x": 1}}, "unsupported stream option(s) ['x']"),
        (
            {"messages": [USER], "stream": True, "stream_options": {"include_usage": 1}},
            "`stream_options.include_usage` must be true or false",
        ),
        (
            {
                "messages": [USER],
                "stream": True,
                "stream_options": {"include_usage": True, "continuous_usage_stats": True},
            },
            "`stream_options.continuous_usage_stats` is not served locally",
        ),
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


def answer(payload: dict[str, Any], sink: Any, pieces: tuple[str, ...] = ("Hel", "lo")) -> Any:
    """Frames an answer of two pieces, "Hello", that ended on a stop sequence after 2 of 4 tokens."""
    writer = ChatAnswer(parse_chat_request(payload), sink, model="chat")
    for piece in pieces:
        writer.piece(piece)
    return writer.finish("".join(pieces), "stop", prompt_tokens=4, completion_tokens=2)


@pytest.mark.parametrize(
    "payload",
    [{"chat": [USER]}, {"inputs": "hi"}, {"messages": [USER]}, {"messages": [USER], "stream": False}],
    ids=["chat", "inputs", "messages", "messages stream false"],
)
def test_an_answer_not_asked_to_stream_comes_whole_even_through_a_stream(payload: dict[str, Any]):
    # Given a request that does not ask for a stream
    # When it is answered through InvokeEndpoint (no sink) and through the response stream (a sink)
    whole = answer(payload, None)
    parts: list[bytes] = []
    returned = answer(payload, parts.append)
    # Then both give the form's one JSON object: returned as is, or as one part of that JSON plus a newline
    assert isinstance(whole, dict) and returned is None
    assert len(parts) == 1 and parts[0].endswith(b"}\n") and parts[0].count(b"\n") == 1
    streamed = json.loads(parts[0])
    assert without_id(streamed) == without_id(whole)  # each answer has its own id and creation time
    assert streamed.get("object", "chat.completion") == "chat.completion"


def without_id(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key not in {"id", "created"}}


def test_a_streamed_answer_is_openai_chunks_closed_by_an_empty_line():
    # Given an OpenAI-style request with `"stream": true`, answered through the response stream
    parts: list[bytes] = []
    returned = answer({"messages": [USER], "stream": True}, parts.append)
    # Then every part is one line: the role first, a chunk per piece, the finish reason, and vLLM's [DONE] as ""
    assert returned is None
    assert all(part.endswith(b"\n") and part.count(b"\n") == 1 for part in parts)
    assert parts[-1] == b"\n"
    chunks = [json.loads(part) for part in parts[:-1]]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert [chunk["choices"][0]["delta"] for chunk in chunks] == [
        {"role": "assistant", "content": ""},
        {"content": "Hel"},
        {"content": "lo"},
        {"content": ""},
    ]
    assert [chunk["choices"][0]["finish_reason"] for chunk in chunks] == [None, None, None, "stop"]
    # And it carries no usage (vLLM's default), and one id, creation time and model throughout
    assert not any("usage" in chunk for chunk in chunks)
    assert len({(chunk["id"], chunk["created"], chunk["model"]) for chunk in chunks}) == 1
    assert chunks[0]["id"].startswith("chatcmpl-") and chunks[0]["model"] == "chat"


def test_a_stream_asking_for_usage_ends_with_a_usage_chunk():
    # Given a streamed request with stream_options.include_usage
    payload = {"messages": [USER], "stream": True, "stream_options": {"include_usage": True}, "model": "m"}
    parts: list[bytes] = []
    answer(payload, parts.append)
    # Then after the finishing chunk comes one with no choices and the usage, then the empty line
    *chunks, usage = [json.loads(part) for part in parts[:-1]]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == [] and usage["model"] == "m" and usage["id"] == chunks[0]["id"]
    assert usage["usage"] == {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}
    assert parts[-1] == b"\n"


def test_a_streamed_answer_through_invoke_endpoint_is_the_jsonlines_body():
    # Given an OpenAI-style request with `"stream": true` served without a sink (plain InvokeEndpoint)
    response = answer({"messages": [USER], "stream": True}, None)
    # Then the result is the whole stream as one jsonlines body, which the endpoint sends as is
    assert isinstance(response, ModelResponse)
    assert response.content_type == "application/jsonlines"
    lines = response.body.decode().split("\n")
    assert lines[-2:] == ["", ""]  # the last chunk's newline, then the empty [DONE] line
    chunks = [json.loads(line) for line in lines[:-2]]
    assert "".join(chunk["choices"][0]["delta"]["content"] for chunk in chunks) == "Hello"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_empty_pieces_are_not_sent():
    # Given a streamed answer whose generation produced an empty piece
    parts: list[bytes] = []
    answer({"messages": [USER], "stream": True}, parts.append, pieces=("Hel", "", "lo"))
    # Then no chunk carries it: the role, two pieces, the finish, the empty line
    assert len(parts) == 5
