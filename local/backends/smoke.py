"""Smoke models: tiny, randomly initialised Llama-style and BART-style checkpoints built on the fly.

They exist to exercise the real loading, batching, streaming and generation code of the Hugging Face
backends without downloading anything: a byte-level BPE tokenizer is trained on a few sentences, a model
with two small layers is created from its config with a fixed seed (so every build, and every copy, is the
same model), and both are saved with `save_pretrained` into a directory that the hf-causal / hf-seq2seq
code then loads like any checkpoint. A build takes a few hundredths of a second. Their output is noise.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from local.backends.hf_causal import HuggingFaceCausalBackend
from local.backends.hf_seq2seq import HuggingFaceSeq2SeqBackend

SMOKE_SEED = 0
# vLLM's CPU attention has kernels for a few head sizes only (64 among them); the hf backends take any.
VLLM_CPU_HEAD_DIM = 64
_HEADS = 4
_VOCAB_SIZE = 400
_MAX_POSITIONS = 1024  # BART's real input limit; the smoke Llama uses the same window
_CORPUS = [
    "Hello, how can I help you today?",
    "My internet connection keeps dropping every evening since Monday.",
    "I have reset the line and booked a technician for Thursday morning.",
    "The doctor asked about the pain and prescribed rest for two weeks.",
    "We agreed to ship the release on Friday after the last review.",
    "Thank you for calling, is there anything else I can do for you?",
    "The quick brown fox jumps over the lazy dog; 0123456789 é ü ß € 😀",
]
# A compact template in the usual role-tag style, so the smoke Llama exercises apply_chat_template.
SMOKE_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def _train_tokenizer(special_tokens: list[str], template: str) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=_VOCAB_SIZE,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS, trainer)
    used = [token for token in ("<s>", "</s>") if token in template]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=template, special_tokens=[(token, tokenizer.token_to_id(token)) for token in used]
    )
    return tokenizer


def make_smoke_causal_lm(directory: Path | str, *, chat_template: bool = True, head_dim: int = 8) -> Path:
    """Save a tiny random Llama and its tokenizer into directory (created if needed) and return it.

    Without `chat_template` the tokenizer has none, so the backend falls back to the Llama-2 prompt format.
    `head_dim` sizes the attention heads (hidden size: 4 heads of head_dim); vLLM needs `VLLM_CPU_HEAD_DIM`.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_train_tokenizer(specials, "<s> $A"),
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )
    if chat_template:
        tokenizer.chat_template = SMOKE_CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=_HEADS * head_dim,
        intermediate_size=2 * _HEADS * head_dim,
        num_hidden_layers=2,
        num_attention_heads=_HEADS,
        num_key_value_heads=2,
        max_position_embeddings=_MAX_POSITIONS,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = _seeded(LlamaForCausalLM, config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _seeded(model_class: Any, config: Any) -> Any:
    """The same random weights on every build, without disturbing anyone else's random state."""
    with torch.random.fork_rng():
        torch.manual_seed(SMOKE_SEED)
        return model_class(config)


def make_smoke_seq2seq(directory: Path | str) -> Path:
    """Save a tiny random BART and its tokenizer into directory (created if needed) and return it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    specials = ["<s>", "<pad>", "</s>", "<unk>"]  # BART's order: bos 0, pad 1, eos 2
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_train_tokenizer(specials, "<s> $A </s>"),
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )
    config = BartConfig(
        vocab_size=len(tokenizer),
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=_MAX_POSITIONS,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
        forced_bos_token_id=tokenizer.bos_token_id,
        init_std=0.5,  # wide random weights, so that different inputs give visibly different noise
    )
    model = _seeded(BartForConditionalGeneration, config)
    # Short noise is enough to exercise generation; a few tokens at least, as random weights may pick EOS first.
    model.generation_config.max_length = 32
    model.generation_config.min_length = 5
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    _name_tokenizer_class_for_transformers_4(directory)
    return directory


def _name_tokenizer_class_for_transformers_4(directory: Path) -> None:
    """transformers 5 records its tokenizer class as `TokenizersBackend`, a name 4.x cannot resolve (the
    Hugging Face inference image has 4.51.3); `PreTrainedTokenizerFast` names the same tokenizer.json-backed
    class in both, so the toolkit's container loads the checkpoint that the main venv builds."""
    path = directory / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    path.write_text(json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


class SmokeCausalBackend(HuggingFaceCausalBackend):
    """hf-causal serving a freshly built smoke Llama (the files are removed once loaded)."""

    def __init__(self, component_name: str, context_tokens: int):
        with tempfile.TemporaryDirectory(prefix="smoke-llama-") as directory:
            super().__init__(component_name, make_smoke_causal_lm(directory), context_tokens)
        self.label = "smoke-llama: tiny Llama, random weights: output is noise"


class SmokeSeq2SeqBackend(HuggingFaceSeq2SeqBackend):
    """hf-seq2seq serving a freshly built smoke BART (the files are removed once loaded)."""

    def __init__(self, context_tokens: int):
        with tempfile.TemporaryDirectory(prefix="smoke-bart-") as directory:
            super().__init__(make_smoke_seq2seq(directory), context_tokens)
        self.label = "smoke-bart: tiny BART, random weights: output is noise"
