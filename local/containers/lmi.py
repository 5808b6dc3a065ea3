"""The LMI container (DJL Serving 0.35.0, vLLM async mode) on loopback: `python -m local.containers.lmi --port P
--model-dir DIR`, run in .venv-vllm.

DIR holds what the chat package holds (provisioning/packaging.py): `model.py` with the request/response hooks and
`serving.properties` (locally `option.model_id` is a checkpoint directory). The module is LMI's request path written
again over vLLM itself: one asyncio loop in a thread runs the engine and every request (as LMI's python engine does),
each HTTP thread hands its request to that loop, and vLLM batches whatever is in flight (`max_num_seqs` from
`option.max_rolling_batch_size`).

Mirrored, from djl-serving branch 0.35.0-dlc (Python paths under engines/python/setup/djl_python/):
- properties: wlm/.../ModelInfo.java:881-912 (serving.properties first; an OPTION_* variable only fills a key the
  file lacks) and :599-604 (`option.` dropped); properties_manager/properties.py:93-98 (model_id, else model_dir);
  properties_manager/vllm_rb_properties.py:33-51, 182-228 (LMI names -> vLLM engine args, any other vLLM engine arg
  passed through, all parsed by vLLM's own argument parser).
- hooks: service_loader.py:88-123 (first callable in model.py carrying `is_input_formatter` /
  `is_output_formatter`); custom_formatter_handling.py:98-129 (a raising hook becomes CustomFormatterError).
- engine and services: lmi_vllm/vllm_async_service.py:79-133.
- a request: vllm_async_service.py:135-217 (decode, input hook, route by `prompt` / `messages`) and :226-267 (output
  hook, then LMI's formatter); encode_decode.py:63-90; lmi_vllm/request_response_utils.py:163-187;
  async_utils.py:23-117 (every answer is `data` + "\n", buffered as application/json, streamed as
  application/jsonlines, one line per vLLM SSE event).
- failures: python_async_engine.py:58-90 (an exception escaping the handler -> code 424) and, on the Java side,
  AsyncRequestManager.java:109-127 (its body: the frontend's Output object, without the exception's text).
- HTTP framing: Request.java:91-146 (an output with `code` -> that status and `{"error": ..., "code": N}`, by Gson)
  and InferenceRequestHandler.java:413-452 (status from the first chunk; a one-chunk answer is sent whole).

Where vLLM 0.32 (here) differs from the 0.11.1 the container ships (LMI's pyproject.toml:37 still says vllm==0.10.2,
but vllm_async_service.py:26-27 and vllm_rb_properties.py:18 import modules that appeared in 0.11, and
serving/docs/lmi/user_guides/vllm_user_guide.md:11 names 0.11.1), the mirror adapts, each marked `vLLM 0.32:`:
- import paths: `vllm.entrypoints.openai.protocol`, `.serving_chat`, `.serving_completion`, `.serving_models`
  (vllm_async_service.py:19-25, request_response_utils.py:15-22) are now `vllm.entrypoints.openai.{chat_completion,
  completion,models}.{protocol,serving}` and `vllm.entrypoints.serve.engine.protocol` (ErrorResponse).
- the serving classes take an `online_renderer` (vllm_async_service.py:109-130 builds them without one), and
  `reasoning_parser` must be a string where LMI passes None.
- `get_tokenizer()` is synchronous (awaited at vllm_async_service.py:96).
- bad input: 0.11.1's serving classes return an ErrorResponse (400) for prompts too long, sampling parameters out of
  range and template errors (vLLM 0.11.1 serving_chat.py:256-258, 346-348; serving_completion.py:136-147); 0.32
  raises them (VLLMValidationError and others), so the mirror turns them into the ErrorResponse vLLM's own server
  would send. The messages' wording differs between the versions.
- ErrorResponse has nested its fields under `error` since vLLM 0.10.1, in 0.11.1 as here: LMI 0.35.0's
  `response.message` (request_response_utils.py:167-170) fails on both, and the mirror keeps that failure.

Not mirrored: LMI's TGI schema for `inputs` (the chat package converts every such request itself), LoRA adapters,
stateful sessions, a `handle` function or SageMaker-style hooks in model.py, content types other than JSON and text,
uvloop. Local settings for CPU, used only where the properties leave them unset (OPTION_* variables set them like
any LMI option): `LOCAL_DEFAULTS` below.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import os
import re
import signal
import sys
import threading
import types
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local.containers.server import ContainerResponse, InvocationHandler, container_arguments, serve

logger = logging.getLogger(__name__)
# vLLM is imported where it is used: its engine core and workers start with `spawn`, which runs this module again
# in each of them, and they need none of the serving stack.

# The GPU defaults (0.9 of the GPU for the KV cache, CUDA graphs) do not fit a CPU: vLLM's CPU backend reads the
# fraction against the NUMA node's memory, and eager mode skips a long compile.
LOCAL_DEFAULTS = {"gpu_memory_utilization": "0.1", "enforce_eager": "true"}
_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "float16": "float16",
    "fp16": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "auto": "auto",
}
# Properties LMI reads itself (vllm_rb_properties.py:55-85, 182-201): they never pass through under vLLM's name.
_LMI_OWNED = frozenset(
    {
        *("model_id", "model_dir", "tensor_parallel_degree", "pipeline_parallel_degree", "max_rolling_batch_size"),
        *("dtype", "revision", "trust_remote_code", "quantize", "max_rolling_batch_prefill_tokens", "device"),
        *("chat_template", "chat_template_content_format", "enable_auto_tool_choice", "tool_call_parser"),
        *("reasoning_parser", "task", "max_loras", "enable_lora"),
    }
)
_HANDLER_FAILURE = "service.invoke_handler_async() failure"


def load_properties(model_dir: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """The handler's properties: serving.properties, OPTION_* variables for keys it lacks, `option.` dropped."""
    found: dict[str, str] = {}
    file = model_dir / "serving.properties"
    if file.is_file():
        for line in file.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith(("#", "!")):
                key, _, value = line.partition("=")
                found[key.strip()] = value.strip()
    for name, value in environ.items():
        if not name.startswith("OPTION_") or not value:
            continue
        key = name.removeprefix("OPTION_")
        if re.fullmatch(r"[A-Z_\d]+", key):
            key = key.lower()
        if key == "engine":
            found.setdefault("engine", value)
            continue
        found.setdefault("option." + ("entryPoint" if key == "entrypoint" else key), value)
    properties = {key.removeprefix("option."): value for key, value in found.items() if key.startswith("option.")}
    properties["model_dir"] = str(model_dir)
    return {**LOCAL_DEFAULTS, **properties}


