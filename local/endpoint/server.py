"""The HTTP face of the local endpoint: SageMaker's runtime API, its control-plane JSON ops, /ping, /status.

An unmodified boto3 `sagemaker-runtime` (or `sagemaker`) client with `endpoint_url` pointing here works.
Every answer is JSON or an event stream: errors take SageMaker's shapes, never an HTML page.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from local.backends.base import Invocation, ModelResponse, ModelServerError, PayloadError
from local.endpoint.control import handle_control_request
from local.endpoint.copies import Job
from local.endpoint.errors import (
    VARIANT_NAME,
    ControlPlaneValidation,
    EndpointError,
    InternalFailure,
    ModelError,
    NotFound,
    ValidationError,
    model_timeout,
)
from local.endpoint.eventstream import exception_event, payload_part
from local.endpoint.runtime import BackendFactory, ComponentRuntime, LocalEndpoint
from provisioning.config import EndpointConfig

logger = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # SageMaker's documented real-time request payload limit (6 MB)
_DRAIN_LIMIT_BYTES = 64 * 1024 * 1024  # read and discard an oversized body up to this, to answer it cleanly
_READ_CHUNK = 64 * 1024
_INVOCATION_PATH = re.compile(r"^/endpoints/(?P<name>[^/]+)/(?P<kind>invocations|invocations-response-stream)$")
COMPONENT_HEADER = "X-Amzn-SageMaker-Inference-Component"
CUSTOM_ATTRIBUTES_HEADER = "X-Amzn-SageMaker-Custom-Attributes"
TARGET_VARIANT_HEADER = "X-Amzn-SageMaker-Target-Variant"
_CONTROL_CONTENT_TYPE = "application/x-amz-json-1.1"


class _ProtocolError(EndpointError):
    """An HTTP-level problem found by the stdlib parser (bad request line, unsupported method...)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.error_type = "ValidationError" if status < 500 else "InternalFailure"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], endpoint: LocalEndpoint):
        self.endpoint = endpoint
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up on a keep-alive connection is normal; anything else is logged."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            logger.debug("client %s disconnected: %s", client_address, error)
        else:
            logger.exception("unexpected failure on the connection from %s", client_address)

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self, wait_s: float) -> None:
        """Unblock handler threads idling on keep-alive connections and give them `wait_s` to end."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the peer
                connection.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            with self._connections_lock:
                if not self._connections:
                    return
            time.sleep(0.01)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LocalSageMakerEndpoint/1.0"
    disable_nagle_algorithm = True  # small event-stream chunks must leave at once
    timeout = 300  # an idle keep-alive connection is closed after this many seconds
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)
        self.request_id = str(uuid.uuid4())

    def finish(self) -> None:
        self.server.untrack(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    # --- dispatch -----------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._handle(self._get)

    def do_POST(self) -> None:
        self._handle(self._post)

    def _unsupported_method(self) -> None:
        self._handle(self._reject_method)

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _unsupported_method

    def _handle(self, route: Callable[[], None]) -> None:
        self.request_id = str(uuid.uuid4())
        self._body_read = False
        self._component: ComponentRuntime | None = None
        try:
            route()
        except EndpointError as error:
            self._send_error(error)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:
            logger.exception("unexpected failure serving %s %s", self.command, self.path)
            self._send_error(InternalFailure(f"The local endpoint failed unexpectedly: {type(exc).__name__}: {exc}"))

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib calls this for requests it cannot parse; answer JSON, not its HTML page."""
        self.close_connection = True
        self._send_error(_ProtocolError(code, message or explain or "Bad request"))

    def _get(self) -> None:
        self._read_body()
        path = self.path.split("?", 1)[0]
        if path == "/ping":
            ready = self.server.endpoint.ready()
            self._send_json(200 if ready else 503, {"status": "Healthy" if ready else "Unhealthy"})
        elif path == "/status":
            self._send_json(200, self.server.endpoint.status())
        else:
            raise NotFound(f"No route for GET {path}. Try /ping, /status or POST /endpoints/<name>/invocations.")

    def _post(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._control()
            return
        match = _INVOCATION_PATH.match(path)
        if match is None:
            self._read_body()
            raise NotFound(f"No route for POST {path}.")
        self._invoke(match["name"], streaming=match["kind"] == "invocations-response-stream")

    def _reject_method(self) -> None:
        self._read_body()
        raise NotFound(f"No route for {self.command} {self.path}.")

    # --- requests ------------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        """The request body; an oversized one is drained (so the connection stays usable) and refused."""
        self._body_read = True
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked_body()
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            raise ValidationError("Content-Length must be a non-negative integer.")
        if length > MAX_PAYLOAD_BYTES:
            self._discard(length)
            raise self._too_large(length)
        return self.rfile.read(length)

    def _read_chunked_body(self) -> bytes:
        body = bytearray()
        total = 0
        while True:
            size_line = self.rfile.readline(1024).split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                size = -1
            if size < 0:
                self.close_connection = True
                raise ValidationError("Malformed chunked request body.")
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                break
            total += size
            if total > _DRAIN_LIMIT_BYTES:
                self.close_connection = True
                break
            chunk = self.rfile.read(size)
            self.rfile.readline(1024)
            if total <= MAX_PAYLOAD_BYTES:
                body += chunk
        if total > MAX_PAYLOAD_BYTES:
            raise self._too_large(total)
        return bytes(body)

    def _discard(self, length: int) -> None:
        if length > _DRAIN_LIMIT_BYTES:
            self.close_connection = True
            return
        remaining = length
        while remaining > 0:
            chunk = self.rfile.read(min(_READ_CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)

    @staticmethod
    def _too_large(size: int) -> ValidationError:
        return ValidationError(
            f"Request payload is {size} bytes; the maximum for real-time inference is {MAX_PAYLOAD_BYTES} bytes (6 MB)."
        )

    def _control(self) -> None:
        body = self._read_body()
        try:
            request = json.loads(body or b"{}")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ControlPlaneValidation(f"The request body is not valid JSON: {exc}") from None
        response = handle_control_request(self.server.endpoint, self.headers.get("X-Amz-Target"), request)
        self._send(200, json.dumps(response).encode("utf-8"), _CONTROL_CONTENT_TYPE)

    def _invoke(self, endpoint_name: str, streaming: bool) -> None:
        body = self._read_body()
        component = self.server.endpoint.resolve(endpoint_name, self.headers.get(COMPONENT_HEADER))
        self._component = component
        component.counters.record_request()
        self._check_headers()
        invocation = Invocation(body, self.headers.get("Content-Type"), self.headers.get("Accept"))
        job = component.submit(invocation, streaming)
        deadline = time.monotonic() + component.settings.timeout_s
        if streaming:
            self._stream(component, job, deadline)
        else:
            self._respond(component, job, deadline)

    def _check_headers(self) -> None:
        attributes = self.headers.get(CUSTOM_ATTRIBUTES_HEADER, "")
        if len(attributes) > 1024 or not attributes.isascii():
            raise ValidationError("CustomAttributes must be at most 1024 visible US-ASCII characters.")
        variant = self.headers.get(TARGET_VARIANT_HEADER)
        if variant and variant != VARIANT_NAME:
            raise ValidationError(f"Variant {variant} not found on endpoint {self.server.endpoint.name}.")

    def _respond(self, component: ComponentRuntime, job: Job, deadline: float) -> None:
        event = job.next_event(deadline)
        if event is None:
            job.abandoned = True
            raise model_timeout(component.name)
        kind, value = event
        if kind == "error":
            raise _model_error(component, value)
        if isinstance(value, ModelResponse):
            body, content_type = value.body, value.content_type
        else:
            body, content_type = json.dumps(value).encode("utf-8"), job.content_type
        self._send(200, body, content_type, {"x-Amzn-Invoked-Production-Variant": VARIANT_NAME})

    def _stream(self, component: ComponentRuntime, job: Job, deadline: float) -> None:
        """HTTP errors until the first part; after it, failures become in-stream ModelStreamError events. The stream
        is typed as the backend typed the answer (known with its first part)."""
        event = job.next_event(deadline)
        if event is None:
            job.abandoned = True
            raise model_timeout(component.name)
        if event[0] == "error":
            raise _model_error(component, event[1])
        self.send_response(200)
        self._common_headers()
        self.send_header("Content-Type", "application/vnd.amazon.eventstream")
        self.send_header("X-Amzn-SageMaker-Content-Type", job.content_type)
        self.send_header("x-Amzn-Invoked-Production-Variant", VARIANT_NAME)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            while event is not None and event[0] == "part":
                self._write_chunk(payload_part(event[1]))
                event = job.next_event(deadline)
            if event is None:
                job.abandoned = True
                self._stream_failure(component, "ModelInvocationTimeExceeded", model_timeout(component.name))
            elif event[0] == "error":
                self._stream_failure(component, "StreamBroken", _model_error(component, event[1]))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            job.abandoned = True  # the caller went away; its remaining parts are dropped
            self.close_connection = True
        except Exception as exc:
            # The 200 is already sent: the failure can only travel as an in-stream event.
            logger.exception("%s: streaming failed", component.name)
            job.abandoned = True
            self.close_connection = True
            self.server.endpoint.record_error("InternalStreamFailure", component)
            message = f"The local endpoint failed while streaming: {type(exc).__name__}: {exc}"
            with contextlib.suppress(OSError):
                self._write_chunk(exception_event("InternalStreamFailure", message))
                self.wfile.write(b"0\r\n\r\n")

    def _stream_failure(self, component: ComponentRuntime, error_code: str, error: ModelError) -> None:
        self.server.endpoint.record_error("ModelStreamError", component)
        self._write_chunk(exception_event("ModelStreamError", error.message, error_code))

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))

    # --- responses -----------------------------------------------------------------------------------

    def _common_headers(self) -> None:
        self.send_header("x-amzn-RequestId", self.request_id)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self._common_headers()
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status: int, document: Any) -> None:
        self._send(status, json.dumps(document).encode("utf-8"), "application/json")

    def _send_error(self, error: EndpointError) -> None:
        if not getattr(self, "_body_read", True):
            self.close_connection = True  # the unread body would be taken for the next request
        self.server.endpoint.record_error(error.error_type, getattr(self, "_component", None))
        body = json.dumps(error.body()).encode("utf-8")
        try:
            self._send(error.status, body, "application/json", {"x-amzn-ErrorType": error.header_value})
        except OSError:
            self.close_connection = True


