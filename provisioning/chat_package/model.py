"""The chat component's request and response hooks for the LMI container (DJL Serving, vLLM async mode).

The container already answers OpenAI chat completions (`{"messages": [...]}`) and completions (`{"prompt": ...}`).
These hooks add the seed's contract and the LMI plain form on top, as requests the container understands:

- `{"chat": [{"role", "content"}, ...], "parameters": {...}}` -> a chat completion -> `{"role": "assistant",
  "content": "..."}`
- `{"inputs": "...", "parameters": {...}}` -> a completion -> `{"generated_text": "..."}`

`parameters`: max_new_tokens, temperature, top_p, top_k, do_sample, stop / stop_sequences, seed; greedy unless
do_sample is true (as LMI's own schema). Everything else passes through untouched. Streaming is served for
`messages` / `prompt` requests (OpenAI chunks); the two forms above answer in one piece.

LMI finds the hooks by the attributes its own decorators set (`is_input_formatter`, `is_output_formatter`), so this
file needs nothing from djl_python. Once an output formatter exists LMI hands it every response, so requests
converted here carry a marker in their request id, and only marked responses are reshaped. Line numbers below are
djl-serving's `engines/python/setup/djl_python/` on branch 0.35.0-dlc (LMI 0.35.0, which ships vLLM 0.11.1):

- Replies are pydantic models. LMI 0.35.0 serialises whatever the output hook returns with `.model_dump_json()`
  (`lmi_vllm/request_response_utils.py:171`); later LMI versions apply the hook last and use `model_dump_json()`
  when the result has it (master `lmi_vllm/vllm_async_service.py:369-373`). A plain dict fails the first.
- vLLM's errors reach the client. Since vLLM 0.10.1 `ErrorResponse` nests its fields under `error`, but LMI 0.35.0
  reads `response.message` / `response.code` (`request_response_utils.py:167-170`): the AttributeError turns every
  over-long prompt or bad sampling parameter into a bare 424. The output hook copies both fields to the top level,
  so the client gets vLLM's status (400) and message. (Later LMI serialises the hook's result with status 200.)
- A bad request keeps its message. LMI replaces anything the input hook raises with "Custom input formatter
  execution failed" (`custom_formatter_handling.py:109-112`), so the hook returns a `RejectedRequest` instead: the
  first look LMI takes at the result (`"model" not in payload`, `lmi_vllm/vllm_async_service.py:155`) raises its
  message outside the wrapper, and LMI answers `424 {"error": "Input parsing failed: <message>", "code": 424}`
  (`vllm_async_service.py:237-241`).
- Llama-2 gets a chat template. vLLM rejects chat requests when the tokenizer has none, and older Llama-2-chat
  tokenizers ship without one. LMI hands the input hook the engine's own tokenizer (`vllm_async_service.py:96,
  146-147`), the object vLLM resolves the template from on every chat request (vLLM 0.11.1
  `entrypoints/openai/serving_chat.py:189`, `entrypoints/chat_utils.py:489-491`), so the hook gives it Meta's
  format once when it lacks a template. (`option.chat_template` would not do: LMI 0.35.0 hands its value to vLLM
  as the template text itself, `vllm_async_service.py:124`, while later LMI reads it as a path, and it would
  override a template the checkpoint has.)
"""

import uuid
from typing import Literal

from pydantic import BaseModel

CHAT_MARKER = "seed-chat-"
PLAIN_MARKER = "lmi-plain-"
ROLES = ("system", "user", "assistant")
DEFAULT_MAX_NEW_TOKENS = 256
_PARAMETERS = {"max_new_tokens", "temperature", "top_p", "top_k", "do_sample", "stop", "stop_sequences", "seed"}

# Meta's Llama-2 chat format: `<s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {answer} </s><s>[INST] ...`.
LLAMA2_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set system = messages[0]['content'] | trim %}"
    "{% set turns = messages[1:] %}{% else %}{% set system = none %}{% set turns = messages %}{% endif %}"
    "{% for message in turns %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('the Llama-2 chat format needs user and assistant turns to alternate, starting with the "
    "user') }}{% endif %}"
    "{% set content = message['content'] | trim %}"
    "{% if message['role'] == 'user' %}"
    "{% if loop.first and system is not none %}{% set content = '<<SYS>>\n' ~ system ~ '\n<</SYS>>\n\n' ~ content %}"
    "{% endif %}{{ bos_token ~ '[INST] ' ~ content ~ ' [/INST]' }}"
    "{% else %}{{ ' ' ~ content ~ ' ' ~ eos_token }}{% endif %}"
    "{% endfor %}"
)


