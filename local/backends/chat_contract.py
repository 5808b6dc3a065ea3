"""The chat component's payload contract, shared by every chat backend (standin, hf-causal, smoke-llama).

Three request forms are accepted, each answered in its own shape:

- the seed's chat form: `{"chat": [{"role": "system"|"user"|"assistant", "content": str}, ...], "parameters": {...}}`
  -> `{"role": "assistant", "content": str}`
- the LMI plain form: `{"inputs": str, "parameters": {...}}` -> `{"generated_text": str}`
- the OpenAI chat-completions form: `{"messages": [...], "max_tokens": N, "temperature", "top_p", "stop", "seed",
  "stream", "stream_options", ...}` -> `{"id", "object": "chat.completion", "created", "model", "choices": [{"index":
  0, "message": {"role": "assistant", "content": str}, "finish_reason": "stop"|"length"}], "usage":
  {"prompt_tokens", "completion_tokens", "total_tokens"}}`

`parameters` (chat and inputs forms): max_new_tokens, temperature, top_p, top_k, do_sample, stop / stop_sequences,
seed. The LMI forms are greedy unless `do_sample` is true; the OpenAI form samples unless `temperature` is 0
(its default temperature is 1), as those APIs do. Messages: an optional system message first, then user and
assistant turns, the last one from the user.

Framing, as the LMI container frames answers (local/containers/lmi.py, provisioning/chat_package/model.py): whether an
answer streams depends on the request alone, never on the SageMaker API that carries it.
- Answered in one piece: the chat and inputs forms always (the chat package turns them into non-streaming requests
  and refuses a `stream` field in them with `ONE_PIECE_FORM_MESSAGE`), and the messages form without `"stream":
  true`. Through InvokeEndpoint the backend returns the form's JSON object (the endpoint sends it as the body);
  through InvokeEndpointWithResponseStream it sends that object as JSON plus "\\n" (LMI's body) in one PayloadPart.
- Streamed: the messages form with `"stream": true`, as LMI's application/jsonlines, one line per vLLM server-sent
  event, each ending in "\\n": first a chunk whose delta is `{"role": "assistant", "content": ""}`, then one
  `{"id", "object": "chat.completion.chunk", "created", "model", "choices": [{"index": 0, "delta": {"content":
  "<piece>"}, "logprobs": null, "finish_reason": null}]}` per piece of text, then a chunk whose choice has
  `"delta": {"content": ""}` and `"finish_reason": "stop"|"length"`; with `"stream_options": {"include_usage":
  true}` a last chunk follows with `"choices": []` and `usage` (without it the stream carries no usage, as vLLM's
  default); then an empty line (vLLM's `data: [DONE]`). The pieces concatenate to the full text. Through
  InvokeEndpointWithResponseStream every line is its own PayloadPart, sent as soon as it is produced; through
  InvokeEndpoint the body is all the lines, returned as a `ModelResponse` typed application/jsonlines.
All chunks of one answer share its id, created time and model; their fields are a subset of vLLM's, with its types.

Refusals, as the LMI container answers them (`lmi_refusal`; local/containers/lmi.py frames them the same way): what
vLLM itself refuses (`EngineRefusal`: a prompt that does not fit the context window, a sampling parameter of the
messages form out of range, a chat template that refuses the messages) is vLLM's 400 with its message, `{"error":
"<message>","code":400}`; anything else the request breaks, including a body that is not JSON, is the chat package's
input hook (or LMI's decoding) refusing it: 424 `{"error":"Input parsing failed: <message>","code":424}`. Both are
compact JSON with Gson's HTML-safe escapes. The endpoint relays them as SageMaker's ModelError.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from local.backends.base import ModelResponse, ModelServerError, PayloadError, TokenSink
from local.containers.lmi import gson

FinishReason = Literal["stop", "length"]
ROLES = ("system", "user", "assistant")
DEFAULT_MAX_NEW_TOKENS = 256
MAX_STOP_SEQUENCES = 16
#: The chat package's refusal of `stream` in the chat and inputs forms (provisioning/chat_package/model.py).
ONE_PIECE_FORM_MESSAGE = "this form answers in one piece; to stream, send `messages` with `stream: true`"
STREAM_CONTENT_TYPE = "application/jsonlines"  # LMI's streamed answers (djl_python async_utils.py)
ONE_PIECE_CONTENT_TYPE = "application/json"  # LMI's answers in one piece (async_utils.create_non_stream_output)

_LMI_PARAMETERS = {"max_new_tokens", "temperature", "top_p", "top_k", "do_sample", "stop", "stop_sequences", "seed"}
_OPENAI_FIELDS = {
    "messages",
    "model",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop",
    "seed",
    "stream",
    "stream_options",
    "n",
    "user",
}


class EngineRefusal(PayloadError):
    """What vLLM refuses rather than the chat package's input hook: LMI answers it with vLLM's 400."""


def lmi_refusal(error: PayloadError) -> ModelServerError:
    """The LMI container's answer to a request that breaks the chat contract (see the module doc)."""
    if isinstance(error, EngineRefusal):
        return ModelServerError(400, gson({"error": str(error), "code": 400}).decode())
    return ModelServerError(424, gson({"error": f"Input parsing failed: {error}", "code": 424}).decode())


