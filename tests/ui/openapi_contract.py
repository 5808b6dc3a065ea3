"""The REST API's contract, read from openapi.json (generated from the real handlers): which routes exist, and
the schemas of their request and response bodies. The fake API checks every exchange against it, so the fake
cannot drift from the API the UI really talks to."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

OPENAPI_PATH = Path(__file__).resolve().parents[2] / "openapi.json"


class OpenApiContract:
    def __init__(self, path: Path = OPENAPI_PATH):
        self.document = json.loads(path.read_text(encoding="utf-8"))
        self._operations = [
            (method.upper(), re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", template) + "$"), operation)
            for template, item in self.document["paths"].items()
            for method, operation in item.items()
        ]

    def operation(self, method: str, path: str) -> dict[str, Any] | None:
        return next((op for verb, pattern, op in self._operations if verb == method and pattern.match(path)), None)

    def problems(self, method: str, path: str, request_body: Any, status: int, response_body: Any) -> list[str]:
        """What in this exchange the real API would not do (an unknown route, a body outside its schema)."""
        operation = self.operation(method, path)
        if operation is None:
            return [f"{method} {path}: no such operation in openapi.json"]
        found = []
        request_schema = _json_schema(operation.get("requestBody"))
        if request_schema and request_body not in (None, b""):
            found += [f"{method} {path} request: {e}" for e in self._errors(request_schema, request_body)]
        response_schema = _json_schema((operation.get("responses") or {}).get(str(status)))
        if response_schema and 200 <= status < 300:
            found += [f"{method} {path} {status} response: {e}" for e in self._errors(response_schema, response_body)]
        return found

    def _errors(self, schema: dict[str, Any], body: Any) -> list[str]:
        validator = Draft202012Validator({**schema, "components": self.document["components"]})
        return [
            f"{'/'.join(map(str, error.absolute_path)) or '(body)'}: {error.message}"
            for error in validator.iter_errors(body)
        ]


def _json_schema(described: dict[str, Any] | None) -> dict[str, Any] | None:
    return (((described or {}).get("content") or {}).get("application/json") or {}).get("schema")
