"""A local API Gateway (REST API, Lambda proxy integration) for every `Api` event in template.yaml.

Each route calls the same handler Lambda would: the function's CodeUri/Handler is loaded by file path,
once per simulated execution environment (environments are not shared between concurrent requests, as
in Lambda), and called with a REST proxy event. Local auth: `Authorization: Bearer local-<user>` stands
for Cognito user `<user>`; its claims go where the Cognito authorizer puts them. This scheme exists only
here: the deployed API only ever accepts Cognito tokens.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import logging
import os
import re
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from chatbot.settings import get_settings

from local.events import cognito_claims, rest_proxy_event
from local.lambda_context import LocalLambdaContext
from local.template import DEFAULT_TEMPLATE_PATH, Template

logger = logging.getLogger(__name__)

INTEGRATION_TIMEOUT_S = 29.0  # API Gateway's REST integration timeout
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway's request payload limit
MAX_ENVIRONMENTS_PER_FUNCTION = 16
LOCAL_TOKEN = re.compile(r"^Bearer local-([A-Za-z0-9._@+-]{1,128})$")
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
# Lambda sets these itself; the metrics default keeps EMF lines out of a developer's terminal.
_LOCAL_LAMBDA_DEFAULTS = {"POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_METRICS_DISABLED": "true"}


@dataclass(frozen=True)
class Route:
    method: str  # upper case, or ANY
    path: str  # as in the template, e.g. /v1/conversations/{conversation_id}
    function: str  # logical id
    api: str | None
    authorized: bool
    pattern: re.Pattern[str] = field(compare=False)

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
            routes.append(Route(method, path, function, api, authorized, _route_pattern(path)))
    return routes, cors


def handler_location(template: Template, logical_id: str) -> tuple[Path, str]:
    """(handler file, function name) from a function's CodeUri and Handler."""
    code_uri = template.function_property(logical_id, "CodeUri")
    handler = template.function_property(logical_id, "Handler")
    if not code_uri or not handler or "." not in handler:
        raise ValueError(f"{logical_id}: CodeUri and Handler (module.function) are required")
    module_path, handler_name = handler.rsplit(".", 1)
    file = (template.root / str(code_uri) / (module_path.replace(".", "/") + ".py")).resolve()
    if not file.is_file():
        raise ValueError(f"{logical_id}: handler file {file} does not exist")
    return file, handler_name


def load_module(file: Path, logical_id: str) -> ModuleType:
    """A fresh, private copy of a handler module, loaded by file path (no sys.path changes)."""
    name = f"_local_lambda_{logical_id}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {file}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Environment:
    """One execution environment: a private copy of the function's module (its own resolver state)."""

    def __init__(self, module: ModuleType, handler: Callable[[dict, Any], dict]):
        self.module = module
        self.handler = handler


class _FunctionPool:
    """Lambda-like scaling for one function: reuse an idle environment or start a new one."""

    def __init__(self, template: Template, logical_id: str):
        self.logical_id = logical_id
        self._file, self._handler_name = handler_location(template, logical_id)
        self.timeout_s = float(template.function_property(logical_id, "Timeout") or 3)
        self.memory_mb = int(template.function_property(logical_id, "MemorySize") or 128)
        self._idle: list[_Environment] = []
        self._started = 0
        self._lock = threading.Condition()

    def _start_environment(self) -> _Environment:
        module = load_module(self._file, self.logical_id)
        return _Environment(module, getattr(module, self._handler_name))

    def acquire(self) -> _Environment:
        with self._lock:
            while not self._idle and self._started >= MAX_ENVIRONMENTS_PER_FUNCTION:
                self._lock.wait(timeout=INTEGRATION_TIMEOUT_S)
            if self._idle:
                return self._idle.pop()
            self._started += 1
        try:
            return self._start_environment()
        except BaseException:
            with self._lock:
                self._started -= 1
                self._lock.notify()
            raise

    def release(self, environment: _Environment) -> None:
        with self._lock:
            self._idle.append(environment)
            self._lock.notify()

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        environment = self.acquire()
        try:
            context = LocalLambdaContext(self.logical_id, self.timeout_s, self.memory_mb)
            return environment.handler(event, context)
        finally:
            self.release(environment)