class SeedChatReply(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class GeneratedText(BaseModel):
    generated_text: str


class RejectedRequest(dict):
    """What the input hook returns for a bad request: LMI's first look at it raises the reason (see above)."""

    def __init__(self, reason):
        super().__init__()
        self.reason = reason

    def __contains__(self, key):
        raise ValueError(self.reason)


def input_formatter(function):
    function.is_input_formatter = True
    return function


def output_formatter(function):
    function.is_output_formatter = True
    return function


@input_formatter
def format_request(payload, tokenizer=None, **_context):
    """Seed chat and LMI plain requests -> OpenAI requests with a marked request id; others unchanged."""
    if tokenizer is not None and getattr(tokenizer, "chat_template", "") is None:
        tokenizer.chat_template = LLAMA2_CHAT_TEMPLATE
    try:
        return to_openai(payload)
    except ValueError as error:
        return RejectedRequest(str(error))


@output_formatter
def format_response(response, **_context):
    """Marked responses -> the seed's shapes; vLLM errors -> readable by LMI 0.35.0; all else (stream chunks too)
    unchanged."""
    error = getattr(response, "error", None)
    if error is not None:
        return response.model_copy(update={"message": error.message, "code": error.code})
    response_id = getattr(response, "id", "")
    if CHAT_MARKER in response_id:
        return SeedChatReply(content=response.choices[0].message.content or "")
    if PLAIN_MARKER in response_id:
        return GeneratedText(generated_text=response.choices[0].text or "")
    return response


def to_openai(payload):
    """The request the container serves for payload; ValueError says what is wrong with it."""
    if not isinstance(payload, dict):
        raise ValueError(f"the request must be a JSON object, got {type(payload).__name__}")
    if "chat" in payload:
        return chat_to_openai(payload)
    if "inputs" in payload:
        return inputs_to_openai(payload)
    return payload


def chat_to_openai(payload):
    _only_fields(payload, {"chat", "parameters"})
    request = {"messages": _messages(payload["chat"]), "stream": False}
    request.update(_sampling(payload.get("parameters", {})))
    request["request_id"] = f"{CHAT_MARKER}{uuid.uuid4().hex}"
    return request


def inputs_to_openai(payload):
    _only_fields(payload, {"inputs", "parameters"})
    prompt = payload["inputs"]
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("`inputs` must be a non-empty string (the prompt)")
    request = {"prompt": prompt, "stream": False}
    request.update(_sampling(payload.get("parameters", {})))
    request["request_id"] = f"{PLAIN_MARKER}{uuid.uuid4().hex}"
    return request


def _only_fields(payload, allowed):
    unknown = sorted(set(payload) - allowed)
    if "stream" in unknown:
        raise ValueError("this form answers in one piece; to stream, send `messages` with `stream: true`")
    if unknown:
        raise ValueError(f"unknown request field(s) {unknown}; allowed: {sorted(allowed)}")


def _messages(chat):
    if not isinstance(chat, list) or not chat:
        raise ValueError("`chat` must be a non-empty list of {role, content} messages")
    messages = []
    for index, message in enumerate(chat):
        where = f"chat[{index}]"
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            raise ValueError(f"{where} must be an object with exactly `role` and `content`")
        if message["role"] not in ROLES:
            raise ValueError(f"{where}.role must be one of {', '.join(ROLES)}, got {message['role']!r}")
        if message["role"] == "system" and index != 0:
            raise ValueError(f"{where}: a system message may only come first")
        if not isinstance(message["content"], str):
            raise ValueError(f"{where}.content must be a string")
        messages.append({"role": message["role"], "content": message["content"]})
    if messages[-1]["role"] != "user":
        raise ValueError("the last message in `chat` must be from the user")
    return messages


def _sampling(parameters):
    """LMI generation parameters -> OpenAI/vLLM sampling fields."""
    if not isinstance(parameters, dict):
        raise ValueError("`parameters` must be an object")
    unknown = sorted(set(parameters) - _PARAMETERS)
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; allowed: {sorted(_PARAMETERS)}")
    if "stop" in parameters and "stop_sequences" in parameters:
        raise ValueError("give stop sequences as `stop` or `stop_sequences`, not both")
    max_new_tokens = parameters.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"parameters.max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    do_sample = parameters.get("do_sample", False)
    if not isinstance(do_sample, bool):
        raise ValueError("parameters.do_sample must be true or false")
    sampling = {"max_tokens": max_new_tokens, "temperature": 0.0}
    if do_sample:
        sampling["temperature"] = _number(parameters, "temperature", 1.0, low=0.0)
        sampling["top_p"] = _number(parameters, "top_p", 1.0, low=0.0, high=1.0)
        top_k = parameters.get("top_k", 0)
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
            raise ValueError(f"parameters.top_k must be a non-negative integer, got {top_k!r}")
        if top_k:
            sampling["top_k"] = top_k
    stop = parameters.get("stop", parameters.get("stop_sequences", []))
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(item, str) and item for item in stop):
        raise ValueError("parameters.stop must be a string or a list of non-empty strings")
    if stop:
        sampling["stop"] = stop
    if "seed" in parameters:
        seed = parameters["seed"]
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"parameters.seed must be an integer, got {seed!r}")
        sampling["seed"] = seed
    return sampling


def _number(parameters, name, default, *, low, high=None):
    value = parameters.get(name, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or value < low
        or (high is not None and value > high)
    ):
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise ValueError(f"parameters.{name} must be a number {bounds}, got {value!r}")
    return float(value)
