"""Sign-in that fits the API's authorizer: Cognito user pool tokens in AWS, `local-<user>` tokens locally."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ui.settings import AuthMode, UISettings

# The local gateway maps `local-<user>` to the claims {sub: <user>}; keep names URL- and log-safe.
_LOCAL_USER_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")


class SignInError(Exception):
    """Sign-in failed; the message is written for the person signing in."""


@dataclass(frozen=True)
class AuthSession:
    user: str
    token: str
    refresh_token: str | None = None


def sign_in(settings: UISettings, user: str, password: str = "", *, cognito_client: Any = None) -> AuthSession:
    user = user.strip()
    if not user:
        raise SignInError("Enter a user name.")
    if settings.auth_mode is AuthMode.LOCAL:
        if not _LOCAL_USER_NAME.match(user):
            raise SignInError("Use 1 to 64 letters, digits, dots, dashes, underscores or @ for the local user name.")
        return AuthSession(user=user, token=f"local-{user}")
    if not password:
        raise SignInError("Enter your password.")
    client = cognito_client or _cognito_client(settings)
    try:
        answer = client.initiate_auth(
            AuthFlow="USER_PASSWORD_AUTH",
            ClientId=settings.cognito_client_id,
            AuthParameters={"USERNAME": user, "PASSWORD": password},
        )
    except client.exceptions.NotAuthorizedException:
        raise SignInError("Wrong user name or password.") from None
    except client.exceptions.UserNotFoundException:
        raise SignInError("Wrong user name or password.") from None
    except client.exceptions.UserNotConfirmedException:
        raise SignInError("This account is not confirmed yet; confirm it, then sign in.") from None
    except client.exceptions.PasswordResetRequiredException:
        raise SignInError("A password reset is required for this account.") from None
    except client.exceptions.TooManyRequestsException:
        raise SignInError("Too many sign-in attempts; wait a moment and try again.") from None
    if "AuthenticationResult" not in answer:
        challenge = answer.get("ChallengeName", "an extra step")
        raise SignInError(f"This account needs {challenge} before it can sign in here; complete it first.")
    result = answer["AuthenticationResult"]
    # The REST API's Cognito authorizer (no OAuth scopes) validates the ID token.
    return AuthSession(user=user, token=result["IdToken"], refresh_token=result.get("RefreshToken"))


def refresh(settings: UISettings, session: AuthSession, *, cognito_client: Any = None) -> AuthSession | None:
    """A new ID token from the refresh token, or None when the session cannot be renewed (sign in again)."""
    if settings.auth_mode is AuthMode.LOCAL or not session.refresh_token:
        return None
    client = cognito_client or _cognito_client(settings)
    try:
        answer = client.initiate_auth(
            AuthFlow="REFRESH_TOKEN_AUTH",
            ClientId=settings.cognito_client_id,
            AuthParameters={"REFRESH_TOKEN": session.refresh_token},
        )
    except client.exceptions.NotAuthorizedException:
        return None
    result = answer.get("AuthenticationResult")
    if not result:
        return None
    return AuthSession(user=session.user, token=result["IdToken"], refresh_token=session.refresh_token)


def _cognito_client(settings: UISettings) -> Any:
    import boto3  # only the Cognito mode needs it; keeps the local UI's start-up light

    return boto3.client("cognito-idp", region_name=settings.cognito_region)
