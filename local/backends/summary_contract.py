"""The summarizer component's payload contract (Hugging Face inference toolkit, task summarization).

Request `{"inputs": str | [str, ...], "parameters": {...}}`, response `[{"summary_text": str}, ...]`: one summary
per input, in input order. Parameters: max_length, min_length, max_new_tokens, min_new_tokens, num_beams,
do_sample, temperature, top_p, top_k, length_penalty, no_repeat_ngram_size, early_stopping, repetition_penalty.
An input longer than the model reads is refused ("input is N tokens; the model reads at most M"), never
truncated: callers split long conversations on turn boundaries and summarize the parts.
A streamed request gets the same JSON document as one part, typed application/json as the toolkit types it.

Refusals, as the Hugging Face container answers them (`toolkit_refusal`): whatever the request breaks, including a
body that is not JSON, the toolkit raises a PredictionException(message, 400) and MMS's frontend answers 400 with
its pretty-printed Gson body `{"code": 400, "type": "InternalServerException", "message": "<message>"}` (the bytes
local/containers/huggingface.py writes). The endpoint relays it as SageMaker's ModelError.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from local.backends.base import ModelServerError, PayloadError, TokenSink
from local.containers.huggingface import mms_error_body  # the frontend's bytes, shared so they never drift

_INT_PARAMETERS = {
    "max_length": 1,
    "min_length": 0,
    "max_new_tokens": 1,
    "min_new_tokens": 0,
    "num_beams": 1,
    "top_k": 0,
    "no_repeat_ngram_size": 0,
}
_POSITIVE_NUMBER_PARAMETERS = {"temperature", "repetition_penalty"}
_NUMBER_PARAMETERS = {"length_penalty", "top_p"}
_BOOL_PARAMETERS = {"do_sample", "early_stopping"}
SUPPORTED_PARAMETERS = frozenset(_INT_PARAMETERS) | _POSITIVE_NUMBER_PARAMETERS | _NUMBER_PARAMETERS | _BOOL_PARAMETERS


def toolkit_refusal(error: PayloadError) -> ModelServerError:
    """The Hugging Face container's answer to a request that breaks the summarizer contract (see the module doc)."""
    return ModelServerError(400, mms_error_body(400, str(error)).decode())


class ToolkitFraming:
    """Mixed into the summarizer backends: they refuse requests as the Hugging Face container does."""

    def refuse(self, error: PayloadError) -> ModelServerError:
        return toolkit_refusal(error)


@dataclass(frozen=True)
class SummaryRequest:
    inputs: tuple[str, ...]
    #: Validated generation parameters, as sorted (name, value) pairs so equal settings group into one batch.
    parameters: tuple[tuple[str, Any], ...]
    #: Whether `inputs` was a list (only affects how errors name an input).
    listed: bool

    def where(self, index: int) -> str:
        return f"inputs[{index}]: input" if self.listed else "input"


def parse_summary_request(payload: Any) -> SummaryRequest:
    """Validate one parsed JSON request; PayloadError says precisely what is wrong."""
    if not isinstance(payload, dict):
        raise PayloadError('the request must be a JSON object {"inputs": str | [str], "parameters": {...}}')
    unknown = sorted(set(payload) - {"inputs", "parameters"})
    if unknown:
        raise PayloadError(f"unsupported request field(s) {unknown}; supported: ['inputs', 'parameters']")
    if "inputs" not in payload:
        raise PayloadError("the request is missing `inputs` (the text to summarize, or a list of texts)")
    raw_inputs = payload["inputs"]
    listed = isinstance(raw_inputs, list)
    inputs = raw_inputs if listed else [raw_inputs]
    if not inputs:
        raise PayloadError("`inputs` is an empty list: give at least one text")
    for index, text in enumerate(inputs):
        where = f"inputs[{index}]" if listed else "inputs"
        if not isinstance(text, str):
            raise PayloadError(f"`{where}` must be a string, got {type(text).__name__}")
        if not text.strip():
            raise PayloadError(f"`{where}` is empty")
    parameters = payload.get("parameters", {})
    if not isinstance(parameters, dict):
        raise PayloadError(f"`parameters` must be an object, got {type(parameters).__name__}")
    _validate_parameters(parameters)
    return SummaryRequest(inputs=tuple(inputs), parameters=tuple(sorted(parameters.items())), listed=listed)


def _validate_parameters(parameters: dict[str, Any]) -> None:
    if "truncation" in parameters:
        raise PayloadError(
            "`parameters.truncation` is not supported: this endpoint never truncates; "
            "split long inputs on turn boundaries instead"
        )
    unknown = sorted(set(parameters) - SUPPORTED_PARAMETERS)
    if unknown:
        raise PayloadError(f"unsupported parameter(s) {unknown}; supported: {sorted(SUPPORTED_PARAMETERS)}")
    for name, value in parameters.items():
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if name in _INT_PARAMETERS:
            minimum = _INT_PARAMETERS[name]
            if not (isinstance(value, int) and not isinstance(value, bool)) or value < minimum:
                raise PayloadError(f"`parameters.{name}` must be an integer >= {minimum}, got {value!r}")
        elif name in _POSITIVE_NUMBER_PARAMETERS and (not is_number or value <= 0):
            raise PayloadError(f"`parameters.{name}` must be a number > 0, got {value!r}")
        elif name in _NUMBER_PARAMETERS and not is_number:
            raise PayloadError(f"`parameters.{name}` must be a number, got {value!r}")
        elif name in _BOOL_PARAMETERS and not isinstance(value, bool):
            raise PayloadError(f"`parameters.{name}` must be true or false, got {value!r}")
    if "top_p" in parameters and not 0 < parameters["top_p"] <= 1:
        raise PayloadError(f"`parameters.top_p` must be in (0, 1], got {parameters['top_p']!r}")
    for low, high in (("min_length", "max_length"), ("min_new_tokens", "max_new_tokens")):
        if low in parameters and high in parameters and parameters[low] > parameters[high]:
            raise PayloadError(
                f"`parameters.{low}` ({parameters[low]}) exceeds `parameters.{high}` ({parameters[high]})"
            )


def check_input_length(request: SummaryRequest, index: int, tokens: int, limit: int) -> None:
    """Refuse an input the model cannot read whole (callers chunk; we never truncate)."""
    if tokens > limit:
        raise PayloadError(
            f"{request.where(index)} is {tokens} tokens; the model reads at most {limit}: too long, "
            "split it on turn boundaries and summarize the parts"
        )


def response_body(summaries: list[str]) -> list[dict[str, str]]:
    return [{"summary_text": summary} for summary in summaries]


def deliver(body: list[dict[str, str]], sink: TokenSink | None) -> list[dict[str, str]] | None:
    """Return the body, or, for a streamed request, send it to the sink as one part."""
    if sink is None:
        return body
    sink(json.dumps(body, ensure_ascii=False).encode("utf-8"))
    return None