def engine_args(properties: Mapping[str, str]) -> Any:
    """vLLM's AsyncEngineArgs from LMI properties, through vLLM's own command-line parser as LMI does."""
    from vllm.engine.arg_utils import AsyncEngineArgs, EngineArgs
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    values: dict[str, Any] = {
        "model": properties.get("model_id") or properties["model_dir"],
        "tensor_parallel_size": properties.get("tensor_parallel_degree", "1"),
        "pipeline_parallel_size": properties.get("pipeline_parallel_degree", "1"),
        "max_num_seqs": properties.get("max_rolling_batch_size", "32"),
        "dtype": _dtype(properties.get("dtype", "auto")),
        "trust_remote_code": properties.get("trust_remote_code", "false"),
    }
    for lmi_name, vllm_name in (
        ("revision", "revision"),
        ("quantize", "quantization"),
        ("max_rolling_batch_prefill_tokens", "max_num_batched_tokens"),
    ):
        if lmi_name in properties:
            values[vllm_name] = properties[lmi_name]
    values |= {k: v for k, v in properties.items() if k in EngineArgs.__annotations__ and k not in _LMI_OWNED}
    parser = AsyncEngineArgs.add_cli_args(FlexibleArgumentParser())
    return AsyncEngineArgs.from_cli_args(parser.parse_args(_cli_arguments(values)))


def _dtype(value: str) -> str:
    if value not in _DTYPES:
        raise ValueError(f"Invalid dtype={value} provided. Must be one of {_DTYPES.keys()}")
    return _DTYPES[value]


def _cli_arguments(values: Mapping[str, Any]) -> list[str]:
    """LMI's construct_vllm_args_list: "true" / "false" become a flag or nothing, everything else `--key value`."""
    arguments = []
    for key, value in values.items():
        if str(value).lower() in {"true", "false"}:
            arguments += [f"--{key}"] if str(value).lower() == "true" else []
        else:
            arguments += [f"--{key}", str(value)]
    return arguments


