"""The REST adapter's errors: the HTTP status of each domain error (chatbot.errors), the caller's identity,
and the Powertools handlers that turn every failure into a JSON body `{"message": ..., "errors"?: [...]}`
(API Gateway's own shape).
"""

from __future__ import annotations

import re
from functools import lru_cache
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as RouteNotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError
from pydantic import BaseModel, Field

from chatbot.dynamodb import is_throttled
from chatbot.errors import (
    ConflictError,
    DomainError,
    InvalidInputError,
    NotFoundError,
    QuotaExceededError,
    RuleViolationError,
    TooLargeError,
)
from chatbot.inference import InferenceError, ModelUnavailableError
from chatbot.summarization import SummarizationError

logger = Logger(child=True)
metrics = Metrics()

_THROTTLED_RETRY_AFTER_S = 2
MODEL_UNAVAILABLE = "The model is busy or scaling up; your message is saved. Retry after the time in Retry-After."
MODEL_FAILED = "The model failed to answer; your message is saved. Retry later."
STORAGE_BUSY = "The service is busy; retry after the time in Retry-After (with the same Idempotency-Key, if any)."
INTERNAL_ERROR = "Internal server error."


class ErrorMessage(BaseModel):
    """The body of every error answer (API Gateway's own shape), for the OpenAPI document."""

    message: str = Field(description="What went wrong, for the user.")


# The documented answer of the routes that spend a per-user quota (chatbot.quotas).
QUOTA_EXCEEDED_RESPONSE: dict[str, Any] = {
    "description": "A per-user quota is used up (the message names it); retry after the time in Retry-After.",
    "headers": {
        "Retry-After": {"description": "Seconds until the quota's next window.", "schema": {"type": "integer"}}
    },
    "content": {"application/json": {"model": ErrorMessage}},
}


def quota_limited(success_status: int, model: type[BaseModel]) -> dict[int, dict[str, Any]]:
    """`responses` of a route that spends a quota: its success as Powertools describes it by default, and 429."""
    success = {"description": "Successful Response", "content": {"application/json": {"model": model}}}
    return {success_status: success, 429: QUOTA_EXCEEDED_RESPONSE}


class AuthenticationError(Exception):
    """The request carries no caller identity (the authorizer's claims are missing)."""


# How each domain error is answered (the most specific class listed first wins).
_DOMAIN_STATUSES: tuple[tuple[type[DomainError], HTTPStatus], ...] = (
    (NotFoundError, HTTPStatus.NOT_FOUND),
    (InvalidInputError, HTTPStatus.BAD_REQUEST),
    (TooLargeError, HTTPStatus.REQUEST_ENTITY_TOO_LARGE),
    (ConflictError, HTTPStatus.CONFLICT),
    (RuleViolationError, HTTPStatus.UNPROCESSABLE_ENTITY),
    (QuotaExceededError, HTTPStatus.TOO_MANY_REQUESTS),
)


def domain_error_status(exc: DomainError) -> HTTPStatus:
    return next((status for kind, status in _DOMAIN_STATUSES if isinstance(exc, kind)), HTTPStatus.BAD_REQUEST)


def failure_status(exc: Exception) -> tuple[HTTPStatus, str]:
    """The status and message the handlers below answer `exc` with (a stream's `error` event carries them too)."""
    if isinstance(exc, DomainError):
        return domain_error_status(exc), exc.message
    if isinstance(exc, ModelUnavailableError):
        return HTTPStatus.SERVICE_UNAVAILABLE, MODEL_UNAVAILABLE
    if isinstance(exc, InferenceError | SummarizationError):
        return HTTPStatus.BAD_GATEWAY, MODEL_FAILED
    if isinstance(exc, ClientError) and is_throttled(exc):
        return HTTPStatus.SERVICE_UNAVAILABLE, STORAGE_BUSY
    return HTTPStatus.INTERNAL_SERVER_ERROR, INTERNAL_ERROR


def error_response(
    status: int, message: str, errors: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None
) -> Response:
    body: dict[str, Any] = {"message": message}
    if errors:
        body["errors"] = errors
    return Response(status_code=int(status), content_type=content_types.APPLICATION_JSON, body=body, headers=headers)


