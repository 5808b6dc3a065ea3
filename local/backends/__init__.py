"""Model backends of the local endpoint: one instance serves one copy of an inference component.

`create_backend(component_name, component)` picks the backend named by `component.local.backend`:

| backend       | serves     | weights                                                                |
|---------------|------------|------------------------------------------------------------------------|
| `standin`     | chat       | none: a deterministic stand-in that says so                            |
| `vllm`        | chat       | the LMI container's serving code (vLLM) in its own process (`container`) |
| `hf-causal`   | chat       | a Hugging Face causal LM directory (`component.local.checkpoint`)      |
| `smoke-llama` | chat       | a tiny random Llama built on the fly (output is noise)                 |
| `extractive`  | summarizer | none: an extractive dialogue summarizer                                |
| `hf-toolkit`  | summarizer | the Hugging Face inference toolkit in its own process (`container`)    |
| `hf-seq2seq`  | summarizer | a Hugging Face seq2seq directory (`component.local.checkpoint`)        |
| `smoke-bart`  | summarizer | a tiny random BART built on the fly (output is noise)                  |

The chat contract and its streaming line formats are in `chat_contract`, the summarizer's in `summary_contract`.
torch and transformers are imported only when a Hugging Face backend is created.
"""

from __future__ import annotations

from local.backends.base import Backend, ModelBackend, PayloadError, TokenSink
from provisioning.config import Component

__all__ = ["Backend", "ModelBackend", "PayloadError", "TokenSink", "create_backend"]


def create_backend(component_name: str, component: Component) -> ModelBackend:
    """A new backend for one copy of `component_name`, as its `local` settings say."""
    local = component.local
    match local.backend:
        case "standin":
            from local.backends.standin import StandinChatBackend

            return StandinChatBackend(component_name, local.context_tokens)
        case "vllm":
            from local.backends.container import lmi_container

            return lmi_container(component_name, component)
        case "hf-toolkit":
            from local.backends.container import huggingface_container

            return huggingface_container(component_name, component)
        case "extractive":
            from local.backends.extractive import ExtractiveSummarizerBackend

            return ExtractiveSummarizerBackend(local.context_tokens)
        case "hf-causal":
            from local.backends.hf_causal import HuggingFaceCausalBackend

            assert local.checkpoint is not None  # the config requires it for this backend
            return HuggingFaceCausalBackend(component_name, local.checkpoint, local.context_tokens)
        case "hf-seq2seq":
            from local.backends.hf_seq2seq import HuggingFaceSeq2SeqBackend

            assert local.checkpoint is not None  # the config requires it for this backend
            return HuggingFaceSeq2SeqBackend(local.checkpoint, local.context_tokens)
        case "smoke-llama":
            from local.backends.smoke import SmokeCausalBackend

            return SmokeCausalBackend(component_name, local.context_tokens)
        case "smoke-bart":
            from local.backends.smoke import SmokeSeq2SeqBackend

            return SmokeSeq2SeqBackend(local.context_tokens)
    raise ValueError(f"component {component_name!r}: unknown local backend {local.backend!r}")
