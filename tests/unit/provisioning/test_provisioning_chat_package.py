"""The chat package: model.py's contract mapping (without the LMI container) and the archive it ships in.

The LMI container hands the input hook the decoded JSON body (and vLLM's tokenizer), and the output hook vLLM's
response objects or, when streaming, text chunks. This venv has no vLLM: the stand-ins below carry only the
attributes the hooks read. tests/lmi runs the hooks through LMI's call sequence with vLLM's real objects.
"""

from __future__ import annotations

import io
import tarfile
from importlib import resources
from types import SimpleNamespace

import pytest
from pydantic import BaseModel, ConfigDict
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast

from local.backends.chat_contract import Message
from local.backends.hf_causal import llama2_prompt
from provisioning.chat_package import model
from provisioning.packaging import build_package, serving_properties


def _chat_completion(response_id: str, content: str) -> SimpleNamespace:
    message = SimpleNamespace(role="assistant", content=content)
    return SimpleNamespace(id=response_id, object="chat.completion", choices=[SimpleNamespace(message=message)])


def _completion(response_id: str, text: str) -> SimpleNamespace:
    return SimpleNamespace(id=response_id, object="text_completion", choices=[SimpleNamespace(text=text)])


class _ErrorInfo(BaseModel):
    message: str
    type: str
    code: int


class _ErrorResponse(BaseModel):
    """vLLM's ErrorResponse since 0.10.1: fields nested under `error`, extra fields allowed (OpenAIBaseModel)."""

    model_config = ConfigDict(extra="allow")
    error: _ErrorInfo


def _rejection(result: object) -> str:
    """The message LMI reads from a rejected request when it first looks into it."""
    assert isinstance(result, model.RejectedRequest)
    with pytest.raises(ValueError) as raised:
        _ = "model" in result
    return str(raised.value)


def test_hooks_carry_the_attributes_lmi_looks_for():
    # Given the module LMI loads from the model directory
    # Then exactly one input and one output formatter are marked
    marked_input = [f for f in vars(model).values() if getattr(f, "is_input_formatter", False)]
    marked_output = [f for f in vars(model).values() if getattr(f, "is_output_formatter", False)]
    assert marked_input == [model.format_request]
    assert marked_output == [model.format_response]


def test_seed_chat_request_becomes_a_marked_chat_completion():
    # Given a seed chat request with sampling parameters
    payload = {
        "chat": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "What is SageMaker?"},
        ],
        "parameters": {"max_new_tokens": 64, "do_sample": True, "temperature": 0.7, "top_p": 0.9, "top_k": 40},
    }
    # When the input hook maps it
    request = model.format_request(payload, tokenizer=None)
    # Then it is an OpenAI chat request with the same messages and sampling, and a marked request id
    assert request["messages"] == payload["chat"]
    assert request["max_tokens"] == 64
    assert (request["temperature"], request["top_p"], request["top_k"]) == (0.7, 0.9, 40)
    assert request["stream"] is False
    assert request["request_id"].startswith(model.CHAT_MARKER)


def test_seed_defaults_are_greedy_with_default_length():
    # Given a chat request without parameters
    request = model.format_request({"chat": [{"role": "user", "content": "Hi"}]})
    # Then generation is greedy and bounded by the default length, as LMI's own schema
    assert request["temperature"] == 0.0
    assert request["max_tokens"] == model.DEFAULT_MAX_NEW_TOKENS
    assert "top_p" not in request and "seed" not in request


def test_stop_sequences_and_seed_are_mapped():
    # Given stop sequences under the TGI name and a seed
    params = {"stop_sequences": ["\nUser:"], "seed": 7}
    request = model.format_request({"chat": [{"role": "user", "content": "Hi"}], "parameters": params})
    # Then they arrive under the OpenAI names
    assert request["stop"] == ["\nUser:"]
    assert request["seed"] == 7