def caller_id(app: Any) -> str:
    """The Cognito `sub` of the caller, as the authorizer put it in requestContext.authorizer.claims."""
    authorizer = app.current_event.request_context.authorizer
    claims = (authorizer.claims if authorizer else None) or {}
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise AuthenticationError("Unauthorized")
    return subject


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ())]
        errors.append({"field": ".".join(location), "message": error.get("msg", ""), "type": error.get("type", "")})
    return errors


def _path_pattern(openapi_path: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(openapi_path)) + "/?$")


@lru_cache(maxsize=8)
def _route_table(app: Any) -> tuple[tuple[re.Pattern[str], frozenset[str]], ...]:
    """(path pattern, methods) for every route of the resolver, from its own OpenAPI description."""
    paths = app.get_openapi_schema().paths or {}
    return tuple(
        (_path_pattern(path), frozenset(method.upper() for method, op in item.model_dump().items() if op))
        for path, item in paths.items()
    )


def allowed_methods(app: Any, path: str) -> list[str]:
    """Methods the resolver serves at `path` (empty when the path is unknown)."""
    return sorted(method for pattern, methods in _route_table(app) if pattern.match(path) for method in methods)


def register_error_handlers(app: Any) -> None:
    """Answer every failure with a JSON body and the right status (4xx the caller can fix, 5xx ours)."""

    @app.exception_handler(DomainError)
    def _domain_error(exc: DomainError) -> Response:
        metrics.add_metric(name="ClientErrors", unit=MetricUnit.Count, value=1)
        retry_after = getattr(exc, "retry_after_s", None)
        headers = {"Retry-After": str(retry_after)} if retry_after else None
        return error_response(domain_error_status(exc), exc.message, headers=headers)

    @app.exception_handler(AuthenticationError)
    def _unauthenticated(exc: AuthenticationError) -> Response:
        return error_response(HTTPStatus.UNAUTHORIZED, str(exc))

    @app.exception_handler(RequestValidationError)
    def _invalid_request(exc: RequestValidationError) -> Response:
        metrics.add_metric(name="ClientErrors", unit=MetricUnit.Count, value=1)
        errors = _validation_errors(exc)
        if any(error["type"] == "json_invalid" for error in errors):
            return error_response(HTTPStatus.BAD_REQUEST, "The request body is not valid JSON.")
        return error_response(HTTPStatus.UNPROCESSABLE_ENTITY, "The request does not match the schema.", errors)

    @app.not_found
    def _no_route(_: RouteNotFoundError) -> Response:
        methods = allowed_methods(app, app.current_event.path)
        if methods:
            return error_response(
                HTTPStatus.METHOD_NOT_ALLOWED,
                f"Method {app.current_event.http_method} is not allowed here; use {', '.join(methods)}.",
                headers={"Allow": ", ".join(methods)},
            )
        return error_response(HTTPStatus.NOT_FOUND, "Not found.")

    @app.exception_handler(ModelUnavailableError)
    def _model_unavailable(exc: ModelUnavailableError) -> Response:
        metrics.add_metric(name="ModelUnavailable", unit=MetricUnit.Count, value=1)
        logger.warning("model unavailable", extra={"error": str(exc), "retry_after_s": exc.retry_after_s})
        return error_response(
            HTTPStatus.SERVICE_UNAVAILABLE, MODEL_UNAVAILABLE, headers={"Retry-After": str(exc.retry_after_s)}
        )

    @app.exception_handler([InferenceError, SummarizationError])
    def _model_failed(exc: Exception) -> Response:
        metrics.add_metric(name="ModelErrors", unit=MetricUnit.Count, value=1)
        logger.error("model call failed", extra={"error": str(exc)})
        return error_response(HTTPStatus.BAD_GATEWAY, MODEL_FAILED)

    @app.exception_handler(ClientError)
    def _aws_error(exc: ClientError) -> Response:
        if is_throttled(exc):
            metrics.add_metric(name="StorageThrottled", unit=MetricUnit.Count, value=1)
            logger.warning("storage throttled", extra={"error": str(exc)})
            return error_response(
                HTTPStatus.SERVICE_UNAVAILABLE, STORAGE_BUSY, headers={"Retry-After": str(_THROTTLED_RETRY_AFTER_S)}
            )
        return _unexpected(exc)

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response:
        metrics.add_metric(name="ServerErrors", unit=MetricUnit.Count, value=1)
        logger.exception("unhandled error")
        return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, INTERNAL_ERROR)
