"""Typed settings for the web UI, read from the environment once per process."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class AuthMode(StrEnum):
    # Local stack: the local gateway accepts `Bearer local-<user>`; no password.
    LOCAL = "local"
    # AWS: Cognito user pool sign-in (USER_PASSWORD_AUTH) with the template's app client.
    COGNITO = "cognito"


class UISettingsError(ValueError):
    """The environment does not describe a usable UI configuration; the message names the variable."""


@dataclass(frozen=True)
class UISettings:
    api_url: str = "http://127.0.0.1:3000"
    auth_mode: AuthMode = AuthMode.LOCAL
    cognito_client_id: str | None = None
    cognito_region: str = "us-east-1"
    # API Gateway cuts integrations at 29 s, so waiting longer than ~35 s only hides a dead connection.
    request_timeout_s: float = 35.0
    job_poll_interval_s: float = 3.0
    max_upload_bytes: int = 50 * 1024 * 1024

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> UISettings:
        env = os.environ if environ is None else environ
        try:
            auth_mode = AuthMode(env.get("CHATBOT_AUTH_MODE", AuthMode.LOCAL.value).strip().lower())
        except ValueError:
            raise UISettingsError("CHATBOT_AUTH_MODE must be 'local' or 'cognito'") from None
        client_id = env.get("COGNITO_APP_CLIENT_ID") or None
        if auth_mode is AuthMode.COGNITO and not client_id:
            raise UISettingsError("COGNITO_APP_CLIENT_ID is required when CHATBOT_AUTH_MODE=cognito")
        api_url = env.get("CHATBOT_API_URL", cls.api_url).strip().rstrip("/")
        if not api_url.startswith(("http://", "https://")):
            raise UISettingsError(f"CHATBOT_API_URL must be an http(s) URL, got {api_url!r}")
        return cls(
            api_url=api_url,
            auth_mode=auth_mode,
            cognito_client_id=client_id,
            cognito_region=env.get("COGNITO_REGION")
            or env.get("AWS_REGION")
            or env.get("AWS_DEFAULT_REGION")
            or cls.cognito_region,
            request_timeout_s=_positive_float(env, "CHATBOT_UI_REQUEST_TIMEOUT_S", cls.request_timeout_s),
            job_poll_interval_s=_positive_float(env, "CHATBOT_UI_POLL_INTERVAL_S", cls.job_poll_interval_s),
            max_upload_bytes=int(_positive_float(env, "CHATBOT_UI_MAX_UPLOAD_BYTES", cls.max_upload_bytes)),
        )


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UISettingsError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise UISettingsError(f"{name} must be positive, got {raw!r}")
    return value