def test_marked_chat_response_becomes_the_seed_reply():
    # Given the response vLLM returns for a request the input hook marked
    request = model.format_request({"chat": [{"role": "user", "content": "Hi"}]})
    response = _chat_completion(f"chatcmpl-{request['request_id']}", "Hello there")
    # When the output hook formats it
    reply = model.format_response(response)
    # Then the client gets the seed's shape, as a model LMI can serialise
    assert reply.model_dump_json() == '{"role":"assistant","content":"Hello there"}'


def test_lmi_plain_request_round_trips_to_generated_text():
    # Given the LMI plain form
    request = model.format_request({"inputs": "Once upon a time", "parameters": {"max_new_tokens": 8}})
    # When mapped, answered and formatted back
    reply = model.format_response(_completion(f"cmpl-{request['request_id']}", " there was"))
    # Then the request was a marked completion and the reply is LMI's plain shape
    assert request["prompt"] == "Once upon a time"
    assert request["max_tokens"] == 8
    assert reply.model_dump_json() == '{"generated_text":" there was"}'


@pytest.mark.parametrize(
    "payload",
    [
        {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5},
        {"prompt": "Hello", "max_tokens": 5},
    ],
    ids=["messages", "prompt"],
)
def test_openai_requests_pass_through_untouched(payload):
    # Given a request the container serves natively
    original = dict(payload)
    # When the input hook sees it
    request = model.format_request(payload)
    # Then it is the same request
    assert request == original


def test_unmarked_responses_and_stream_chunks_pass_through():
    # Given responses to requests the hooks did not convert
    chat = _chat_completion("chatcmpl-0123", "native")
    chunk = 'data: {"id": "chatcmpl-0123", "choices": [{"delta": {"content": "na"}}]}\n\n'
    # When the output hook sees them
    # Then they come back as they were (the same objects)
    assert model.format_response(chat) is chat
    assert model.format_response(chunk) is chunk


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([1, 2], "the request must be a JSON object"),
        ({"chat": []}, "`chat` must be a non-empty list"),
        ({"chat": [{"role": "robot", "content": "x"}]}, "chat[0].role must be one of system, user, assistant"),
        ({"chat": [{"role": "user", "content": 3}]}, "chat[0].content must be a string"),
        ({"chat": [{"role": "user"}]}, "chat[0] must be an object with exactly `role` and `content`"),
        ({"chat": [{"role": "assistant", "content": "x"}]}, "the last message in `chat` must be from the user"),
        (
            {"chat": [{"role": "user", "content": "x"}, {"role": "system", "content": "y"}]},
            "chat[1]: a system message may only come first",
        ),
        ({"chat": [{"role": "user", "content": "x"}], "parameters": {"beams": 2}}, "unknown parameter(s) ['beams']"),
        ({"chat": [{"role": "user", "content": "x"}], "parameters": {"max_new_tokens": 0}}, "max_new_tokens must be"),
        ({"chat": [{"role": "user", "content": "x"}], "parameters": []}, "`parameters` must be an object"),
        (
            {"chat": [{"role": "user", "content": "x"}], "parameters": {"do_sample": True, "top_p": 2}},
            "parameters.top_p must be a number 0.0..1.0",
        ),
        ({"chat": [{"role": "user", "content": "x"}], "stream": True}, "to stream, send `messages`"),
        ({"chat": [{"role": "user", "content": "x"}], "extra": 1}, "unknown request field(s) ['extra']"),
        ({"inputs": "  "}, "`inputs` must be a non-empty string"),
        ({"inputs": "x", "messages": []}, "unknown request field(s) ['messages']"),
    ],
)
def test_bad_requests_get_a_clear_error(payload, message):
    # Given a malformed request in one of the converted forms
    # When the input hook reads it
    # Then it returns a rejection whose first look raises what is wrong (LMI answers 424 with that message)
    assert message in _rejection(model.format_request(payload))