def annotated_function(module: types.ModuleType, attribute: str) -> Callable[..., Any] | None:
    """service_loader.find_decorated_function: the first callable in model.py that carries the attribute."""
    for name in dir(module):
        candidate = getattr(module, name)
        if callable(candidate) and getattr(candidate, attribute, False):
            return candidate
    return None


class CustomFormatterError(Exception):
    """LMI's wrapper for anything a hook raises: the hook's own message stays in the log only."""


@dataclass
class LmiOutput:
    """One answer piece as djl_python hands it to the frontend (async_utils.py:50-78)."""

    data: str
    last: bool
    content_type: str
    error: str | None = None
    code: int | None = None


@dataclass
class EngineFailure:
    """An exception that escaped the handler (python_async_engine.py:63-78)."""

    code: int
    message: str


@dataclass
class _ProcessedRequest:
    request: Any
    invoke: Callable[[Any], Any]


def non_stream_output(data: str, error: str | None = None, code: int | None = None) -> LmiOutput:
    """async_utils.create_non_stream_output."""
    return LmiOutput(data + "\n", True, "application/json", error, code)


def stream_chunk_output(data: str, last: bool, error: str | None = None, code: int | None = None) -> LmiOutput:
    """async_utils.create_stream_chunk_output."""
    return LmiOutput(data + "\n", last, "application/jsonlines", error, code)


def decode(body: bytes, content_type: str | None) -> Any:
    """encode_decode.decode for the content types a chat client sends."""
    if not content_type:
        return json.loads(body) if body else {"inputs": ""}
    if "application/json" in content_type:
        return json.loads(body)
    if "text/plain" in content_type:
        return {"inputs": [body.decode("utf-8")]}
    return {"inputs": body}


def vllm_non_stream_output_formatter(response: Any) -> LmiOutput:
    from vllm.entrypoints.serve.engine.protocol import ErrorResponse  # vLLM 0.32: moved from openai.protocol

    if isinstance(response, ErrorResponse):
        # LMI 0.35.0 reads the pre-0.10.1 flat fields: without the chat package's fix this raises AttributeError.
        return non_stream_output("", error=response.message, code=response.code)
    return non_stream_output(response.model_dump_json())


def vllm_stream_output_formatter(chunk: str) -> tuple[str, bool]:
    data = chunk[6:].strip()  # vLLM's SSE events: 'data: {...}\n\n', then 'data: [DONE]\n\n'
    return ("", True) if data == "[DONE]" else (data, False)


async def handle_streaming_response(chunks: AsyncIterator[str]) -> AsyncIterator[LmiOutput]:
    async for chunk in chunks:
        try:
            data, last = vllm_stream_output_formatter(chunk)
        except Exception as exc:
            logger.exception("stream_output_formatter failed")
            yield stream_chunk_output("", True, error=str(exc), code=424)
            return
        yield stream_chunk_output(data, last)
        if last:
            return