@dataclass
class GatewayHandle:
    url: str
    routes: list[Route]
    _server: ThreadingHTTPServer = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    _restore_environ: Callable[[], None] = field(repr=False)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        self._restore_environ()

    def __enter__(self) -> GatewayHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class _Gateway:
    def __init__(self, template: Template):
        self.template = template
        self.routes, self.cors = read_routes(template)
        self.pools = {route.function: _FunctionPool(template, route.function) for route in self.routes}
        self.stage = str(template.parameters.get("Stage") or "dev")

    def handle(
        self, method: str, raw_path: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
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
                outcome["response"] = self.pools[route.function].invoke(event)
            except BaseException as exc:  # a crashing handler is a 502, as in API Gateway
                outcome["error"] = exc

        worker = threading.Thread(target=call, name=f"lambda-{route.function}", daemon=True)
        worker.start()
        worker.join(INTEGRATION_TIMEOUT_S)
        if worker.is_alive():
            return self._error(HTTPStatus.GATEWAY_TIMEOUT, "Endpoint request timed out", api)
        if "error" in outcome:
            logger.error("%s failed: %r", route.function, outcome["error"], exc_info=outcome["error"])
            return self._error(HTTPStatus.BAD_GATEWAY, "Internal server error", api)
        try:
            return self._proxy_response(outcome["response"])
        except (KeyError, TypeError, ValueError) as exc:
            logger.error("%s returned a malformed proxy response: %s", route.function, exc)
            return self._error(HTTPStatus.BAD_GATEWAY, "Internal server error", api)

    @staticmethod
    def _proxy_response(response: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        status = int(response["statusCode"])
        headers: dict[str, list[str]] = {}
        for name, value in (response.get("headers") or {}).items():
            headers[name] = [str(value)]
        for name, values in (response.get("multiValueHeaders") or {}).items():
            headers[name] = [str(value) for value in values]
        body = response.get("body") or ""
        payload = base64.b64decode(body) if response.get("isBase64Encoded") else str(body).encode("utf-8")
        return status, [(name, value) for name, values in headers.items() for value in values], payload

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
                status, headers, payload = gateway._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Request Too Long", None)
                self.close_connection = True
            else:
                body = self.rfile.read(length) if length else b""
                try:
                    status, headers, payload = gateway.handle(self.command, self.path, list(self.headers.items()), body)
                except Exception:
                    logger.exception("local gateway failure")
                    status, headers, payload = gateway._error(
                        HTTPStatus.INTERNAL_SERVER_ERROR, "Internal server error", None
                    )
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in {"content-length", "connection", "transfer-encoding"}:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            logger.info("%s %s", self.address_string(), format % args)

    for method in _METHODS:
        setattr(Handler, f"do_{method}", Handler._serve)
    return Handler


def lambda_environment(template: Template, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables every function of the template sees locally (Globals + each function's own)."""
    environment: dict[str, str] = dict(_LOCAL_LAMBDA_DEFAULTS)
    for logical_id in template.resources_of_type("AWS::Serverless::Function"):
        for name, value in template.function_environment(logical_id).items():
            if environment.get(name, value) != value and name not in _LOCAL_LAMBDA_DEFAULTS:
                logger.warning("%s: %s differs between functions; the local gateway uses %r", logical_id, name, value)
            environment[name] = value
    environment.update(overrides or {})
    return environment


def start_gateway(
    template_path: Path | str = DEFAULT_TEMPLATE_PATH,
    host: str = "127.0.0.1",
    port: int = 3000,
    environment: Mapping[str, str] | None = None,
    parameters: Mapping[str, str] | None = None,
) -> GatewayHandle:
    """Serve the template's API routes on host:port (0 = a free port) until handle.stop().

    `environment` is laid over the functions' template environment (e.g. endpoint URLs, endpoint and
    component names, dummy credentials); it is applied to this process while the gateway runs, because
    the handlers, like Lambda's, read their configuration from os.environ.
    """
    template = Template(template_path, parameters)
    variables = lambda_environment(template, environment)
    previous = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    get_settings.cache_clear()  # handlers read settings once per process; this gateway's env must win

    def restore() -> None:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    try:
        gateway = _Gateway(template)
        server = ThreadingHTTPServer((host, port), _handler_class(gateway))
    except BaseException:
        restore()
        raise
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="local-api-gateway", daemon=True)
    thread.start()
    bound_host, bound_port = server.server_address[:2]
    return GatewayHandle(f"http://{bound_host}:{bound_port}", gateway.routes, server, thread, restore)
