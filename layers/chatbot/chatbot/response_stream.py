"""Lambda response streaming for a Python handler: API Gateway's stream format, and a Runtime API loop.

Python has no managed streaming handler, so the function behind a `ResponseTransferMode: STREAM` route runs this
module as its runtime (its AWS_LAMBDA_EXEC_WRAPPER, `stream_runtime.sh` next to this file, execs it in place of
the Python runtime's own loop). The handler is the same Powertools `lambda_handler` as in every function. Its
proxy response leaves as the STREAM integration reads it: the JSON metadata (statusCode, headers, ...), 8 NUL
bytes, then the body, piece by piece when `body` is an iterator of str. The local runtime sends responses through
`integration_stream` too, so the local gateway parses the same bytes API Gateway does.
"""

from __future__ import annotations

import base64
import http.client
import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Iterator, Mapping
from typing import Any

DELIMITER = b"\x00" * 8
_METADATA = ("statusCode", "headers", "multiValueHeaders", "cookies")
_RUNTIME_PATH = "/2018-06-01/runtime"


def integration_stream(response: Mapping[str, Any]) -> Iterator[bytes]:
    """A proxy response as a STREAM integration's bytes; closing this closes the response's body iterator."""
    metadata = {name: response[name] for name in _METADATA if response.get(name) is not None}
    yield json.dumps(metadata).encode("utf-8") + DELIMITER
    body = response.get("body")
    if isinstance(body, str):
        payload = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode("utf-8")
        if payload:  # an empty chunk would end a chunked HTTP body
            yield payload
        return
    if body is None:
        return
    try:
        for piece in body:
            if piece:
                yield piece.encode("utf-8")
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()  # a consumer gone mid-stream reaches the handler's generator (GeneratorExit)


class RuntimeContext:
    """The Lambda context object, from the Runtime API's invocation headers."""

    def __init__(self, headers: http.client.HTTPMessage):
        self.aws_request_id = headers["Lambda-Runtime-Aws-Request-Id"]
        self.invoked_function_arn = headers.get("Lambda-Runtime-Invoked-Function-Arn", "")
        self._deadline_ms = int(headers.get("Lambda-Runtime-Deadline-Ms", "0"))
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error_payload(exc: BaseException) -> bytes:
    return json.dumps(
        {"errorType": type(exc).__name__, "errorMessage": str(exc), "stackTrace": traceback.format_exception(exc)}
    ).encode("utf-8")


def serve(handler: Any, runtime_api: str) -> None:
    """Lambda's Runtime API loop (next, then response or error), answering every invocation as a stream."""
    connection = http.client.HTTPConnection(runtime_api)
    while True:
        connection.request("GET", f"{_RUNTIME_PATH}/invocation/next")
        invocation = connection.getresponse()
        event = json.loads(invocation.read())
        context = RuntimeContext(invocation.headers)
        trace_id = invocation.headers.get("Lambda-Runtime-Trace-Id")
        if trace_id:
            os.environ["_X_AMZN_TRACE_ID"] = trace_id
        base = f"{_RUNTIME_PATH}/invocation/{context.aws_request_id}"
        try:
            chunks = integration_stream(handler(event, context))
        except Exception as exc:
            traceback.print_exc()
            connection.request("POST", f"{base}/error", body=_error_payload(exc))
            connection.getresponse().read()
            continue
        headers = {
            "Lambda-Runtime-Function-Response-Mode": "streaming",
            "Content-Type": "application/vnd.awslambda.http-integration-response",
            "Transfer-Encoding": "chunked",
        }
        try:
            connection.request("POST", f"{base}/response", body=chunks, headers=headers, encode_chunked=True)
            connection.getresponse().read()
        except OSError:  # the response stream was cut: stop the handler's generator, start afresh
            traceback.print_exc()
            chunks.close()
            connection.close()
            connection = http.client.HTTPConnection(runtime_api)


def main() -> None:
    sys.path.insert(0, os.environ.get("LAMBDA_TASK_ROOT", os.getcwd()))
    module_name, handler_name = os.environ["_HANDLER"].rsplit(".", 1)
    connection_target = os.environ["AWS_LAMBDA_RUNTIME_API"]
    try:
        handler = getattr(importlib.import_module(module_name), handler_name)
    except Exception as exc:
        connection = http.client.HTTPConnection(connection_target)
        connection.request("POST", f"{_RUNTIME_PATH}/init/error", body=_error_payload(exc))
        connection.getresponse().read()
        raise
    serve(handler, connection_target)


if __name__ == "__main__":
    main()