def test_vllm_errors_get_the_flat_fields_lmi_0_35_reads():
    # Given vLLM's nested error for an over-long prompt
    error = _ErrorResponse(error=_ErrorInfo(message="too long", type="BadRequestError", code=400))
    # When the output hook sees it
    formatted = model.format_response(error)
    # Then it is the same error, with the message and code also at the top level
    assert isinstance(formatted, _ErrorResponse)
    assert (formatted.message, formatted.code, formatted.error) == ("too long", 400, error.error)


def _tokenizer(chat_template: str | None = None) -> PreTrainedTokenizerFast:
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.BPE()), bos_token="<s>", eos_token="</s>")
    tokenizer.chat_template = chat_template
    return tokenizer


def test_a_tokenizer_without_a_template_gets_llama2s_and_renders_meta_format():
    # Given a tokenizer without a chat template, and a conversation with a system prompt and an earlier exchange
    tokenizer = _tokenizer()
    chat = [
        {"role": "system", "content": "Be brief. "},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": " Hello!"},
        {"role": "user", "content": "What is SageMaker?"},
    ]
    # When a request passes the input hook with it
    model.format_request({"chat": chat}, tokenizer=tokenizer)
    # Then the tokenizer renders Meta's Llama-2 format, as the hf-causal backend writes it
    rendered = tokenizer.apply_chat_template(chat, tokenize=False)
    assert rendered == llama2_prompt(tuple(Message(**message) for message in chat))


def test_a_tokenizers_own_template_is_kept():
    tokenizer = _tokenizer("{{ messages[0]['content'] }}")
    model.format_request({"messages": [{"role": "user", "content": "Hi"}]}, tokenizer=tokenizer)
    assert tokenizer.chat_template == "{{ messages[0]['content'] }}"


def test_the_llama2_template_refuses_turns_that_do_not_alternate():
    tokenizer = _tokenizer(model.LLAMA2_CHAT_TEMPLATE)
    chat = [{"role": "user", "content": "Hi"}, {"role": "user", "content": "Hello?"}]
    with pytest.raises(Exception, match="user and assistant turns to alternate"):
        tokenizer.apply_chat_template(chat, tokenize=False)


def test_serving_properties_select_async_vllm_and_carry_the_config(raw_config, deploy_config):
    # Given the default chat component
    container = deploy_config(raw_config).components["chat"].settings.container
    # When its serving.properties is written
    properties = dict(line.split("=", 1) for line in serving_properties(container).splitlines())
    # Then it selects LMI's async vLLM service and keeps the seed's settings
    assert properties["engine"] == "Python"
    assert properties["option.async_mode"] == "true"
    assert properties["option.rolling_batch"] == "disable"
    assert properties["option.entryPoint"] == "djl_python.lmi_vllm.vllm_async_service"
    assert properties["option.model_id"] == raw_config["components"]["chat"]["container"]["model_id"]
    assert properties["option.max_rolling_batch_size"] == "32"
    assert properties["option.tensor_parallel_degree"] == "1"
    assert properties["option.dtype"] == "fp16"


def test_archive_layout_is_flat_and_reproducible(raw_config, deploy_config):
    # Given the chat component's package, built twice
    target = deploy_config(raw_config).components["chat"]
    first, second = build_package(target), build_package(target)
    # When the archive is opened
    with tarfile.open(fileobj=io.BytesIO(first.archive), mode="r:gz") as archive:
        members = archive.getmembers()
        contents = {member.name: archive.extractfile(member).read() for member in members}
    # Then it holds model.py and serving.properties at its root, as regular files with fixed metadata
    assert [member.name for member in members] == ["model.py", "serving.properties"]
    assert all(member.isfile() and member.mode == 0o644 and member.mtime == 0 for member in members)
    assert contents["model.py"] == resources.files("provisioning.chat_package").joinpath("model.py").read_bytes()
    assert contents["serving.properties"].decode() == serving_properties(target.settings.container)
    # and the same inputs give the same bytes, so the content hash names the S3 key
    assert first.archive == second.archive
    assert first.key("endpoint-packages/dev/") == f"endpoint-packages/dev/chat-{first.sha256[:16]}.tar.gz"