class VllmHandler:
    """vllm_async_service.VLLMHandler: the hooks, vLLM's engine and its OpenAI serving classes."""

    def __init__(self, properties: Mapping[str, str]):
        self.properties = properties
        sys.path.insert(0, properties["model_dir"])  # LMI imports model.py from the model directory
        module = importlib.import_module("model")
        self.input_formatter = annotated_function(module, "is_input_formatter")
        self.output_formatter = annotated_function(module, "is_output_formatter")

    async def initialize(self) -> None:
        from vllm import AsyncLLMEngine
        from vllm.entrypoints.openai.chat_completion.serving import OpenAIServingChat
        from vllm.entrypoints.openai.completion.serving import OpenAIServingCompletion
        from vllm.entrypoints.openai.models.protocol import BaseModelPath
        from vllm.entrypoints.openai.models.serving import OpenAIServingModels
        from vllm.renderers.online_renderer import OnlineRenderer

        properties = self.properties
        args = engine_args(properties)
        self.engine = AsyncLLMEngine.from_engine_args(args)
        self.tokenizer = self.engine.get_tokenizer()  # vLLM 0.32: no longer a coroutine
        names = args.served_model_name or "lmi"
        names = names if isinstance(names, list) else [names]
        self.model_name = names[0]
        models = OpenAIServingModels(self.engine, [BaseModelPath(name, args.model) for name in names])
        chat_template = properties.get("chat_template")
        content_format = properties.get("chat_template_content_format", "auto")
        tools = properties.get("enable_auto_tool_choice", "false").lower() == "true"
        # vLLM 0.32: the serving classes render prompts through an OnlineRenderer LMI 0.35.0 never builds.
        renderer = OnlineRenderer(
            model_config=self.engine.model_config,
            renderer=self.engine.renderer,
            request_logger=None,
            chat_template=chat_template,
            chat_template_content_format=content_format,
            enable_auto_tools=tools,
            tool_parser=properties.get("tool_call_parser"),
        )
        self.completion_service = OpenAIServingCompletion(
            self.engine, models, online_renderer=renderer, request_logger=None
        )
        self.chat_completion_service = OpenAIServingChat(
            self.engine,
            models,
            "assistant",
            online_renderer=renderer,
            request_logger=None,
            chat_template=chat_template,
            chat_template_content_format=content_format,
            enable_auto_tools=tools,
            tool_parser=properties.get("tool_call_parser"),
            reasoning_parser=properties.get("reasoning_parser") or "",  # vLLM 0.32: None is no longer accepted
        )

    def preprocess_request(self, body: bytes, headers: Mapping[str, str]) -> _ProcessedRequest:
        from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
        from vllm.entrypoints.openai.completion.protocol import CompletionRequest

        content_type = next((value for key, value in headers.items() if key.lower() == "content-type"), None)
        payload = decode(body, content_type)
        if self.input_formatter is not None:
            try:
                payload = self.input_formatter(payload, tokenizer=self.tokenizer)
            except Exception as exc:
                logger.exception("Custom input formatter failed")
                raise CustomFormatterError("Custom input formatter execution failed") from exc
        if "model" not in payload:
            payload["model"] = self.model_name
        if "prompt" in payload:
            return _ProcessedRequest(CompletionRequest(**payload), self.completion_service.create_completion)
        if "inputs" in payload:
            raise RuntimeError("LMI's TGI schema for `inputs` is not mirrored by the local LMI container")
        if "messages" in payload:
            return _ProcessedRequest(
                ChatCompletionRequest(**payload), self.chat_completion_service.create_chat_completion
            )
        raise RuntimeError("invalid payload. must contain prompt, inputs, or messages")

    async def inference(self, body: bytes, headers: Mapping[str, str]) -> LmiOutput | AsyncIterator[LmiOutput]:
        await self._check_health()
        try:
            processed = self.preprocess_request(body, headers)
        except CustomFormatterError as exc:
            logger.exception("Custom formatter failed")
            return non_stream_output("", error=f"Custom formatter failed: {exc}", code=424)
        except Exception as exc:
            logger.exception("Input parsing failed")
            return non_stream_output("", error=f"Input parsing failed: {exc}", code=424)
        response = await self._invoke(processed)
        if isinstance(response, types.AsyncGeneratorType):
            return handle_streaming_response(self._format_stream(response))
        return vllm_non_stream_output_formatter(self._format(response, "Custom output formatter execution failed"))

    async def _invoke(self, processed: _ProcessedRequest) -> Any:
        import jinja2
        from vllm.entrypoints.serve.exception_handling.error_response import create_error_response
        from vllm.exceptions import VLLMClientError

        try:
            return await processed.invoke(processed.request)
        except (VLLMClientError, ValueError, TypeError, RuntimeError, jinja2.TemplateError) as exc:
            # vLLM 0.32 raises what 0.11.1's serving classes returned as an ErrorResponse (see the module doc).
            return create_error_response(exc)

    def _format(self, response: Any, failure: str) -> Any:
        if self.output_formatter is None:
            return response
        try:
            return self.output_formatter(response)
        except Exception as exc:
            logger.exception("Custom output formatter failed")
            raise CustomFormatterError(failure) from exc

    async def _format_stream(self, chunks: AsyncIterator[str]) -> AsyncIterator[Any]:
        async for chunk in chunks:
            yield self._format(chunk, "Custom streaming formatter execution failed")

    async def _check_health(self) -> None:
        try:
            await self.engine.check_health()
        except Exception:
            logger.critical("vLLM engine is dead, terminating process")
            os._exit(1)


