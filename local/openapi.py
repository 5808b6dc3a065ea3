"""The API's OpenAPI document, generated from the handlers' own resolvers and merged into openapi.json.

    python -m local.openapi            # rewrite openapi.json
    python -m local.openapi --check    # exit 1 if openapi.json is not up to date

Every function with `Api` events in template.yaml is imported in a process of its own, with its own
template environment (as `local.lambda_runtime` starts it), and its Powertools resolver describes its
routes; the documents are merged, with the Cognito authorizer described as a bearer token on every operation.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver

from local.aws import DUMMY_CREDENTIALS
from local.gateway import read_routes
from local.lambda_runtime import FunctionDefinition
from local.template import DEFAULT_TEMPLATE_PATH, PROJECT_ROOT, Template

OPENAPI_PATH = PROJECT_ROOT / "openapi.json"
TITLE = "GenAI chatbot API"
VERSION = "1.0.0"
DESCRIPTION = (
    "Conversations with the chat model (memory, summaries) and call-transcript summaries. Every operation "
    "needs a Cognito ID token as a bearer token; errors are JSON objects with a `message`."
)
SECURITY_SCHEME = "CognitoAuthorizer"


def _function_schema(definition: FunctionDefinition) -> dict[str, Any]:
    """The OpenAPI schema of one function's resolver, from a process with that function's environment."""
    completed = subprocess.run(
        [sys.executable, "-m", "local.openapi", "--describe-handler", definition.handler],
        cwd=definition.code_dir,
        env=definition.process_environment(DUMMY_CREDENTIALS),
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{definition.logical_id}: describing its routes failed:\n{completed.stderr}")
    return json.loads(completed.stdout)


def _describe_handler(handler: str) -> str:
    """The schema of the resolver in the handler's module (run in the function's code directory)."""
    return _resolver(importlib.import_module(handler.rsplit(".", 1)[0])).get_openapi_json_schema()


def _resolver(module: Any) -> ApiGatewayResolver:
    resolvers = [value for value in vars(module).values() if isinstance(value, ApiGatewayResolver)]
    if len(resolvers) != 1:
        raise ValueError(f"{module.__file__}: expected one Powertools resolver, found {len(resolvers)}")
    return resolvers[0]


def _merge(target: dict[str, Any], source: dict[str, Any], what: str) -> None:
    for name, value in source.items():
        if name in target and target[name] != value:
            raise ValueError(f"{what} {name!r} is defined differently by two functions")
        target[name] = value


def build_openapi(template_path: Path | str = DEFAULT_TEMPLATE_PATH) -> dict[str, Any]:
    template = Template(template_path)
    routes, _ = read_routes(template)
    functions = sorted({route.function for route in routes})
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION, "description": DESCRIPTION},
        "servers": [{"url": "/"}],
        "paths": {},
        "components": {
            "schemas": {},
            "securitySchemes": {SECURITY_SCHEME: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "security": [{SECURITY_SCHEME: []}],
    }
    for function in functions:
        schema = _function_schema(FunctionDefinition.from_template(template, function))
        for path, operations in schema.get("paths", {}).items():
            _merge(document["paths"].setdefault(path, {}), operations, f"operation on {path}")
        _merge(document["components"]["schemas"], schema.get("components", {}).get("schemas", {}), "schema")
    document["paths"] = dict(sorted(document["paths"].items()))
    document["components"]["schemas"] = dict(sorted(document["components"]["schemas"].items()))
    return document


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.openapi", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if openapi.json is out of date")
    parser.add_argument("--output", type=Path, default=OPENAPI_PATH)
    parser.add_argument("--describe-handler", metavar="MODULE.FUNCTION", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.describe_handler:  # the child process of _function_schema
        print(_describe_handler(args.describe_handler))
        return 0
    text = render(build_openapi())
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run `python -m local.openapi`", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date")
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {os.path.relpath(args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
