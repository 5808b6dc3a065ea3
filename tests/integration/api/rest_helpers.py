"""What the API's integration tests do over HTTP again and again: a fresh user, their header, a conversation."""

from __future__ import annotations

import uuid

import requests

TIMEOUT = 30


def auth(user: str, **headers: str) -> dict[str, str]:
    """The local gateway's stand-in for a Cognito token of `user`, plus any other headers."""
    return {"Authorization": f"Bearer local-{user}", **headers}


def new_user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


def create_conversation(api: str, user: str, **body) -> str:
    response = requests.post(f"{api}/v1/conversations", json=body, headers=auth(user), timeout=TIMEOUT)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def list_messages(api: str, user: str, conversation_id: str) -> list[dict]:
    response = requests.get(
        f"{api}/v1/conversations/{conversation_id}/messages?limit=100", headers=auth(user), timeout=TIMEOUT
    )
    assert response.status_code == 200, response.text
    return response.json()["items"]
