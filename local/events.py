"""API Gateway REST proxy events, shaped as API Gateway sends them with a Cognito user pool authorizer.

Used by the local gateway for every request, and by `python -m local.events` to (re)write the sample
events in events/conversations/ (one per route, body base64-encoded as `sam local generate-event
apigateway aws-proxy` makes it; usable by `sam local invoke -e` and by the tests).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chatbot.dynamodb import serialize

from local.template import LOCAL_ACCOUNT_ID, LOCAL_REGION, PROJECT_ROOT

SAMPLE_DIR = PROJECT_ROOT / "events" / "conversations"
SAMPLE_USER = "11111111-2222-3333-4444-555555555555"
SAMPLE_CONVERSATION_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
SAMPLE_JOB_ID = "9a1e5c3b-7d2f-5e84-b6a0-3c4d5e6f7a8b"
_STREAM_ARN = (
    f"arn:aws:dynamodb:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:table/genai-chatbot-dev/stream/2026-11-25T00:00:00.000"
)


def cognito_claims(user: str, email: str | None = None) -> dict[str, str]:
    """The claims the Cognito authorizer passes on for an ID token of `user` (values are strings)."""
    now = int(time.time())
    return {
        "sub": user,
        "cognito:username": user,
        "email": email or f"{user}@example.com",
        "email_verified": "true",
        "token_use": "id",
        "auth_time": str(now),
        "iat": str(now),
        "exp": str(now + 3600),
        "iss": f"https://cognito-idp.{LOCAL_REGION}.amazonaws.com/{LOCAL_REGION}_local",
        "aud": "local-client",
    }


def rest_proxy_event(
    *,
    method: str,
    path: str,
    resource: str,
    path_parameters: Mapping[str, str] | None = None,
    query: Mapping[str, list[str]] | None = None,
    headers: Mapping[str, list[str]] | None = None,
    body: bytes | None = None,
    claims: Mapping[str, str] | None = None,
    stage: str = "dev",
    base64_body: bool = False,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """One REST proxy event. Multi-value maps are the truth; single-value maps keep the last value,
    as API Gateway does. The body is text (isBase64Encoded false) unless `base64_body` is set."""
    headers = {name: list(values) for name, values in (headers or {}).items()}
    query = {name: list(values) for name, values in (query or {}).items()}
    if body is None:
        event_body = None
    elif base64_body:
        event_body = base64.b64encode(body).decode("ascii")
    else:
        event_body = body.decode("utf-8")
    now = datetime.now(UTC)
    request_context: dict[str, Any] = {
        "accountId": LOCAL_ACCOUNT_ID,
        "resourceId": "local",
        "stage": stage,
        "requestId": str(uuid.uuid4()),
        "extendedRequestId": str(uuid.uuid4()),
        "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "requestTimeEpoch": int(now.timestamp() * 1000),
        "identity": {"sourceIp": source_ip, "userAgent": _last(headers, "User-Agent")},
        "path": f"/{stage}{path}",
        "resourcePath": resource,
        "httpMethod": method,
        "apiId": "local",
        "protocol": "HTTP/1.1",
        "domainName": "localhost",
    }
    if claims is not None:
        request_context["authorizer"] = {"claims": dict(claims)}
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": {name: values[-1] for name, values in headers.items() if values} or None,
        "multiValueHeaders": headers or None,
        "queryStringParameters": {name: values[-1] for name, values in query.items() if values} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": dict(path_parameters) if path_parameters else None,
        "stageVariables": None,
        "requestContext": request_context,
        "body": event_body,
        "isBase64Encoded": base64_body and body is not None,
    }


def _last(headers: Mapping[str, list[str]], name: str) -> str | None:
    for key, values in headers.items():
        if key.lower() == name.lower() and values:
            return values[-1]
    return None


# (file name, method, resource, query, extra headers, JSON body)
_SAMPLES: list[tuple[str, str, str, dict[str, list[str]], dict[str, list[str]], Any]] = [
    (
        "create-conversation",
        "POST",
        "/v1/conversations",
        {},
        {},
        {"title": "Billing question", "system_prompt": "You are a concise support agent."},
    ),
    ("list-conversations", "GET", "/v1/conversations", {"limit": ["10"]}, {}, None),
    ("get-conversation", "GET", "/v1/conversations/{conversation_id}", {}, {}, None),
    (
        "rename-conversation",
        "PATCH",
        "/v1/conversations/{conversation_id}",
        {},
        {},
        {"title": "Double charge in November"},
    ),
    ("delete-conversation", "DELETE", "/v1/conversations/{conversation_id}", {}, {}, None),
    ("list-messages", "GET", "/v1/conversations/{conversation_id}/messages", {"limit": ["20"]}, {}, None),
    (
        "send-message",
        "POST",
        "/v1/conversations/{conversation_id}/messages",
        {},
        {"Idempotency-Key": ["7c1d2a4e-3b5f-4f8e-9a0b-1c2d3e4f5a6b"]},
        {"content": "My invoice shows two charges for November. Can you help?"},
    ),
    ("retry-message", "POST", "/v1/conversations/{conversation_id}/messages/retry", {}, {}, None),
    ("clear-conversation", "DELETE", "/v1/conversations/{conversation_id}/messages", {}, {}, None),
    (
        "summarize-conversation",
        "POST",
        "/v1/conversations/{conversation_id}/summary",
        {},
        {},
        {"user_label": "Customer", "assistant_label": "Agent"},
    ),
    ("get-summary", "GET", "/v1/conversations/{conversation_id}/summary", {}, {}, None),
    ("ask-about-call", "POST", "/v1/transcripts/{job_id}/conversations", {}, {}, {"title": "Router call"}),
]


def sample_events() -> dict[str, dict[str, Any]]:
    """One sample REST proxy event per conversations route, keyed by file name (without .json)."""
    samples = {}
    for name, method, resource, query, extra_headers, body in _SAMPLES:
        identifiers = {"conversation_id": SAMPLE_CONVERSATION_ID, "job_id": SAMPLE_JOB_ID}
        path_parameters = {name: value for name, value in identifiers.items() if f"{{{name}}}" in resource} or None
        path = resource.replace("{conversation_id}", SAMPLE_CONVERSATION_ID).replace("{job_id}", SAMPLE_JOB_ID)
        headers = {
            "Accept": ["application/json"],
            "Authorization": ["Bearer eyJraWQiOiJzYW1wbGUifQ.sample.token"],
            "Host": ["1234567890.execute-api.us-east-1.amazonaws.com"],
            "User-Agent": ["sample-client/1.0"],
            "X-Forwarded-Proto": ["https"],
            **({"Content-Type": ["application/json"]} if body is not None else {}),
            **extra_headers,
        }
        event = rest_proxy_event(
            method=method,
            path=path,
            resource=resource,
            path_parameters=path_parameters,
            query=query,
            headers=headers,
            body=json.dumps(body).encode("utf-8") if body is not None else None,
            claims=cognito_claims(SAMPLE_USER),
            stage="dev",
            base64_body=body is not None,
        )
        # Fixed values so the committed files do not change on every run.
        event["requestContext"].update(
            requestId="c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            extendedRequestId="c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            requestTime="25/Nov/2026:12:00:00 +0000",
            requestTimeEpoch=1795608000000,
            apiId="1234567890",
        )
        event["requestContext"]["authorizer"]["claims"].update(
            auth_time="1795608000", iat="1795608000", exp="1795611600"
        )
        samples[name] = event
    return samples


def ttl_removal_stream_event(conversation_ids: list[str]) -> dict[str, Any]:
    """DynamoDB stream records (KEYS_ONLY) for META items removed by TTL, as the stream delivers them."""
    stream_arn = _STREAM_ARN
    records = []
    for index, conversation_id in enumerate(conversation_ids):
        records.append(
            {
                "eventID": f"{index + 1:032x}",
                "eventName": "REMOVE",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": LOCAL_REGION,
                "dynamodb": {
                    "ApproximateCreationDateTime": 1795608000,
                    "Keys": {"pk": {"S": f"CONV#{conversation_id}"}, "sk": {"S": "META"}},
                    "SequenceNumber": f"{111 + index}00000000000000000001",
                    "SizeBytes": 60,
                    "StreamViewType": "KEYS_ONLY",
                },
                "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
                "eventSourceARN": stream_arn,
            }
        )
    return {"Records": records}


def scheduled_event() -> dict[str, Any]:
    """The event an EventBridge schedule rule sends its target (fixed id and time, so the sample file is stable)."""
    return {
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": LOCAL_ACCOUNT_ID,
        "time": "2026-11-25T12:00:00Z",
        "region": LOCAL_REGION,
        "resources": [f"arn:aws:events:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:rule/genai-chatbot-dev-OrphanSweep"],
        "detail": {},
    }


def meta_change_stream_event(
    conversation_id: str, old_image: Mapping[str, Any], new_image: Mapping[str, Any]
) -> dict[str, Any]:
    """A DynamoDB stream record (NEW_AND_OLD_IMAGES) for a change of a conversation's META item, e.g. a clear;
    the images are plain values (serialized here) without the key attributes."""
    keys = {"pk": f"CONV#{conversation_id}", "sk": "META"}
    return {
        "Records": [
            {
                "eventID": f"{1:032x}",
                "eventName": "MODIFY",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": LOCAL_REGION,
                "dynamodb": {
                    "ApproximateCreationDateTime": 1795608000,
                    "Keys": serialize(keys),
                    "OldImage": serialize({**keys, **old_image}),
                    "NewImage": serialize({**keys, **new_image}),
                    "SequenceNumber": "11100000000000000000001",
                    "SizeBytes": 200,
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                },
                "eventSourceARN": _STREAM_ARN,
            }
        ]
    }


def sample_clear_stream_event() -> dict[str, Any]:
    """The stream record of a clear of a conversation of 3 turns (the reset moved cleared_through from 0 to 6)."""
    before = {"owner": SAMPLE_USER, "turn_count": 3, "message_count": 6, "generation": 0, "summarized_through": 0}
    after = {**before, "message_count": 0, "generation": 1, "summarized_through": 6, "cleared_through": 6}
    return meta_change_stream_event(SAMPLE_CONVERSATION_ID, before, after)


def write_samples(directory: Path = SAMPLE_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    samples = {
        **sample_events(),
        "conversation-expired-stream": ttl_removal_stream_event([SAMPLE_CONVERSATION_ID]),
        "orphan-sweep-schedule": scheduled_event(),
        "conversation-cleared-stream": sample_clear_stream_event(),
    }
    for name, event in samples.items():
        path = directory / f"{name}.json"
        path.write_text(json.dumps(event, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_samples():
        print(written_path.relative_to(PROJECT_ROOT))
