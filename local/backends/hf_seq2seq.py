"""Summaries from a Hugging Face seq2seq model in a local directory (backend `hf-seq2seq`; `smoke-bart` uses it).

It speaks the summarizer contract (see `summary_contract`). Every input is measured with the model's own
tokenizer when the request arrives; one the model cannot read whole (context_tokens, or the model's
max_position_embeddings if smaller) is refused, never truncated. A batch is run through `generate` with
padding, one call per distinct set of parameters, and the summaries go back in input order.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from local.backends.base import Backend, TokenSink
from local.backends.hf_loading import load_for_cpu
from local.backends.summary_contract import (
    SummaryRequest,
    ToolkitFraming,
    check_input_length,
    deliver,
    parse_summary_request,
    response_body,
)


@dataclass(frozen=True)
class PreparedSummary:
    request: SummaryRequest
    input_ids: tuple[tuple[int, ...], ...]


class HuggingFaceSeq2SeqBackend(ToolkitFraming, Backend):
    def __init__(self, checkpoint: Path, context_tokens: int):
        self.label = f"hf-seq2seq: {checkpoint}"
        self.tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        self.model, self.max_input_tokens = load_for_cpu(AutoModelForSeq2SeqLM, checkpoint, context_tokens)
        self.pad_token_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        # Request threads encode while the worker decodes; the Rust tokenizer must not be used concurrently.
        self._tokenizer_lock = threading.Lock()

    def prepare(self, payload: Any) -> PreparedSummary:
        request = parse_summary_request(payload)
        with self._tokenizer_lock:
            encoded = [tuple(self.tokenizer(text)["input_ids"]) for text in request.inputs]
        for index, ids in enumerate(encoded):
            check_input_length(request, index, len(ids), self.max_input_tokens)
        return PreparedSummary(request, tuple(encoded))

    def run_batch(self, prepared: list[PreparedSummary], sinks: list[TokenSink | None]) -> list[Any]:
        # Inputs of all requests with the same parameters are generated together.
        groups: dict[tuple[tuple[str, Any], ...], list[tuple[int, int]]] = defaultdict(list)
        for request_index, item in enumerate(prepared):
            for input_index in range(len(item.input_ids)):
                groups[item.request.parameters].append((request_index, input_index))
        summaries: list[list[str]] = [[""] * len(item.input_ids) for item in prepared]
        failures: list[Exception | None] = [None] * len(prepared)
        for parameters, members in groups.items():
            try:
                texts = self._generate([prepared[r].input_ids[i] for r, i in members], dict(parameters))
            except Exception as exc:  # these parameters broke generation: only their requests fail
                for request_index, _ in members:
                    failures[request_index] = exc
                continue
            for (request_index, input_index), text in zip(members, texts, strict=True):
                summaries[request_index][input_index] = text
        results: list[Any] = []
        for failure, texts, sink in zip(failures, summaries, sinks, strict=True):
            if failure is not None:
                results.append(failure)
                continue
            try:
                results.append(deliver(response_body(texts), sink))
            except Exception as exc:  # the client went away
                results.append(exc)
        return results

    @torch.inference_mode()
    def _generate(self, inputs: list[tuple[int, ...]], parameters: dict[str, Any]) -> list[str]:
        width = max(len(ids) for ids in inputs)
        input_ids = torch.full((len(inputs), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(inputs), width), dtype=torch.long)
        for index, ids in enumerate(inputs):  # the encoder reads padding on the right, masked out
            input_ids[index, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention_mask[index, : len(ids)] = 1
        output = self.model.generate(input_ids=input_ids, attention_mask=attention_mask, **parameters)
        with self._tokenizer_lock:
            texts = self.tokenizer.batch_decode(output, skip_special_tokens=True)
        return [text.strip() for text in texts]
