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
file needs nothing from djl_python. Once an output formatter exists LMI hands it every response and skips its own
formatting, so requests converted here carry a marker in their request id, and only marked responses are reshaped.
A bad request raises ValueError; LMI answers it with a 424 whose message is ours.
"""

import uuid

CHAT_MARKER = "seed-chat-"
PLAIN_MARKER = "lmi-plain-"
ROLES = ("system", "user", "assistant")
DEFAULT_MAX_NEW_TOKENS = 256
_PARAMETERS = {"max_new_tokens", "temperature", "top_p", "top_k", "do_sample", "stop", "stop_sequences", "seed"}


def input_formatter(function):
    function.is_input_formatter = True
    return function


def output_formatter(function):
    function.is_output_formatter = True
    return function


@input_formatter
def format_request(payload, **_context):
    """Seed chat and LMI plain requests -> OpenAI requests with a marked request id; others unchanged."""
    if not isinstance(payload, dict):
        raise ValueError(f"the request must be a JSON object, got {type(payload).__name__}")
    if "chat" in payload:
        return chat_to_openai(payload)
    if "inputs" in payload and "messages" not in payload:
        return inputs_to_openai(payload)
    return payload


@output_formatter
def format_response(response, **_context):
    """Marked responses -> the seed's shapes; every other response (and every stream chunk) unchanged."""
    body = response.model_dump() if hasattr(response, "model_dump") else response
    if not isinstance(body, dict):
        return response
    response_id = str(body.get("id", ""))
    choices = body.get("choices") or [{}]
    if CHAT_MARKER in response_id:
        message = choices[0].get("message") or {}
        return {"role": "assistant", "content": message.get("content") or ""}
    if PLAIN_MARKER in response_id:
        return {"generated_text": choices[0].get("text") or ""}
    return response


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
