"""A local API Gateway (REST API, Lambda proxy integration) for every `Api` event in template.yaml.

The gateway only turns requests into REST proxy events and routes them: each function runs in execution
environments of its own (`local.lambda_runtime`: one process per environment, the function's own template
environment, one request at a time, scaled out up to its concurrency).

A route whose event says `ResponseTransferMode: RESPONSE_STREAM` (SAM's name for API Gateway's STREAM) is served as
API Gateway's streamed Lambda proxy integration: the function's response (JSON metadata, 8 NUL bytes, then the body
as it is produced) goes to the client as a chunked HTTP response, each piece written as soon as the function sends
it; a client that goes away cancels the invocation (its environment stops producing and serves again).

Local auth: `Authorization: Bearer local-<user>` stands for Cognito user `<user>`; its claims go where the
Cognito authorizer puts them. This scheme exists only here: the deployed API only ever accepts Cognito tokens.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from chatbot.response_stream import DELIMITER

from local.events import cognito_claims, rest_proxy_event
from local.lambda_runtime import DEFAULT_CONCURRENCY, InvocationError, LambdaRuntime
from local.template import DEFAULT_TEMPLATE_PATH, Template

logger = logging.getLogger(__name__)

INTEGRATION_TIMEOUT_S = 29.0  # API Gateway's REST integration timeout
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway's request payload limit
LOCAL_TOKEN = re.compile(r"^Bearer local-([A-Za-z0-9._@+-]{1,128})$")
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class Route:
    method: str  # upper case, or ANY
    path: str  # as in the template, e.g. /v1/conversations/{conversation_id}
    function: str  # logical id
    api: str | None
    authorized: bool
    pattern: re.Pattern[str] = field(compare=False)
    streamed: bool = False  # the event's ResponseTransferMode: RESPONSE_STREAM

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.match(path)
        return {name: unquote(value) for name, value in found.groupdict().items()} if found else None


@dataclass(frozen=True)
class Cors:
    allow_origin: str = "*"
    allow_headers: str = "Authorization,Content-Type"
    allow_methods: str = "GET,POST,PUT,PATCH,DELETE,OPTIONS"
    max_age: str | None = None


def _route_pattern(path: str) -> re.Pattern[str]:
    parts = []
    for segment in path.strip("/").split("/"):
        greedy = re.fullmatch(r"\{(\w+)\+\}", segment)
        named = re.fullmatch(r"\{(\w+)\}", segment)
        if greedy:
            parts.append(f"(?P<{greedy.group(1)}>.+)")
        elif named:
            parts.append(f"(?P<{named.group(1)}>[^/]+)")
        else:
            parts.append(re.escape(segment))
    return re.compile("^/" + "/".join(parts) + "/?$")


def _unquote_cors(value: Any) -> str:
    return str(value).strip().strip("'")


def read_routes(template: Template) -> tuple[list[Route], dict[str | None, Cors]]:
    """Every Api event of every function, and the CORS settings of each API."""
    apis = template.resources_of_type("AWS::Serverless::Api")
    cors: dict[str | None, Cors] = {None: Cors()}
    default_auth: dict[str | None, bool] = {None: False}
    for name, resource in apis.items():
        properties = resource.get("Properties") or {}
        cors_config = template.resolve(properties.get("Cors"))
        if isinstance(cors_config, str):
            cors[name] = Cors(allow_origin=_unquote_cors(cors_config))
        elif isinstance(cors_config, dict):
            cors[name] = Cors(
                allow_origin=_unquote_cors(cors_config.get("AllowOrigin", "*")),
                allow_headers=_unquote_cors(cors_config.get("AllowHeaders", Cors.allow_headers)),
                allow_methods=_unquote_cors(cors_config.get("AllowMethods", Cors.allow_methods)),
                max_age=_unquote_cors(cors_config["MaxAge"]) if "MaxAge" in cors_config else None,
            )
        else:
            cors[name] = Cors()
        default_auth[name] = bool((properties.get("Auth") or {}).get("DefaultAuthorizer"))
    routes = []
    for function, resource in template.resources_of_type("AWS::Serverless::Function").items():
        for event in ((resource.get("Properties") or {}).get("Events") or {}).values():
            if event.get("Type") != "Api":
                continue
            properties = event.get("Properties") or {}
            api_ref = properties.get("RestApiId")
            api = api_ref.get("Ref") if isinstance(api_ref, dict) else api_ref
            authorizer = (properties.get("Auth") or {}).get("Authorizer")
            authorized = authorizer != "NONE" and (default_auth.get(api, False) or authorizer is not None)
            method = str(properties["Method"]).upper()
            path = str(template.resolve(properties["Path"]))
            streamed = properties.get("ResponseTransferMode") == "RESPONSE_STREAM"  # SAM's name for STREAM
            routes.append(Route(method, path, function, api, authorized, _route_pattern(path), streamed))
    return routes, cors


@dataclass
class StreamedResponse:
    """A streamed integration's answer: status and headers from its metadata, then the body's pieces."""

    status: int
    headers: list[tuple[str, str]]
    first: bytes  # body bytes that came with the metadata
    rest: Iterator[bytes]  # the body's other pieces
    source: Iterator[bytes]  # the invocation: closing it cancels it (if not over)


@dataclass
class GatewayHandle:
    url: str
    routes: list[Route]
    runtime: LambdaRuntime
    timings: GatewayTimings
    _server: ThreadingHTTPServer = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        self.runtime.stop()

    def __enter__(self) -> GatewayHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@dataclass
class GatewayTimings:
    """Where the proxied requests' time went (totals in seconds): in the gateway's own work (parsing, routing,
    events, responses, process hand-offs) and inside the handlers. Read by the API benchmark."""

    requests: int = 0
    total_s: float = 0.0
    handler_s: float = 0.0
    cold_start_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, total_s: float, handler_s: float, cold_start_s: float) -> None:
        with self._lock:
            self.requests += 1
            self.total_s += total_s
            self.handler_s += handler_s
            self.cold_start_s += cold_start_s

    def snapshot(self) -> tuple[int, float, float, float]:
        with self._lock:
            return self.requests, self.total_s, self.handler_s, self.cold_start_s


class _Gateway:
    def __init__(self, template: Template, runtime: LambdaRuntime):
        self.template = template
        self.runtime = runtime
        self.routes, self.cors = read_routes(template)
        self.stage = str(template.parameters.get("Stage") or "dev")
        self.timings = GatewayTimings()

    def handle(
        self, method: str, raw_path: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes] | StreamedResponse:
        split = urlsplit(raw_path)
        path = split.path or "/"
        candidates = [(route, route.match(path)) for route in self.routes]
        matching = [(route, params) for route, params in candidates if params is not None]
        if not matching:
            return self._error(HTTPStatus.NOT_FOUND, "Not found (unknown path).", None)
        api = matching[0][0].api
        allowed = sorted({route.method for route, _ in matching})
        if method == "OPTIONS" and "OPTIONS" not in allowed:
            return self._preflight(api)
        chosen = next(((r, p) for r, p in matching if r.method == method), None)
        chosen = chosen or next(((r, p) for r, p in matching if r.method == "ANY"), None)
        if chosen is None:
            return self._error(
                HTTPStatus.METHOD_NOT_ALLOWED,
                f"Method {method} is not allowed here; use {', '.join(allowed)}.",
                api,
                [("Allow", ", ".join(allowed))],
            )
        route, path_parameters = chosen
        if len(body) > MAX_PAYLOAD_BYTES:
            return self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Request Too Long", api)
        claims = None
        if route.authorized:
            user = self._local_user(headers)
            if user is None:
                return self._error(HTTPStatus.UNAUTHORIZED, "Unauthorized", api)
            claims = cognito_claims(user)
        event = self._event(method, path, split.query, route, path_parameters, headers, body, claims)
        if route.streamed:
            return self._invoke_streamed(route, event, api)
        return self._invoke(route, event, api)

    @staticmethod
    def _local_user(headers: list[tuple[str, str]]) -> str | None:
        values = [value for name, value in headers if name.lower() == "authorization"]
        found = LOCAL_TOKEN.match(values[-1].strip()) if values else None
        return found.group(1) if found else None

    def _event(
        self,
        method: str,
        path: str,
        query: str,
        route: Route,
        path_parameters: dict[str, str],
        headers: list[tuple[str, str]],
        body: bytes,
        claims: Mapping[str, str] | None,
    ) -> dict[str, Any]:
        multi_headers: dict[str, list[str]] = {}
        for name, value in headers:
            multi_headers.setdefault(name, []).append(value)
        try:
            body.decode("utf-8")
            binary = False
        except UnicodeDecodeError:
            binary = True
        return rest_proxy_event(
            method=method,
            path=path,
            resource=route.path,
            path_parameters=path_parameters,
            query=parse_qs(query, keep_blank_values=True),
            headers=multi_headers,
            body=body if body or method in {"POST", "PUT", "PATCH"} else None,
            claims=claims,
            stage=self.stage,
            base64_body=binary,
        )

    def _invoke(self, route: Route, event: dict[str, Any], api: str | None) -> tuple[int, list[tuple[str, str]], bytes]:
        outcome: dict[str, Any] = {}

        def call() -> None:
            try:
                outcome["result"] = self.runtime.invoke(route.function, event)
            except BaseException as exc:  # a failed invocation is a 502, as in API Gateway
                outcome["error"] = exc

        started = time.perf_counter()
        worker = threading.Thread(target=call, name=f"invoke-{route.function}", daemon=True)
        worker.start()
        worker.join(INTEGRATION_TIMEOUT_S)
        if worker.is_alive():
            return self._error(HTTPStatus.GATEWAY_TIMEOUT, "Endpoint request timed out", api)
        if "error" in outcome:
            error = outcome["error"]
            if isinstance(error, InvocationError):
                logger.error("%s failed: %s\n%s", route.function, error, "".join(error.stack_trace))
            else:
                logger.error("%s failed: %r", route.function, error, exc_info=error)
            return self._error(HTTPStatus.BAD_GATEWAY, "Internal server error", api)
        result = outcome["result"]
        try:
            proxied = self._proxy_response(result.response)
        except (KeyError, TypeError, ValueError) as exc:
            logger.error("%s returned a malformed proxy response: %s", route.function, exc)
            return self._error(HTTPStatus.BAD_GATEWAY, "Internal server error", api)
        self.timings.add(time.perf_counter() - started, result.handler_ms / 1000, (result.cold_start_ms or 0) / 1000)
        return proxied

    def _invoke_streamed(
        self, route: Route, event: dict[str, Any], api: str | None
    ) -> tuple[int, list[tuple[str, str]], bytes] | StreamedResponse:
        """Read the metadata and the delimiter; the rest of the body is left to the connection to pass on."""
        started = time.perf_counter()
        chunks = self.runtime.invoke_stream(route.function, event)
        head = b""
        try:
            while DELIMITER not in head:
                head += next(chunks)
            metadata, first = head.split(DELIMITER, 1)
            status, headers = self._proxy_metadata(json.loads(metadata))
        except InvocationError as error:
            chunks.close()
            logger.error("%s failed: %s\n%s", route.function, error, "".join(error.stack_trace))
            return self._error(HTTPStatus.BAD_GATEWAY, "Internal server error", api)
        except (StopIteration, KeyError, TypeError, ValueError) as exc:
            chunks.close()
            logger.error("%s returned a malformed streamed response: %r", route.function, exc)
            return self._error(HTTPStatus.BAD_GATEWAY, "Internal server error", api)

        def rest() -> Iterator[bytes]:
            result = yield from chunks
            cold_start_s = (result.cold_start_ms or 0) / 1000
            self.timings.add(time.perf_counter() - started, result.handler_ms / 1000, cold_start_s)

        return StreamedResponse(status, headers, first, rest(), chunks)

    @staticmethod
    def _proxy_metadata(response: dict[str, Any]) -> tuple[int, list[tuple[str, str]]]:
        status = int(response["statusCode"])
        headers: dict[str, list[str]] = {}
        for name, value in (response.get("headers") or {}).items():
            headers[name] = [str(value)]
        for name, values in (response.get("multiValueHeaders") or {}).items():
            headers[name] = [str(value) for value in values]
        return status, [(name, value) for name, values in headers.items() for value in values]

    @classmethod
    def _proxy_response(cls, response: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        status, headers = cls._proxy_metadata(response)
        body = response.get("body") or ""
        payload = base64.b64decode(body) if response.get("isBase64Encoded") else str(body).encode("utf-8")
        return status, headers, payload

    def _cors_headers(self, api: str | None) -> list[tuple[str, str]]:
        return [("Access-Control-Allow-Origin", self.cors.get(api, Cors()).allow_origin)]

    def _preflight(self, api: str | None) -> tuple[int, list[tuple[str, str]], bytes]:
        cors = self.cors.get(api, Cors())
        headers = [
            ("Access-Control-Allow-Origin", cors.allow_origin),
            ("Access-Control-Allow-Headers", cors.allow_headers),
            ("Access-Control-Allow-Methods", cors.allow_methods),
        ]
        if cors.max_age:
            headers.append(("Access-Control-Max-Age", cors.max_age))
        return HTTPStatus.OK, headers, b""

    def _error(
        self, status: int, message: str, api: str | None, extra: list[tuple[str, str]] | None = None
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = [("Content-Type", "application/json"), *self._cors_headers(api), *(extra or [])]
        return int(status), headers, json.dumps({"message": message}).encode("utf-8")


def _handler_class(gateway: _Gateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "LocalApiGateway"

        def setup(self) -> None:
            super().setup()
            # Headers and body leave in two writes; without this, Nagle + the client's delayed ACK add ~40 ms.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_PAYLOAD_BYTES:
                answer = gateway._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Request Too Long", None)
                self.close_connection = True
            else:
                body = self.rfile.read(length) if length else b""
                try:
                    answer = gateway.handle(self.command, self.path, list(self.headers.items()), body)
                except Exception:
                    logger.exception("local gateway failure")
                    answer = gateway._error(HTTPStatus.INTERNAL_SERVER_ERROR, "Internal server error", None)
            if isinstance(answer, StreamedResponse):
                self._stream(answer)
                return
            status, headers, payload = answer
            self._send_head(status, headers)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def _send_head(self, status: int, headers: list[tuple[str, str]]) -> None:
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in {"content-length", "connection", "transfer-encoding"}:
                    self.send_header(name, value)
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))

        def _stream(self, answer: StreamedResponse) -> None:
            """Chunked transfer, each piece sent as it arrives (the socket is unbuffered, Nagle off)."""
            try:
                self._send_head(answer.status, answer.headers)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self._write_chunk(answer.first)
                for chunk in answer.rest:
                    self._write_chunk(chunk)
                self.wfile.write(b"0\r\n\r\n")
            except InvocationError as error:  # the function failed mid-stream: the client sees a cut response
                logger.error("streamed invocation failed: %s\n%s", error, "".join(error.stack_trace))
                self.close_connection = True
            except OSError:  # the client went away
                self.close_connection = True
            finally:
                answer.rest.close()
                answer.source.close()

        def _write_chunk(self, chunk: bytes) -> None:
            if chunk:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))

        def log_message(self, format: str, *args: Any) -> None:
            logger.info("%s %s", self.address_string(), format % args)

    for method in _METHODS:
        setattr(Handler, f"do_{method}", Handler._serve)
    return Handler


def start_gateway(
    template_path: Path | str = DEFAULT_TEMPLATE_PATH,
    host: str = "127.0.0.1",
    port: int = 3000,
    environment: Mapping[str, str] | None = None,
    parameters: Mapping[str, str] | None = None,
    default_concurrency: int = DEFAULT_CONCURRENCY,
    function_logs: Any = None,
) -> GatewayHandle:
    """Serve the template's API routes on host:port (0 = a free port) until handle.stop().

    `parameters` are the template's parameter values (e.g. the endpoint's names); `environment` holds the
    local platform's variables every function environment gets on top of its own (AWS_ENDPOINT_URL_* for
    moto and the local endpoint, dummy credentials). This process's environment is left alone. The functions'
    output goes to this process's stderr unless `function_logs` (a file or subprocess.DEVNULL) says otherwise.
    """
    template = Template(template_path, parameters)
    runtime = LambdaRuntime(template, environment, default_concurrency=default_concurrency, logs=function_logs)
    try:
        gateway = _Gateway(template, runtime)
        server = ThreadingHTTPServer((host, port), _handler_class(gateway))
    except BaseException:
        runtime.stop()
        raise
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="local-api-gateway", daemon=True)
    thread.start()
    bound_host, bound_port = server.server_address[:2]
    url = f"http://{bound_host}:{bound_port}"
    return GatewayHandle(url, gateway.routes, runtime, gateway.timings, server, thread)
