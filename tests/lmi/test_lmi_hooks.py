"""The chat package's hooks through LMI's own call sequence, with vLLM's real request and response objects.

The sequence is djl-serving 0.35.0-dlc `engines/python/setup/djl_python/lmi_vllm/vllm_async_service.py`
(VLLMHandler.preprocess_request :135-217, inference :226-267) and, for later LMI versions, master's inference
(`vllm_async_service.py:337-381`: the output hook applied last, `model_dump_json()` used when present). LMI's own
functions come from local.containers.lmi, which writes them again line for line (its docstring cites each).
Response ids are built as vLLM builds them from the request id: `chatcmpl-{request_id}` and `cmpl-{request_id}`
(vLLM 0.11.1 serving_chat.py:260-261, serving_completion.py:115).
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from vllm.entrypoints.openai.chat_completion.protocol import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatCompletionResponseChoice,
    ChatMessage,
)
from vllm.entrypoints.openai.completion.protocol import (
    CompletionRequest,
    CompletionResponse,
    CompletionResponseChoice,
)
from vllm.entrypoints.serve.engine.protocol import ErrorInfo, ErrorResponse, UsageInfo

from local.containers import lmi
from provisioning.chat_package import model as hooks

USAGE = UsageInfo(prompt_tokens=5, completion_tokens=3, total_tokens=8)


def lmi_035_preprocess(payload: dict, tokenizer: object = None) -> ChatCompletionRequest | CompletionRequest:
    """vllm_async_service.py:146-147 (input hook, with the tokenizer), :155-156 (model), :172-190 (request type)."""
    payload = hooks.format_request(payload, tokenizer=tokenizer)
    if "model" not in payload:
        payload["model"] = "lmi"
    return CompletionRequest(**payload) if "prompt" in payload else ChatCompletionRequest(**payload)


def lmi_035_postprocess(response: object) -> lmi.LmiOutput:
    """vllm_async_service.py:261-267: the output hook, then vllm_non_stream_output_formatter."""
    return lmi.vllm_non_stream_output_formatter(hooks.format_response(response))


def later_lmi_postprocess(response: object) -> lmi.LmiOutput:
    """master vllm_async_service.py:365-373: the output hook last, then model_dump_json / model_dump if present."""
    formatted = hooks.format_response(response)
    if hasattr(formatted, "model_dump_json"):
        formatted = formatted.model_dump_json()
    elif hasattr(formatted, "model_dump"):
        formatted = formatted.model_dump()
    return lmi.non_stream_output(formatted if isinstance(formatted, str) else json.dumps(formatted))


def chat_response(request: ChatCompletionRequest, content: str) -> ChatCompletionResponse:
    message = ChatMessage(role="assistant", content=content)
    choice = ChatCompletionResponseChoice(index=0, message=message, finish_reason="stop")
    return ChatCompletionResponse(id=f"chatcmpl-{request.request_id}", model="lmi", choices=[choice], usage=USAGE)


def completion_response(request: CompletionRequest, text: str) -> CompletionResponse:
    choice = CompletionResponseChoice(index=0, text=text, finish_reason="length")
    return CompletionResponse(id=f"cmpl-{request.request_id}", model="lmi", choices=[choice], usage=USAGE)


SEED_CHAT = {
    "chat": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is SageMaker?"}],
    "parameters": {"max_new_tokens": 16, "do_sample": True, "temperature": 0.7},
}
OPENAI_CHAT = {"messages": [{"role": "user", "content": "What is SageMaker?"}], "max_tokens": 16}


@pytest.mark.parametrize("postprocess", [lmi_035_postprocess, later_lmi_postprocess], ids=["lmi-0.35.0", "later-lmi"])
def test_seed_chat_comes_back_in_the_seeds_shape(postprocess):
    # Given the seed's chat request through LMI's preprocessing
    request = lmi_035_preprocess(dict(SEED_CHAT))
    assert isinstance(request, ChatCompletionRequest)
    assert request.model_dump(include={"max_tokens", "temperature"}) == {"max_tokens": 16, "temperature": 0.7}
    # When vLLM's response comes back through LMI's post-processing
    output = postprocess(chat_response(request, "A managed ML service."))
    # Then the client's body is the seed's reply, as one JSON line
    assert output.code is None and output.content_type == "application/json"
    assert json.loads(lmi.frame(output)) == {"role": "assistant", "content": "A managed ML service."}


@pytest.mark.parametrize("postprocess", [lmi_035_postprocess, later_lmi_postprocess], ids=["lmi-0.35.0", "later-lmi"])
def test_openai_messages_come_back_as_vllms_chat_completion(postprocess):
    # Given an OpenAI chat request, which the hooks leave to the container
    request = lmi_035_preprocess(dict(OPENAI_CHAT))
    response = chat_response(request, "A managed ML service.")
    # When it comes back through LMI's post-processing
    body = json.loads(lmi.frame(postprocess(response)))
    # Then the client gets vLLM's own chat completion, whose message is the assistant's
    assert body == json.loads(response.model_dump_json())
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["choices"][0]["message"]["content"] == "A managed ML service."


@pytest.mark.parametrize("postprocess", [lmi_035_postprocess, later_lmi_postprocess], ids=["lmi-0.35.0", "later-lmi"])
def test_lmi_plain_inputs_come_back_as_generated_text(postprocess):
    # Given LMI's plain form
    request = lmi_035_preprocess({"inputs": "Once upon a time", "parameters": {"max_new_tokens": 8}})
    assert isinstance(request, CompletionRequest) and request.model_dump(include={"max_tokens"}) == {"max_tokens": 8}
    # When vLLM's completion comes back
    output = postprocess(completion_response(request, " there was"))
    # Then the body is LMI's plain shape
    assert json.loads(lmi.frame(output)) == {"generated_text": " there was"}


def test_a_plain_dict_from_the_output_hook_fails_on_lmi_0_35_0():
    # Given the seed package's old reply, a plain dict (the defect this package fixes)
    # When LMI 0.35.0 serialises it (request_response_utils.py:171)
    # Then it raises, and the python engine answers 424 without the reason (python_async_engine.py:63-78)
    with pytest.raises(AttributeError, match="model_dump_json"):
        lmi.vllm_non_stream_output_formatter({"role": "assistant", "content": "hi"})


def test_vllm_errors_reach_the_client_with_their_status_and_message():
    # Given vLLM's error for a prompt that does not fit (nested since vLLM 0.10.1, as in the 0.11.1 LMI ships)
    info = ErrorInfo(message="This model's maximum context length is 1024 tokens.", type="BadRequestError", code=400)
    error = ErrorResponse(error=info)
    # When LMI 0.35.0 formats it without the hook, it fails (request_response_utils.py:167-170)
    with pytest.raises(AttributeError, match="message"):
        lmi.vllm_non_stream_output_formatter(error)
    # and with the hook
    output = lmi_035_postprocess(error)
    # Then the client gets vLLM's status and message
    assert (output.code, output.error) == (400, info.message)
    assert lmi.frame(output) == b'{"error":"This model\\u0027s maximum context length is 1024 tokens.","code":400}'


def test_stream_chunks_pass_the_hook_unchanged():
    # Given one of vLLM's SSE events (vllm_async_service.py:247-258 hands each to the hook, then to LMI's formatter)
    chunk = 'data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'
    # When it passes the output hook and vllm_stream_output_formatter (request_response_utils.py:175-187)
    data, last = lmi.vllm_stream_output_formatter(hooks.format_response(chunk))
    # Then the client's line is the event's JSON
    assert (data, last) == (chunk[6:].strip(), False)
    assert lmi.vllm_stream_output_formatter(hooks.format_response("data: [DONE]\n\n")) == ("", True)


def test_a_bad_request_keeps_its_message_through_lmis_wrapper():
    # Given a seed request the hook rejects
    rejected = hooks.format_request({"chat": [{"role": "user", "content": "x"}], "parameters": {"max_new_tokens": 0}})
    # When LMI takes its first look at the result (vllm_async_service.py:155), outside the hook's wrapper
    with pytest.raises(ValueError) as raised:
        _ = "model" not in rejected
    # Then LMI's answer carries the hook's message (vllm_async_service.py:237-241)
    output = lmi.non_stream_output("", error=f"Input parsing failed: {raised.value}", code=424)
    assert json.loads(lmi.frame(output)) == {
        "error": "Input parsing failed: parameters.max_new_tokens must be a positive integer, got 0",
        "code": 424,
    }


def test_the_tokenizer_gets_the_llama2_template_only_when_it_has_none():
    # Given LMI's tokenizer argument without a chat template, and one with its own
    bare, templated = SimpleNamespace(chat_template=None), SimpleNamespace(chat_template="{{ messages }}")
    # When the input hook runs with each
    lmi_035_preprocess(dict(OPENAI_CHAT), tokenizer=bare)
    lmi_035_preprocess(dict(OPENAI_CHAT), tokenizer=templated)
    # Then only the bare one gets Meta's Llama-2 format
    assert bare.chat_template == hooks.LLAMA2_CHAT_TEMPLATE
    assert templated.chat_template == "{{ messages }}"
