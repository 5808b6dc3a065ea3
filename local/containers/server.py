"""SageMaker's container contract on loopback: `GET /ping` and `POST /invocations`, answered by one handler.

A handler answers with a status, a content type and either the whole body or an iterator of chunks. Chunks
are sent with chunked transfer encoding as they come, which is how a container streams to
InvokeEndpointWithResponseStream.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger(__name__)


@dataclass
class ContainerResponse:
    status: int
    content_type: str
    body: bytes | Iterator[bytes]


InvocationHandler = Callable[[bytes, Mapping[str, str]], ContainerResponse]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # streamed chunks must leave at once
    server: _ContainerServer

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/ping":
            self._answer(ContainerResponse(404, "application/json", b'{"error": "not found"}'))
            return
        healthy = self.server.is_healthy()
        self._answer(ContainerResponse(200 if healthy else 503, "application/json", b"{}"))

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.split("?", 1)[0] != "/invocations":
            self._answer(ContainerResponse(404, "application/json", b'{"error": "not found"}'))
            return
        invoke = self.server.invoke
        if invoke is None:
            self._answer(ContainerResponse(503, "application/json", b'{"error": "the model is still loading"}'))
            return
        try:
            response = invoke(body, dict(self.headers.items()))
        except Exception as exc:  # the container's own frontend answers 500 rather than dropping the connection
            logger.exception("invocation failed")
            message = f"{type(exc).__name__}: {exc}".replace('"', "'")
            response = ContainerResponse(500, "application/json", f'{{"error": "{message}"}}'.encode())
        self._answer(response)

    def _answer(self, response: ContainerResponse) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        if isinstance(response.body, bytes):
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for chunk in response.body:
                if chunk:
                    self.wfile.write(b"%X\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        finally:
            close = getattr(response.body, "close", None)
            if close is not None:
                close()  # a client that went away stops the generation behind the iterator


class _ContainerServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int]):
        self.invoke: InvocationHandler | None = None  # set once the model is loaded
        super().__init__(address, _Handler)

    def is_healthy(self) -> bool:
        return self.invoke is not None


def serve(load: Callable[[], InvocationHandler], port: int, host: str = "127.0.0.1") -> None:
    """Listen at once (so /ping answers 503 while loading, as a container does), load the model, then serve
    until the process is stopped. A model that fails to load ends the process: the endpoint sees it exit."""
    server = _ContainerServer((host, port))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    logger.info("container listening on %s:%d, loading the model", host, port)
    try:
        server.invoke = load()
    except BaseException:
        logger.exception("the model failed to load")
        os._exit(1)
    logger.info("model loaded; container healthy")
    threading.Event().wait()


def container_arguments(description: str) -> argparse.ArgumentParser:
    """The arguments every container module takes; the local endpoint passes them."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--model-dir", required=True, help="the model directory, as /opt/ml/model in the container")
    return parser