class LmiFraming:
    """Mixed into the chat backends: they refuse requests and type their answers as the LMI container does."""

    def refuse(self, error: PayloadError) -> ModelServerError:
        return lmi_refusal(error)

    def answer_content_type(self, prepared: Any) -> str:
        """A `messages` request with `"stream": true` is answered in JSON lines, any other in one JSON piece.
        (Every chat backend's prepared request holds its ChatRequest as `.request`.)"""
        request: ChatRequest = prepared.request
        return STREAM_CONTENT_TYPE if request.stream else ONE_PIECE_CONTENT_TYPE


class ChatForm(StrEnum):
    CHAT = "chat"
    INPUTS = "inputs"
    MESSAGES = "messages"


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class GenerationParameters:
    #: None: as many as the context window leaves room for, up to DEFAULT_MAX_NEW_TOKENS.
    max_new_tokens: int | None = None
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0: no top-k filter
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass(frozen=True)
class ChatRequest:
    form: ChatForm
    parameters: GenerationParameters
    messages: tuple[Message, ...] = ()  # chat and messages forms
    prompt: str = ""  # inputs form
    model: str | None = None  # the messages form's `model`, echoed back
    stream: bool = False  # the messages form's `stream`: answer in chat.completion.chunk lines
    include_usage: bool = False  # the messages form's `stream_options.include_usage`: end the stream with usage

    @property
    def system_prompt(self) -> str | None:
        return self.messages[0].content if self.messages and self.messages[0].role == "system" else None


def parse_chat_request(payload: Any) -> ChatRequest:
    """Validate one parsed JSON request against the chat contract; PayloadError says what is wrong and where."""
    if not isinstance(payload, dict):
        raise PayloadError(f"the request must be a JSON object, got {_json_type(payload)}")
    forms = [form for form in ChatForm if form.value in payload]
    if not forms:
        raise PayloadError(
            "the request must have `chat` (a list of messages), `messages` (OpenAI chat completions) "
            f"or `inputs` (a prompt string); got keys {sorted(payload)}"
        )
    if len(forms) > 1:
        raise PayloadError(
            f"the request must have only one of `chat`, `messages`, `inputs`; got {[f.value for f in forms]}"
        )
    form = forms[0]
    if form is ChatForm.MESSAGES:
        return _parse_openai(payload)
    if "stream" in payload:  # as the chat package refuses it (model.py `_only_fields`), whatever its value
        raise PayloadError(ONE_PIECE_FORM_MESSAGE)
    _reject_unknown(payload, {form.value, "parameters"}, "request field")
    parameters = payload.get("parameters", {})
    if not isinstance(parameters, dict):
        raise PayloadError(f"`parameters` must be an object, got {_json_type(parameters)}")
    _reject_unknown(parameters, _LMI_PARAMETERS, "parameter")
    if "stop" in parameters and "stop_sequences" in parameters:
        raise PayloadError("give stop sequences as `stop` or `stop_sequences`, not both")
    stop_field = "stop" if "stop" in parameters else "stop_sequences"
    generation = _generation_parameters(
        parameters,
        max_tokens_field="max_new_tokens",
        stop_field=stop_field,
        prefix="parameters.",
        sample_by_default=False,
        out_of_range=PayloadError,  # the chat package's hook checks them
    )
    if form is ChatForm.INPUTS:
        prompt = payload["inputs"]
        if not isinstance(prompt, str):
            raise PayloadError(f"`inputs` must be a string (the prompt), got {_json_type(prompt)}")
        if not prompt.strip():
            raise PayloadError("`inputs` is empty")
        return ChatRequest(form=form, parameters=generation, prompt=prompt)
    return ChatRequest(form=form, parameters=generation, messages=_parse_messages(payload["chat"], "chat"))


