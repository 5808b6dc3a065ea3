"""Loading a Hugging Face checkpoint for CPU serving, shared by the causal and seq2seq backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def load_for_cpu(auto_class: Any, checkpoint: Path, context_tokens: int) -> tuple[Any, int]:
    """The model in eval mode, and how many tokens it reads: the configured context, capped by its positions."""
    model = auto_class.from_pretrained(checkpoint, dtype="auto")
    if model.dtype == torch.float16:  # half precision is for GPUs; on CPU bfloat16 keeps the memory saving
        model = model.to(torch.bfloat16)
    model_limit = getattr(model.config, "max_position_embeddings", None) or context_tokens
    return model.eval(), min(context_tokens, model_limit)
