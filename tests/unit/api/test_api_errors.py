"""The REST adapter answers each domain error (which carries no HTTP status) with its status and JSON body."""

import json

import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from chatbot.api_errors import register_error_handlers
from chatbot.errors import (
    ConflictError,
    IdempotencyKeyReusedError,
    InvalidInputError,
    NotFoundError,
    SystemPromptTooLongError,
    TooLargeError,
)

from local.events import cognito_claims, rest_proxy_event


@pytest.mark.parametrize(
    ("error", "status", "retry_after"),
    [
        (NotFoundError("Conversation not found."), 404, None),
        (InvalidInputError("The cursor is not valid."), 400, None),
        (TooLargeError("The message is too long."), 413, None),
        (ConflictError("Nothing to retry."), 409, None),
        (ConflictError("Still being processed; retry shortly.", retry_after_s=2), 409, "2"),
        (IdempotencyKeyReusedError("Key used with another body."), 422, None),
        (SystemPromptTooLongError("The limit is 2976 tokens."), 422, None),
    ],
)
def test_domain_errors_are_answered_with_their_status(error, status, retry_after, lambda_context):
    # Given a resolver whose route raises a domain error
    app = APIGatewayRestResolver()
    register_error_handlers(app)

    @app.get("/v1/failing")
    def failing() -> dict:
        raise error

    # When it is called
    event = rest_proxy_event(method="GET", path="/v1/failing", resource="/v1/failing", claims=cognito_claims("u"))
    response = app.resolve(event, lambda_context)

    # Then the status, the message and any Retry-After come from the error
    assert response["statusCode"] == status
    assert json.loads(response["body"]) == {"message": error.message}
    headers = {
        **(response.get("headers") or {}),
        **{k: v[0] for k, v in (response.get("multiValueHeaders") or {}).items()},
    }
    assert headers.get("Retry-After") == retry_after