def _parse_openai(payload: dict[str, Any]) -> ChatRequest:
    _reject_unknown(payload, _OPENAI_FIELDS, "request field")
    if "max_tokens" in payload and "max_completion_tokens" in payload:
        raise PayloadError("give `max_tokens` or `max_completion_tokens`, not both")
    if payload.get("n", 1) != 1 or isinstance(payload.get("n"), bool):
        raise PayloadError(f"`n` must be 1 (one answer per request), got {payload['n']!r}")
    stream = payload.get("stream", False)
    if not isinstance(stream, bool):
        raise PayloadError(f"`stream` must be true or false, got {_json_type(payload['stream'])}")
    include_usage = _stream_options(payload.get("stream_options"), stream)
    for field in ("model", "user"):
        if field in payload and not isinstance(payload[field], str):
            raise PayloadError(f"`{field}` must be a string, got {_json_type(payload[field])}")
    generation = _generation_parameters(
        payload,
        max_tokens_field="max_completion_tokens" if "max_completion_tokens" in payload else "max_tokens",
        stop_field="stop",
        prefix="",
        sample_by_default=True,
        out_of_range=EngineRefusal,
    )
    return ChatRequest(
        form=ChatForm.MESSAGES,
        parameters=generation,
        messages=_parse_messages(payload["messages"], "messages"),
        model=payload.get("model"),
        stream=stream,
        include_usage=include_usage,
    )


def _stream_options(options: Any, stream: bool) -> bool:
    """Whether a streamed answer ends with a usage chunk (vLLM's `stream_options`, accepted only with a stream)."""
    if options is None:
        return False
    if not isinstance(options, dict):
        raise PayloadError(f"`stream_options` must be an object, got {_json_type(options)}")
    if options and not stream:  # vLLM's own check (ChatCompletionRequest.validate_stream_options)
        raise PayloadError("Stream options can only be defined when `stream=True`.")
    _reject_unknown(options, {"include_usage", "continuous_usage_stats"}, "stream option")
    for field in ("include_usage", "continuous_usage_stats"):
        if options.get(field) is not None and not isinstance(options[field], bool):
            raise PayloadError(f"`stream_options.{field}` must be true or false, got {_json_type(options[field])}")
    include_usage = bool(options.get("include_usage"))
    if include_usage and options.get("continuous_usage_stats"):  # vLLM reads it only with include_usage
        raise PayloadError("`stream_options.continuous_usage_stats` is not served locally; use `include_usage` alone")
    return include_usage


def _parse_messages(raw: Any, field: str) -> tuple[Message, ...]:
    if not isinstance(raw, list):
        raise PayloadError(f"`{field}` must be a list of messages, got {_json_type(raw)}")
    if not raw:
        raise PayloadError(f"`{field}` is empty: it needs at least one user message")
    messages = []
    for index, item in enumerate(raw):
        where = f"{field}[{index}]"
        if not isinstance(item, dict):
            raise PayloadError(f"{where} must be an object with `role` and `content`, got {_json_type(item)}")
        missing = [key for key in ("role", "content") if key not in item]
        if missing:
            raise PayloadError(f"{where} is missing {' and '.join(f'`{key}`' for key in missing)}")
        role = item["role"]
        if role not in ROLES:
            raise PayloadError(f"{where}.role must be one of {', '.join(ROLES)}; got {role!r}")
        if role == "system" and index != 0:
            raise PayloadError(f"{where} is a system message: only the first message may be one")
        messages.append(Message(role=role, content=_message_content(item["content"], where, field)))
    if messages[-1].role != "user":
        raise PayloadError(f"the last message of `{field}` must be from the user, got {messages[-1].role!r}")
    return tuple(messages)


