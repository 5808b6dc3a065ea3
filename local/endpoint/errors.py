"""Errors in the shapes SageMaker returns, so boto3 raises its modelled exceptions.

Runtime errors (rest-json) carry the `x-amzn-ErrorType` header and a JSON body with `Message`;
control-plane errors (JSON 1.1) are recognised by the body's `__type`. Every error here sends both.
"""

from __future__ import annotations

from typing import Any

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
VARIANT_NAME = "AllTraffic"
_ERROR_TYPE_NAMESPACE = "http://internal.amazon.com/coral/com.amazon.sagemaker/"

MISSING_COMPONENT_MESSAGE = (
    "Inference Component Name header is required for endpoints to which you plan to deploy inference "
    "components. Please include Inference Component Name header or consider using SageMaker models."
)
NO_CAPACITY_MESSAGE = (
    "Inference Component has no capacity to process this request. ApplicationAutoScaling may be in-progress "
    "(if configured) or try to increase the capacity by invoking UpdateInferenceComponentRuntimeConfig API."
)
MODEL_TIMEOUT_MESSAGE = (
    "Your invocation timed out while waiting for a response from container primary. Review the latency "
    "metrics for each container in Amazon CloudWatch, resolve the issue, and try again."
)


def endpoint_arn(endpoint_name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}:endpoint/{endpoint_name.lower()}"


def component_arn(component_name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}:inference-component/{component_name}"


def log_group_arn(component_name: str) -> str:
    return f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:/aws/sagemaker/InferenceComponents/{component_name}"


class EndpointError(Exception):
    """An error answered as JSON with SageMaker's error type; `fields` are extra modelled members."""

    status: int = 500
    error_type: str = "InternalFailure"

    def __init__(self, message: str, **fields: Any):
        super().__init__(message)
        self.message = message
        self.fields = fields

    @property
    def header_value(self) -> str:
        return f"{self.error_type}:{_ERROR_TYPE_NAMESPACE}"

    def body(self) -> dict[str, Any]:
        return {"__type": self.error_type, "Message": self.message, **self.fields}


class ValidationError(EndpointError):
    status = 400
    error_type = "ValidationError"


class InternalFailure(EndpointError):
    status = 500
    error_type = "InternalFailure"


class NotFound(EndpointError):
    status = 404
    error_type = "UnknownOperationException"


class ControlPlaneValidation(EndpointError):
    """The control plane's (JSON 1.1) validation error, e.g. an unknown inference component."""

    status = 400
    error_type = "ValidationException"


class UnknownOperation(EndpointError):
    status = 400
    error_type = "UnknownOperationException"


class ResourceLimitExceeded(EndpointError):
    status = 400
    error_type = "ResourceLimitExceeded"


class ModelError(EndpointError):
    status = 424
    error_type = "ModelError"

    def __init__(self, component_name: str, original_status: int, original_message: str):
        kind = "client" if 400 <= original_status < 500 else "server"
        log_group = f"/aws/sagemaker/InferenceComponents/{component_name}"
        message = (
            f'Received {kind} error ({original_status}) from primary with message "{original_message}". '
            f"See https://{REGION}.console.aws.amazon.com/cloudwatch/home?region={REGION}#logEventViewer:"
            f"group={log_group} in account {ACCOUNT_ID} for more information."
        )
        super().__init__(
            message,
            ErrorCode="CLIENT_ERROR_FROM_MODEL" if kind == "client" else "SERVER_ERROR_FROM_MODEL",
            OriginalStatusCode=original_status,
            OriginalMessage=original_message,
            LogStreamArn=log_group_arn(component_name),
        )


def model_timeout(component_name: str) -> ModelError:
    """What SageMaker answers when the model takes longer than the invocation timeout."""
    return ModelError(component_name, 0, MODEL_TIMEOUT_MESSAGE)
