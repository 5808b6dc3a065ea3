"""The Hugging Face seq2seq summarizer backend, driven by a smoke BART."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from local.backends.base import PayloadError
from local.backends.hf_seq2seq import HuggingFaceSeq2SeqBackend
from local.backends.smoke import SmokeSeq2SeqBackend

DIALOGUES = [
    "Agent: Hello, how can I help you today?\nCustomer: My internet connection keeps dropping.",
    "Doctor: The pain should ease with rest.",
    "Anna: We agreed to ship the release on Friday.\nBen: After the last review.",
]


def summaries(body: list[dict[str, str]]) -> list[str]:
    return [item["summary_text"] for item in body]


def test_smoke_bart_builds_and_loads_through_the_hf_seq2seq_code():
    # Given a smoke BART backend built on the fly
    backend = SmokeSeq2SeqBackend(context_tokens=1024)
    # Then it is a real transformers BART behind the hf-seq2seq code, reading at most 1024 tokens
    assert isinstance(backend, HuggingFaceSeq2SeqBackend)
    assert backend.model.config.model_type == "bart"
    assert backend.max_input_tokens == 1024
    assert "output is noise" in backend.label


def test_batch_returns_one_summary_per_input_in_order(seq2seq_backend: HuggingFaceSeq2SeqBackend):
    # Given one request with a list of dialogues and another with a single one, batched together
    listed = seq2seq_backend.prepare({"inputs": DIALOGUES})
    single = seq2seq_backend.prepare({"inputs": DIALOGUES[1]})
    # When the batch runs, and each dialogue runs alone
    listed_body, single_body = seq2seq_backend.run_batch([listed, single], [None, None])
    alone = [
        summaries(seq2seq_backend.run_batch([seq2seq_backend.prepare({"inputs": d})], [None])[0]) for d in DIALOGUES
    ]
    # Then every input has its own summary, in order, the same as alone
    assert summaries(listed_body) == [texts[0] for texts in alone]
    assert summaries(single_body) == alone[1]
    assert len(set(summaries(listed_body))) == len(DIALOGUES)


def test_summaries_match_generate_on_each_input(seq2seq_backend: HuggingFaceSeq2SeqBackend):
    # Given the model's own generate on one dialogue
    tokenizer = seq2seq_backend.tokenizer
    with torch.inference_mode():
        output = seq2seq_backend.model.generate(**tokenizer(DIALOGUES[0], return_tensors="pt"), num_beams=2)
    expected = tokenizer.decode(output[0], skip_special_tokens=True).strip()
    # When the backend summarizes it with the same parameters
    [body] = seq2seq_backend.run_batch(
        [seq2seq_backend.prepare({"inputs": DIALOGUES[0], "parameters": {"num_beams": 2}})], [None]
    )
    # Then it is the same text
    assert summaries(body) == [expected]


def test_requests_with_different_parameters_each_get_theirs(seq2seq_backend: HuggingFaceSeq2SeqBackend):
    # Given two requests for the same text with different max_new_tokens, batched together
    payloads: list[dict[str, Any]] = [
        {"inputs": DIALOGUES[0], "parameters": {"max_new_tokens": 4}},
        {"inputs": DIALOGUES[0], "parameters": {"max_new_tokens": 12, "min_new_tokens": 12}},
    ]
    # When the batch runs
    short, long = seq2seq_backend.run_batch([seq2seq_backend.prepare(p) for p in payloads], [None, None])
    # Then each got its own length
    count = [
        len(seq2seq_backend.tokenizer(summaries(body)[0], add_special_tokens=False)["input_ids"])
        for body in (short, long)
    ]
    assert count[0] < count[1]


def test_input_longer_than_the_model_reads_is_refused(seq2seq_backend: HuggingFaceSeq2SeqBackend):
    # Given a second input longer than BART's 1024 tokens
    too_long = "Customer: my order has not arrived yet. " * 150
    tokens = len(seq2seq_backend.tokenizer(too_long)["input_ids"])
    # When it is prepared, then it is refused with its length and the limit, never truncated
    with pytest.raises(PayloadError) as caught:
        seq2seq_backend.prepare({"inputs": [DIALOGUES[0], too_long]})
    assert f"inputs[1]: input is {tokens} tokens; the model reads at most 1024" in str(caught.value)


def test_context_tokens_below_the_model_limit_is_the_limit(smoke_bart_dir):
    # Given a component configured to read at most 16 tokens
    backend = HuggingFaceSeq2SeqBackend(smoke_bart_dir, context_tokens=16)
    # Then a longer input is refused by that limit
    with pytest.raises(PayloadError, match="the model reads at most 16"):
        backend.prepare({"inputs": DIALOGUES[0]})


def test_generation_failure_fails_only_the_requests_that_caused_it(
    seq2seq_backend: HuggingFaceSeq2SeqBackend, monkeypatch: pytest.MonkeyPatch
):
    # Given a model whose generate fails for one setting of parameters (say, out of memory with 3 beams)
    real_generate = seq2seq_backend.model.generate

    def generate(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("num_beams") == 3:
            raise RuntimeError("out of memory")
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(seq2seq_backend.model, "generate", generate)
    failing = seq2seq_backend.prepare({"inputs": DIALOGUES[0], "parameters": {"num_beams": 3}})
    good = seq2seq_backend.prepare({"inputs": DIALOGUES[1]})
    # When both run in one batch
    failed, answered = seq2seq_backend.run_batch([failing, good], [None, None])
    # Then only the request with those parameters fails, with the model's error
    assert isinstance(failed, RuntimeError) and "out of memory" in str(failed)
    assert len(summaries(answered)) == 1
