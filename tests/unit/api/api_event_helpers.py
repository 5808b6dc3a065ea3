"""Helpers to build events from the committed samples and to call the handler."""

from __future__ import annotations

import base64
import copy
import io
import json
from pathlib import Path

from botocore.response import StreamingBody

from local.events import SAMPLE_CONVERSATION_ID, SAMPLE_DIR


def model_answer(value) -> dict:
    raw = json.dumps(value).encode()
    return {"Body": StreamingBody(io.BytesIO(raw), len(raw)), "ContentType": "application/json"}


def sample_event(
    name: str,
    conversation_id: str | None = None,
    body=None,
    user: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict:
    """A committed sample event from events/conversations/, adjusted for one test."""
    event = copy.deepcopy(json.loads(Path(SAMPLE_DIR, f"{name}.json").read_text()))
    if conversation_id is not None:
        event["path"] = event["path"].replace(SAMPLE_CONVERSATION_ID, conversation_id)
        event["pathParameters"]["conversation_id"] = conversation_id
    if body is not None:
        raw = body if isinstance(body, str) else json.dumps(body)
        event["body"] = base64.b64encode(raw.encode()).decode()
        event["isBase64Encoded"] = True
    if user is not None:
        event["requestContext"]["authorizer"]["claims"]["sub"] = user
    for name_, value in (headers or {}).items():
        event["headers"][name_] = value
        event["multiValueHeaders"][name_] = [value]
    return event


def call(module, event, context) -> tuple[int, dict, dict]:
    response = module.lambda_handler(event, context)
    headers = {k: v[-1] for k, v in (response.get("multiValueHeaders") or {}).items()}
    headers.update(response.get("headers") or {})
    body = json.loads(response["body"]) if response.get("body") else {}
    return response["statusCode"], headers, body
