"""Fixtures for the backend tests: smoke checkpoints built once per session, components to create backends from."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from local.backends.hf_causal import HuggingFaceCausalBackend
from local.backends.hf_seq2seq import HuggingFaceSeq2SeqBackend
from local.backends.smoke import make_smoke_causal_lm, make_smoke_seq2seq
from provisioning.config import Component


@pytest.fixture(scope="session")
def smoke_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_smoke_causal_lm(tmp_path_factory.mktemp("smoke-llama"))


@pytest.fixture(scope="session")
def smoke_llama_without_template_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_smoke_causal_lm(tmp_path_factory.mktemp("smoke-llama-plain"), chat_template=False)


@pytest.fixture(scope="session")
def smoke_bart_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_smoke_seq2seq(tmp_path_factory.mktemp("smoke-bart"))


@pytest.fixture(scope="session")
def causal_backend(smoke_llama_dir: Path) -> HuggingFaceCausalBackend:
    return HuggingFaceCausalBackend("chat", smoke_llama_dir, context_tokens=1024)


@pytest.fixture(scope="session")
def seq2seq_backend(smoke_bart_dir: Path) -> HuggingFaceSeq2SeqBackend:
    return HuggingFaceSeq2SeqBackend(smoke_bart_dir, context_tokens=1024)


def make_component(backend: str, *, checkpoint: Path | None = None, context_tokens: int = 1024) -> Component:
    kind = "lmi" if backend in {"standin", "hf-causal", "smoke-llama"} else "huggingface"
    return Component.model_validate(
        {
            "container": {"kind": kind, "image_version": "1", "model_id": "local/test"},
            "local": {"backend": backend, "checkpoint": checkpoint, "context_tokens": context_tokens},
        }
    )


@pytest.fixture
def component() -> Callable[..., Component]:
    return make_component


@pytest.fixture
def run_streamed() -> Callable[[Any, dict[str, Any]], tuple[list[dict[str, Any]], Any]]:
    """Runs one request through a sink (InvokeEndpointWithResponseStream): returns the JSON lines its sink received,
    without the empty line that ends a stream (vLLM's [DONE]), and run_batch's return value."""

    def run(backend: Any, payload: dict[str, Any]) -> tuple[list[dict[str, Any]], Any]:
        parts: list[bytes] = []
        [result] = backend.run_batch([backend.prepare(payload)], [parts.append])
        text = b"".join(parts).decode("utf-8")
        assert all(part.endswith(b"\n") for part in parts), "every part holds whole lines"
        return [json.loads(line) for line in text.splitlines() if line], result

    return run
