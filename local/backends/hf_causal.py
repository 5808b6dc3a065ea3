"""Chat from a Hugging Face causal LM in a local directory (backend `hf-causal`; `smoke-llama` uses it too).

It speaks the chat contract and frames answers and refusals as described in `chat_contract` (as the LMI container
does).
Messages are rendered with the tokenizer's chat template, or in the Llama-2 `[INST]` / `<<SYS>>` format when the
tokenizer has none.

A batch is generated together by a manual decode loop rather than `model.generate`, so that every row keeps
its own settings (max_new_tokens, greedy or sampling with its temperature / top_p / top_k / seed, stop
sequences) and leaves the batch as soon as it is done: prompts are LEFT-padded, position ids follow the
attention mask, the key/value cache (DynamicCache) grows one token per step, and finished rows are dropped
from it. Streamed rows (`messages` with `"stream": true`) get each new piece of text as soon as it decodes to
whole characters; text that might be the start of a stop sequence is held back until it is known not to be one.
Text is decoded incrementally (`IncrementalDecoder`), so the tokenizer work per step stays the same however long
an answer grows.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from jinja2 import TemplateError
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

from local.backends.base import Backend, TokenSink
from local.backends.chat_contract import (
    ChatAnswer,
    ChatForm,
    ChatRequest,
    EngineRefusal,
    FinishReason,
    GenerationParameters,
    LmiFraming,
    Message,
    find_stop,
    parse_chat_request,
    resolve_max_new_tokens,
    safe_to_emit,
)
from local.backends.hf_loading import load_for_cpu

_INCOMPLETE_CHARACTER = "\ufffd"  # what decoding shows for a multi-byte character cut between tokens


def llama2_prompt(messages: tuple[Message, ...], bos: str = "<s>", eos: str = "</s>") -> str:
    """Render messages in Meta's Llama-2 chat format: `<s>[INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n{user} [/INST]`,
    each earlier exchange closed by ` {answer} </s>`. User and assistant turns must alternate, user first."""
    system = messages[0].content.strip() if messages[0].role == "system" else None
    turns = messages[1:] if system is not None else messages
    for index, message in enumerate(turns):
        expected = "user" if index % 2 == 0 else "assistant"
        if message.role != expected:
            position = index + (1 if system is not None else 0)
            raise EngineRefusal(  # in the LMI container the chat package's Llama-2 template refuses it, in vLLM
                f"message {position} is from {message.role!r} but the Llama-2 chat format needs user and assistant "
                f"turns to alternate, starting with the user (expected {expected!r})"
            )
    users = [message.content.strip() for message in turns[0::2]]
    answers = [message.content.strip() for message in turns[1::2]]
    if system is not None:
        users[0] = f"<<SYS>>\n{system}\n<</SYS>>\n\n{users[0]}"
    exchanges = [f"{bos}[INST] {user} [/INST] {answer} {eos}" for user, answer in zip(users, answers, strict=False)]
    return "".join(exchanges) + f"{bos}[INST] {users[-1]} [/INST]"


@dataclass(frozen=True)
class PreparedChat:
    request: ChatRequest
    prompt_ids: tuple[int, ...]
    max_new_tokens: int


class IncrementalDecoder:
    """The text of a growing list of generated tokens, decoding only a short window of them per token.

    Each new token is decoded together with the window of tokens settled just before it (so tokenizers that
    drop a leading space at the start of a decode, like SentencePiece's, still give it its space); the text
    the new token adds is what follows the window's own text. A token that ends inside a multi-byte
    character leaves the text provisional (ending in U+FFFD) and the window open until the character is
    whole. The decoding work per token does not depend on how long the answer already is.
    """

    def __init__(self, decode: Callable[[Sequence[int]], str]):
        self._decode = decode
        self.token_ids: list[int] = []
        self.text = ""  # the text of every token so far (provisional at the end while a character is cut)
        self._settled = ""  # text of token_ids[:read], ending on a whole character
        self._window_start = 0
        self._read = 0

    def add(self, token: int) -> str:
        """Take one token; return the whole text so far."""
        self.token_ids.append(token)
        window_text = self._decode(self.token_ids[self._window_start : self._read])
        new_text = self._decode(self.token_ids[self._window_start :])
        if new_text.startswith(window_text):
            self.text = self._settled + new_text[len(window_text) :]
        elif self._settled.endswith(window_text):  # the new token changed how the window reads (space clean-up)
            self.text = self._settled[: len(self._settled) - len(window_text)] + new_text
        else:
            self.text = self._decode(self.token_ids)
        if not self.text.endswith(_INCOMPLETE_CHARACTER):
            self._settled = self.text
            self._window_start, self._read = self._read, len(self.token_ids)
        return self.text


@dataclass
class _Row:
    """One request's state during generation."""

    prepared: PreparedChat
    answer: ChatAnswer
    generator: torch.Generator | None
    decoder: IncrementalDecoder
    text: str = ""
    emitted: int = 0
    finish_reason: FinishReason | None = None
    error: Exception | None = None
    result: Any = None  # what the answer's `finish` returned

    @property
    def parameters(self) -> GenerationParameters:
        return self.prepared.request.parameters

    @property
    def token_ids(self) -> list[int]:
        return self.decoder.token_ids

    @property
    def done(self) -> bool:
        return self.finish_reason is not None or self.error is not None


class HuggingFaceCausalBackend(LmiFraming, Backend):
    def __init__(self, component_name: str, checkpoint: Path, context_tokens: int):
        self.component_name = component_name
        self.label = f"hf-causal: {checkpoint}"
        self.tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        self.model, self.context_tokens = load_for_cpu(AutoModelForCausalLM, checkpoint, context_tokens)
        accepted = inspect.signature(self.model.forward).parameters
        # Most causal LMs take position ids (needed with left padding) and can skip logits of the prompt.
        self._takes_position_ids = "position_ids" in accepted
        self._takes_logits_to_keep = "logits_to_keep" in accepted
        self.pad_token_id = self._pad_token_id()
        self.eos_token_ids = self._eos_token_ids()
        # Request threads encode while the worker decodes; the Rust tokenizer must not be used concurrently.
        self._tokenizer_lock = threading.Lock()

    def _pad_token_id(self) -> int:
        for candidate in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id, 0):
            if candidate is not None:
                return candidate
        return 0

    def _eos_token_ids(self) -> frozenset[int]:
        configured = self.model.generation_config.eos_token_id
        ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return frozenset(ids)

    # -- request thread -------------------------------------------------------------------------------------

    def prepare(self, payload: Any) -> PreparedChat:
        request = parse_chat_request(payload)
        prompt_ids = self.encode_prompt(request)
        max_new_tokens = resolve_max_new_tokens(request.parameters, len(prompt_ids), self.context_tokens)
        return PreparedChat(request, prompt_ids, max_new_tokens)

    def render_prompt(self, request: ChatRequest) -> str:
        """The prompt text the model reads (chat template, or Llama-2 format without one)."""
        if request.form is ChatForm.INPUTS:
            return request.prompt
        if not self.tokenizer.chat_template:
            return llama2_prompt(
                request.messages, self.tokenizer.bos_token or "<s>", self.tokenizer.eos_token or "</s>"
            )
        conversation = [{"role": message.role, "content": message.content} for message in request.messages]
        try:
            with self._tokenizer_lock:
                return self.tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        except TemplateError as exc:  # templates reject what their model can't read (e.g. a system role)
            raise EngineRefusal(f"the model's chat template refused the messages: {exc}") from None

    def encode_prompt(self, request: ChatRequest) -> tuple[int, ...]:
        text = self.render_prompt(request)
        # Chat templates and the Llama-2 format already hold the BOS token; a plain prompt gets the tokenizer's.
        add_special_tokens = request.form is ChatForm.INPUTS
        with self._tokenizer_lock:
            ids = self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]
        if not ids:
            raise EngineRefusal("the prompt encodes to no tokens")
        return tuple(ids)

    # -- copy worker thread ---------------------------------------------------------------------------------

    def run_batch(self, prepared: list[PreparedChat], sinks: list[TokenSink | None]) -> list[Any]:
        rows = [
            _Row(
                prepared=item,
                answer=ChatAnswer(item.request, sink, model=self.component_name),
                generator=_generator(item.request.parameters),
                decoder=IncrementalDecoder(self._decode),
            )
            for item, sink in zip(prepared, sinks, strict=True)
        ]
        try:
            self._generate(rows)
        except Exception as exc:  # the model itself failed: every request of the batch gets the error
            return [exc] * len(rows)
        return [self._result(row) for row in rows]

    @staticmethod
    def _result(row: _Row) -> Any:
        assert row.done  # _generate runs every row to completion
        return row.error if row.error is not None else row.result

    @torch.inference_mode()
    def _generate(self, rows: list[_Row]) -> None:
        width = max(len(row.prepared.prompt_ids) for row in rows)
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for index, row in enumerate(rows):
            prompt = row.prepared.prompt_ids
            input_ids[index, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
            attention_mask[index, width - len(prompt) :] = 1
        cache = DynamicCache(config=self.model.config)
        active = list(rows)
        while True:
            extra: dict[str, Any] = {}
            if self._takes_position_ids:
                extra["position_ids"] = (attention_mask.cumsum(-1) - 1).clamp(min=0)[:, -input_ids.shape[1] :]
            if self._takes_logits_to_keep:
                extra["logits_to_keep"] = 1
            output = self.model(
                input_ids=input_ids, attention_mask=attention_mask, past_key_values=cache, use_cache=True, **extra
            )
            logits = output.logits[:, -1, :].float()
            next_tokens = [self._next_token(row, logits[index]) for index, row in enumerate(active)]
            for row, token in zip(active, next_tokens, strict=True):
                self._advance(row, token)
            keep = [index for index, row in enumerate(active) if not row.done]
            if not keep:
                return
            if len(keep) < len(active):  # finished rows leave the batch and the cache
                selected = torch.tensor(keep, dtype=torch.long)
                cache.batch_select_indices(selected)
                attention_mask = attention_mask[selected]
                active = [active[index] for index in keep]
                next_tokens = [next_tokens[index] for index in keep]
            input_ids = torch.tensor(next_tokens, dtype=torch.long).unsqueeze(-1)
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones((len(active), 1))], dim=-1)

    @staticmethod
    def _next_token(row: _Row, logits: torch.Tensor) -> int:
        parameters = row.parameters
        if not parameters.do_sample:
            return int(logits.argmax())
        logits = logits / parameters.temperature
        if parameters.top_k:
            threshold = torch.topk(logits, min(parameters.top_k, logits.shape[-1])).values[-1]
            logits = logits.masked_fill(logits < threshold, float("-inf"))
        if parameters.top_p < 1:
            ordered, order = torch.sort(logits, descending=True)
            cumulative = ordered.softmax(-1).cumsum(-1)
            # Drop a token once the tokens before it already cover top_p (the most likely one always stays).
            dropped = (cumulative - ordered.softmax(-1)) >= parameters.top_p
            logits = logits.scatter(0, order[dropped], float("-inf"))
        probabilities = logits.softmax(-1)
        return int(torch.multinomial(probabilities, 1, generator=row.generator))

    def _decode(self, token_ids: Sequence[int]) -> str:
        if not token_ids:
            return ""
        with self._tokenizer_lock:
            return self.tokenizer.decode(token_ids, skip_special_tokens=True)

    def _advance(self, row: _Row, token: int) -> None:
        """Take one generated token: update the row's text, stream what is settled, decide if it is done."""
        if token in self.eos_token_ids:
            self._finish(row, "stop")
            return
        text = row.decoder.add(token)
        stop = row.parameters.stop
        longest_stop = max((len(sequence) for sequence in stop), default=0)
        cut = find_stop(text, stop, max(row.emitted - longest_stop, 0))
        if cut is not None:
            row.text = text[:cut]
            self._finish(row, "stop")
        elif len(row.token_ids) >= row.prepared.max_new_tokens:
            row.text = text
            self._finish(row, "length")
        else:
            row.text = text
            if row.answer.streams and not text.endswith(_INCOMPLETE_CHARACTER):
                self._emit(row, safe_to_emit(text, stop))

    def _emit(self, row: _Row, upto: int) -> None:
        if not row.answer.streams or upto <= row.emitted:
            return
        try:
            row.answer.piece(row.text[row.emitted : upto])
        except Exception as exc:  # the client went away: this row stops, the rest of the batch goes on
            row.error = exc
        row.emitted = upto

    def _finish(self, row: _Row, reason: FinishReason) -> None:
        self._emit(row, len(row.text))
        row.finish_reason = reason
        if row.error is None:
            try:
                row.result = row.answer.finish(
                    row.text, reason, prompt_tokens=len(row.prepared.prompt_ids), completion_tokens=len(row.token_ids)
                )
            except Exception as exc:  # the client went away before the answer's last part
                row.error = exc


def _generator(parameters: GenerationParameters) -> torch.Generator | None:
    """A per-request random generator when the request gives a seed (others share torch's default one)."""
    if not parameters.do_sample or parameters.seed is None:
        return None
    return torch.Generator().manual_seed(parameters.seed)
