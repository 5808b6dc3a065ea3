"""create_backend picks the backend a component's local settings name."""

from __future__ import annotations

from pathlib import Path

import pytest

from local.backends import create_backend
from local.backends.extractive import ExtractiveSummarizerBackend
from local.backends.hf_causal import HuggingFaceCausalBackend
from local.backends.hf_seq2seq import HuggingFaceSeq2SeqBackend
from local.backends.smoke import SmokeCausalBackend, SmokeSeq2SeqBackend
from local.backends.standin import StandinChatBackend


@pytest.mark.parametrize(
    ("backend", "kind"),
    [
        ("standin", StandinChatBackend),
        ("extractive", ExtractiveSummarizerBackend),
        ("smoke-llama", SmokeCausalBackend),
        ("smoke-bart", SmokeSeq2SeqBackend),
    ],
)
def test_weightless_and_smoke_backends(component, backend: str, kind: type):
    # Given a component configured with a backend that needs no checkpoint
    # When its backend is created
    created = create_backend("chat", component(backend))
    # Then it is the named kind, labelled for the endpoint status
    assert type(created) is kind
    assert created.label.startswith(backend)


def test_smoke_backends_say_their_output_is_noise(component):
    # Given both smoke backends, then their labels warn that the text means nothing
    for backend in ("smoke-llama", "smoke-bart"):
        assert "random weights: output is noise" in create_backend("c", component(backend)).label


def test_checkpoint_backends_load_the_configured_directory(component, smoke_llama_dir: Path, smoke_bart_dir: Path):
    # Given components pointing at local checkpoints
    chat = create_backend("chat", component("hf-causal", checkpoint=smoke_llama_dir, context_tokens=4096))
    summarizer = create_backend("summarizer", component("hf-seq2seq", checkpoint=smoke_bart_dir, context_tokens=4096))
    # Then they load them, and the context is limited by what the model can read
    assert isinstance(chat, HuggingFaceCausalBackend) and str(smoke_llama_dir) in chat.label
    assert isinstance(summarizer, HuggingFaceSeq2SeqBackend) and str(smoke_bart_dir) in summarizer.label
    assert chat.context_tokens == chat.model.config.max_position_embeddings < 4096
    assert summarizer.max_input_tokens == summarizer.model.config.max_position_embeddings


def test_every_copy_of_a_smoke_model_is_the_same_model(component):
    # Given two copies of a smoke chat component
    first, second = (create_backend("chat", component("smoke-llama")) for _ in range(2))
    request = {"inputs": "Hello there", "parameters": {"max_new_tokens": 8}}
    # Then they answer a greedy request identically (copies are interchangeable, as on SageMaker)
    assert first.run_batch([first.prepare(request)], [None]) == second.run_batch([second.prepare(request)], [None])