def _message_content(content: Any, where: str, field: str) -> str:
    if isinstance(content, str):
        return content
    # The OpenAI form also allows a list of content parts; only text parts mean anything to a text model.
    if field == "messages" and isinstance(content, list):
        texts = []
        for index, part in enumerate(content):
            if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)):
                raise PayloadError(f"{where}.content[{index}] must be a text part {{'type': 'text', 'text': str}}")
            texts.append(part["text"])
        return "".join(texts)
    raise PayloadError(f"{where}.content must be a string, got {_json_type(content)}")


def _generation_parameters(
    source: dict[str, Any],
    *,
    max_tokens_field: str,
    stop_field: str,
    prefix: str,
    sample_by_default: bool,
    out_of_range: type[PayloadError],
) -> GenerationParameters:
    """The sampling settings of a request. A value of the wrong type fails the request's parsing; a value out of range
    raises `out_of_range`: vLLM's refusal in the messages form (its SamplingParams check it), the input hook's in the
    LMI forms."""

    def name(field: str) -> str:
        return f"`{prefix}{field}`"

    max_new_tokens = source.get(max_tokens_field)
    if max_new_tokens is not None and not _is_int(max_new_tokens):
        raise PayloadError(f"{name(max_tokens_field)} must be a positive integer, got {max_new_tokens!r}")
    if max_new_tokens is not None and max_new_tokens < 1:
        raise out_of_range(f"{name(max_tokens_field)} must be a positive integer, got {max_new_tokens!r}")
    temperature = source.get("temperature", 1.0)
    if not _is_number(temperature):
        raise PayloadError(f"{name('temperature')} must be a number >= 0, got {temperature!r}")
    if temperature < 0:
        raise out_of_range(f"{name('temperature')} must be a number >= 0, got {temperature!r}")
    top_p = source.get("top_p", 1.0)
    if not _is_number(top_p):
        raise PayloadError(f"{name('top_p')} must be a number in (0, 1], got {top_p!r}")
    if not 0 < top_p <= 1:
        raise out_of_range(f"{name('top_p')} must be a number in (0, 1], got {top_p!r}")
    top_k = source.get("top_k", 0)
    if not _is_int(top_k):
        raise PayloadError(f"{name('top_k')} must be an integer >= 0, got {top_k!r}")
    if top_k < 0:
        raise out_of_range(f"{name('top_k')} must be an integer >= 0, got {top_k!r}")
    seed = source.get("seed")
    if seed is not None and not _is_int(seed):
        raise PayloadError(f"{name('seed')} must be an integer, got {seed!r}")
    do_sample = source.get("do_sample")
    if do_sample is None:
        do_sample = sample_by_default and temperature > 0
    elif not isinstance(do_sample, bool):
        raise PayloadError(f"{name('do_sample')} must be true or false, got {do_sample!r}")
    if do_sample and temperature == 0:
        raise PayloadError(f"{name('temperature')} must be > 0 when sampling (do_sample is true)")
    return GenerationParameters(
        max_new_tokens=max_new_tokens,
        do_sample=do_sample,
        temperature=float(temperature),
        top_p=float(top_p),
        top_k=top_k,
        stop=_stop_sequences(source.get(stop_field), name(stop_field)),
        seed=seed,
    )


