"""The default chat backend: a deterministic stand-in that needs no weights.

It answers readably and says plainly that it is a stand-in, so the local stack can be demonstrated and
tested without a model. It speaks the whole chat contract (see `chat_contract`), and frames its answers and its
refusals as the LMI container does: it honours max_new_tokens (counted in words) and stop sequences, and streams
word by word when a `messages` request asks for `"stream": true`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from chatbot.tokens import estimate_tokens

from local.backends.base import Backend, TokenSink
from local.backends.chat_contract import (
    ChatAnswer,
    ChatForm,
    ChatRequest,
    FinishReason,
    LmiFraming,
    find_stop,
    parse_chat_request,
    resolve_max_new_tokens,
)

_QUOTE_WORDS = 30


@dataclass(frozen=True)
class _Prepared:
    request: ChatRequest
    prompt_tokens: int
    max_new_tokens: int


class StandinChatBackend(LmiFraming, Backend):
    label = "standin: deterministic local stand-in, not a language model"

    def __init__(self, component_name: str, context_tokens: int):
        self.component_name = component_name
        self.context_tokens = context_tokens

    def prepare(self, payload: Any) -> _Prepared:
        request = parse_chat_request(payload)
        texts = [request.prompt] if request.form is ChatForm.INPUTS else [m.content for m in request.messages]
        prompt_tokens = sum(estimate_tokens(text) for text in texts)
        max_new_tokens = resolve_max_new_tokens(request.parameters, prompt_tokens, self.context_tokens)
        return _Prepared(request, prompt_tokens, max_new_tokens)

    def run_batch(self, prepared: list[_Prepared], sinks: list[TokenSink | None]) -> list[Any]:
        results: list[Any] = []
        for item, sink in zip(prepared, sinks, strict=True):
            try:
                results.append(self._serve(item, sink))
            except Exception as exc:  # one failed request must not fail its batch
                results.append(exc)
        return results

    def _serve(self, item: _Prepared, sink: TokenSink | None) -> Any:
        words = re.findall(r"\s*\S+", standin_answer(item.request))
        finish_reason: FinishReason = "stop"
        if len(words) > item.max_new_tokens:
            words, finish_reason = words[: item.max_new_tokens], "length"
        pieces = []
        text = ""
        for word in words:
            candidate = text + word
            cut = find_stop(candidate, item.request.parameters.stop)
            if cut is not None:
                pieces.append(candidate[len(text) : cut])
                text, finish_reason = candidate[:cut], "stop"
                break
            pieces.append(word)
            text = candidate
        answer = ChatAnswer(item.request, sink, model=self.component_name)
        for piece in pieces:
            answer.piece(piece)
        return answer.finish(text, finish_reason, prompt_tokens=item.prompt_tokens, completion_tokens=len(pieces))


def standin_answer(request: ChatRequest) -> str:
    """The stand-in's reply: what it was asked, how much context it got, and that it is not a real model."""
    if request.form is ChatForm.INPUTS:
        return (
            f"This is the local stand-in chat model, not a real language model. "
            f"You sent a prompt of {len(request.prompt.split())} words that begins: {_quote(request.prompt)} "
            "Configure a real checkpoint (local backend hf-causal) for generated answers."
        )
    earlier_turns = sum(1 for message in request.messages[:-1] if message.role != "system")
    context = f"{earlier_turns} earlier turn{'s' if earlier_turns != 1 else ''} of conversation"
    system = "and a system prompt" if request.system_prompt is not None else "and no system prompt"
    return (
        f"This is the local stand-in chat model, not a real language model, so I cannot really answer. "
        f"You said: {_quote(request.messages[-1].content)} "
        f"I received {context} {system}. "
        "Configure a real checkpoint (local backend hf-causal) for generated answers."
    )


def _quote(text: str) -> str:
    words = text.split()
    shown = " ".join(words[:_QUOTE_WORDS]) + (" …" if len(words) > _QUOTE_WORDS else "")
    return f"“{shown}”"