async def invoke_handler(handler: VllmHandler, body: bytes, headers: Mapping[str, str]) -> Any:
    """python_async_engine.invoke_handler: what escapes the handler is answered as a failure, not raised."""
    try:
        return await handler.inference(body, headers)
    except Exception as exc:
        logger.exception("service.invoke_handler_async() failure")
        memory = type(exc).__name__ in {"OutOfMemoryError", "MemoryError"}
        return EngineFailure(507, str(exc)) if memory else EngineFailure(424, _HANDLER_FAILURE)


def gson(value: Mapping[str, Any]) -> bytes:
    """JSON as DJL's Gson writes it: compact, and HTML-sensitive characters escaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for char in "<>&='\u2028\u2029":
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text.encode()


def frame(output: LmiOutput) -> bytes:
    """Request.addResponse: an output with a code ends the answer with Gson's {"error", "code"} (a two-entry
    ConcurrentHashMap: "error" hashes to the first bucket), any other output adds its data."""
    if output.code is None:
        return output.data.encode()
    body: dict[str, Any] = {"error": output.error} if output.error is not None else {}
    return gson({**body, "code": output.code})


def failure_response(failure: EngineFailure) -> ContainerResponse:
    """AsyncRequestManager.sendErrorResponse: the body is the frontend's new Output(code, message), by Gson."""
    body = {"code": failure.code, "message": f"Async Inference Failure {failure.message}", "properties": {}}
    body |= {"content": {"keys": [], "values": []}, "cancelled": False}
    return ContainerResponse(failure.code, "application/json", gson(body))


class LmiContainer:
    """The handler on its own event loop, and the frontend's HTTP framing for the threads that call it."""

    def __init__(self, properties: Mapping[str, str]):
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="lmi-event-loop", daemon=True).start()
        self.handler = VllmHandler(properties)
        self._run(self.handler.initialize())

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def invoke(self, body: bytes, headers: Mapping[str, str]) -> ContainerResponse:
        result = self._run(invoke_handler(self.handler, body, headers))
        if isinstance(result, EngineFailure):
            return failure_response(result)
        if isinstance(result, LmiOutput):
            return ContainerResponse(result.code or 200, result.content_type, frame(result))
        first = self._next(result)
        if first is None or first.last:  # one piece: the frontend answers it whole (InferenceRequestHandler:426)
            first = first or stream_chunk_output("", True)
            return ContainerResponse(first.code or 200, first.content_type, frame(first))
        return ContainerResponse(first.code or 200, first.content_type, self._chunks(first, result))

    def _next(self, outputs: AsyncIterator[LmiOutput]) -> LmiOutput | None:
        try:
            return self._run(outputs.__anext__())
        except StopAsyncIteration:
            return None

    def _chunks(self, first: LmiOutput, outputs: Any) -> Iterator[bytes]:
        output: LmiOutput | None = first
        try:
            while output is not None:
                yield frame(output)
                if output.last or output.code is not None:
                    return
                output = self._next(outputs)
        except Exception:  # on LMI the request would hang until the frontend's timeout; here the stream ends
            logger.exception("streaming failed")
        finally:
            self._run(outputs.aclose())  # a client gone away aborts its generation in vLLM


def _stop_with_engine(signum: int, _frame: Any) -> None:
    """SIGTERM would end this process alone: pass it on to vLLM's engine core and workers, in this process group."""
    signal.signal(signum, signal.SIG_DFL)
    os.killpg(0, signum)


def main() -> None:
    args = container_arguments("The LMI container (DJL Serving, vLLM async mode) on loopback").parse_args()
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"))
    properties = load_properties(Path(args.model_dir).resolve(), os.environ)
    with contextlib.suppress(PermissionError):  # already leading a session of its own
        os.setpgrp()
    signal.signal(signal.SIGTERM, _stop_with_engine)

    def load() -> InvocationHandler:
        return LmiContainer(properties).invoke

    serve(load, args.port, args.host)


if __name__ == "__main__":  # vLLM starts its engine core with `spawn`, which imports this module again
    main()