def _stop_sequences(raw: Any, name: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    sequences = [raw] if isinstance(raw, str) else raw
    if not isinstance(sequences, list) or not all(isinstance(item, str) and item for item in sequences):
        raise PayloadError(f"{name} must be a non-empty string or a list of non-empty strings, got {raw!r}")
    if len(sequences) > MAX_STOP_SEQUENCES:
        raise PayloadError(f"{name} has {len(sequences)} stop sequences; at most {MAX_STOP_SEQUENCES} are allowed")
    return tuple(sequences)


def _reject_unknown(mapping: dict[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise PayloadError(f"unsupported {what}(s) {unknown}; supported: {sorted(allowed)}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number" if _is_number(value) else type(value).__name__)


def resolve_max_new_tokens(parameters: GenerationParameters, prompt_tokens: int, context_tokens: int) -> int:
    """How many tokens the answer may have; EngineRefusal (vLLM's) if the prompt leaves no room for it in the context
    window."""
    if parameters.max_new_tokens is None:
        room = context_tokens - prompt_tokens
        if room < 1:
            raise EngineRefusal(
                f"prompt is too long: {prompt_tokens} tokens leave no room for an answer "
                f"in the context window of {context_tokens} tokens"
            )
        return min(DEFAULT_MAX_NEW_TOKENS, room)
    if prompt_tokens + parameters.max_new_tokens > context_tokens:
        raise EngineRefusal(
            f"prompt is too long: {prompt_tokens} tokens plus max_new_tokens {parameters.max_new_tokens} exceed "
            f"the context window of {context_tokens} tokens (the prompt may use at most "
            f"{max(context_tokens - parameters.max_new_tokens, 0)})"
        )
    return parameters.max_new_tokens


def find_stop(text: str, stop: tuple[str, ...], search_from: int = 0) -> int | None:
    """Where the earliest stop sequence starts in text (looking from `search_from`), or None."""
    starts = [position for sequence in stop if (position := text.find(sequence, search_from)) != -1]
    return min(starts) if starts else None


def safe_to_emit(text: str, stop: tuple[str, ...]) -> int:
    """How much of text can be streamed now: a tail that may be the start of a stop sequence is held back."""
    held = 0
    for sequence in stop:
        for length in range(min(len(sequence) - 1, len(text)), held, -1):
            if text.endswith(sequence[:length]):
                held = length
                break
    return len(text) - held


def response_body(
    request: ChatRequest,
    text: str,
    finish_reason: FinishReason,
    *,
    prompt_tokens: int,
    completion_tokens: int,
    model: str,
) -> dict[str, Any]:
    """The non-streamed answer, in the shape of the request's form."""
    if request.form is ChatForm.CHAT:
        return {"role": "assistant", "content": text}
    if request.form is ChatForm.INPUTS:
        return {"generated_text": text}
    return {
        "id": _completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model or model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}],
        "usage": _usage(prompt_tokens, completion_tokens),
    }


class ChatAnswer:
    """One request's answer, framed as the LMI container frames it (see the module doc).

    A backend calls `piece` with each new piece of text as it is generated and `finish` once at the end; `finish`
    returns what `run_batch` returns for the request. A streamed request (messages form, `"stream": true`) writes a
    chunk line per piece to the sink as it comes, or collects the lines when there is no sink; any other request
    is answered whole by `finish`, to the sink when there is one.
    """

    def __init__(self, request: ChatRequest, sink: TokenSink | None, *, model: str):
        self.request = request
        self._sink = sink
        self._id = _completion_id()
        self._created = int(time.time())
        self._model = request.model or model
        self._lines: list[bytes] = []  # a streamed answer without a sink
        self._started = False

    @property
    def streams(self) -> bool:
        """Whether pieces are sent as they come (otherwise `piece` does nothing and `finish` sends everything)."""
        return self.request.stream

    def piece(self, text: str) -> None:
        if not self.streams or not text:
            return
        self._start()
        self._write_line(self._chunk([_choice({"content": text}, None)]))

    def finish(
        self, text: str, finish_reason: FinishReason, *, prompt_tokens: int, completion_tokens: int
    ) -> dict[str, Any] | ModelResponse | None:
        """Send what is left of the answer; return the request's result (None once everything went to the sink)."""
        if not self.streams:
            body = response_body(
                self.request,
                text,
                finish_reason,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                model=self._model,
            )
            if self._sink is None:
                return body
            self._sink(_json(body) + b"\n")
            return None
        self._start()
        self._write_line(self._chunk([_choice({"content": ""}, finish_reason)]))
        if self.request.include_usage:
            self._write_line({**self._chunk([]), "usage": _usage(prompt_tokens, completion_tokens)})
        self._write(b"\n")  # vLLM's `data: [DONE]`, which LMI sends as an empty line
        if self._sink is None:
            return ModelResponse(b"".join(self._lines), STREAM_CONTENT_TYPE)
        return None

    def _start(self) -> None:
        """vLLM's first chunk, sent with the first generated text: the role, and empty content."""
        if not self._started:
            self._started = True
            self._write_line(self._chunk([_choice({"role": "assistant", "content": ""}, None)]))

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": choices,
        }

    def _write_line(self, line: dict[str, Any]) -> None:
        self._write(_json(line) + b"\n")

    def _write(self, data: bytes) -> None:
        if self._sink is None:
            self._lines.append(data)
        else:
            self._sink(data)


def _choice(delta: dict[str, str], finish_reason: FinishReason | None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
