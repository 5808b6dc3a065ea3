"""One local Lambda execution environment: the process `local.lambda_runtime` starts per environment.

Like Lambda's runtime interface client, it imports the handler module once (the init phase, with the
process's working directory as the task root) and then serves one invocation at a time, forever:

    parent -> stdin:        {"event": ..., "remaining_ms": N, "stream"?: true}        one JSON line per invocation
                            {"cancel": true}                                        the streamed response's reader left
    protocol pipe -> parent: {"ready": true} | {"init_error": {...}}                  once, after the import
                             {"response": ..., "duration_ms": F} | {"error": {...}}  one line per invocation, or
                             {"chunk": "<base64>"}... then {"end": true, "duration_ms": F} | {"error": {...}}
                                                                                     for a streamed invocation

A streamed invocation (a `ResponseTransferMode: STREAM` route) sends the handler's response in the bytes that
chatbot.response_stream sends deployed (metadata, 8 NUL bytes, the body as the handler produces it), so the local
gateway reads exactly what API Gateway reads; a cancel closes the handler's body, as a cut stream does deployed.

The protocol pipe is the original stdout; the handler's own prints and logs go to stderr, so nothing it
writes can corrupt a reply. The process ends when its stdin closes.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, TextIO

from chatbot.response_stream import integration_stream

from local.lambda_context import LocalLambdaContext


def _error(exc: BaseException) -> dict[str, Any]:
    """Lambda's error payload: errorType, errorMessage, stackTrace."""
    return {
        "errorType": type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_exception(exc),
    }


def _send(pipe: TextIO, message: dict[str, Any]) -> None:
    pipe.write(json.dumps(message) + "\n")
    pipe.flush()


def serve(function_name: str, handler: str, memory_mb: int, requests: TextIO, replies: TextIO) -> None:
    module_name, handler_name = handler.rsplit(".", 1)
    try:
        lambda_handler = getattr(importlib.import_module(module_name), handler_name)
    except Exception as exc:
        _send(replies, {"init_error": _error(exc)})
        return
    _send(replies, {"ready": True})
    invocations: queue.Queue[dict[str, Any] | None] = queue.Queue()
    cancelled = threading.Event()
    threading.Thread(target=_read_requests, args=(requests, invocations, cancelled), daemon=True).start()
    while (request := invocations.get()) is not None:
        cancelled.clear()
        context = LocalLambdaContext(function_name, request["remaining_ms"] / 1000, memory_mb)
        started = time.perf_counter()
        if request.get("stream"):
            _stream(lambda_handler, request["event"], context, replies, cancelled)
            continue
        try:
            response = lambda_handler(request["event"], context)
            reply = {"response": response}
            encoded = json.dumps(reply)  # a response Lambda could not serialize is an error too
        except Exception as exc:
            encoded = json.dumps({"error": _error(exc)})
        duration_ms = (time.perf_counter() - started) * 1000
        replies.write(encoded[:-1] + f', "duration_ms": {duration_ms:.3f}}}\n')
        replies.flush()


def _read_requests(requests: TextIO, invocations: queue.Queue, cancelled: threading.Event) -> None:
    """Invocations go to the queue; a cancel is noticed while a streamed invocation is still running."""
    for line in requests:
        request = json.loads(line)
        if request.get("cancel"):
            cancelled.set()
        else:
            invocations.put(request)
    invocations.put(None)


def _stream(
    lambda_handler: Callable[..., Any], event: Any, context: Any, replies: TextIO, cancelled: threading.Event
) -> None:
    started = time.perf_counter()
    try:
        chunks = integration_stream(lambda_handler(event, context))
        for chunk in chunks:
            if cancelled.is_set():
                chunks.close()
                break
            _send(replies, {"chunk": base64.b64encode(chunk).decode("ascii")})
    except Exception as exc:
        _send(replies, {"error": _error(exc)})
        return
    _send(replies, {"end": True, "duration_ms": round((time.perf_counter() - started) * 1000, 3)})


def main() -> None:
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # the handler's prints go to the log stream
    serve(
        os.environ["AWS_LAMBDA_FUNCTION_NAME"],
        os.environ["_HANDLER"],
        int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]),
        sys.stdin,
        replies,
    )


if __name__ == "__main__":
    main()