def _model_error(component: ComponentRuntime, failure: Any) -> ModelError:
    """A backend failure as the ModelError SageMaker relays from a failing container."""
    if isinstance(failure, ModelServerError):  # a container's own error answer, relayed as it said it
        return ModelError(component.name, failure.status, failure.body)
    original_status = 400 if isinstance(failure, PayloadError) else 500
    detail = str(failure) if isinstance(failure, PayloadError) else f"{type(failure).__name__}: {failure}"
    return ModelError(component.name, original_status, detail)


class RunningEndpoint:
    """A started endpoint: `.url`, `.stop()`, and a context manager that stops it."""

    def __init__(self, endpoint: LocalEndpoint, server: _Server, thread: threading.Thread):
        self.endpoint = endpoint
        self._server = server
        self._thread = thread
        host, port = server.server_address[:2]
        self.host, self.port = str(host), int(port)
        self.url = f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        """Stop accepting, let in-flight requests finish, then close connections and backends."""
        self._server.shutdown()
        self.endpoint.stop()
        self._server.close_connections(wait_s=2.0)
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> RunningEndpoint:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def start_endpoint(
    config: EndpointConfig,
    host: str = "127.0.0.1",
    port: int = 8080,
    backend_factory: BackendFactory | None = None,
) -> RunningEndpoint:
    """Place and load every component's copies, then serve on host:port (0 picks a free port).

    Raises PlacementError when copies do not fit on the endpoint's instances. `backend_factory` defaults
    to `local.backends.create_backend`.
    """
    if backend_factory is None:
        # Imported here: the real backends bring in torch, which fakes in tests do not need.
        from local.backends import create_backend

        backend_factory = create_backend
    endpoint = LocalEndpoint(config, backend_factory)
    endpoint.start()
    try:
        server = _Server((host, port), endpoint)
    except OSError:
        endpoint.stop()
        raise
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.name = f"endpoint-http-{server.server_address[1]}"
    thread.start()
    return RunningEndpoint(endpoint, server, thread)
