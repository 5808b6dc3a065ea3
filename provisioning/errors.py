"""Turn AWS failures into one line that says what to do."""

from __future__ import annotations

import re

from botocore.exceptions import ClientError

_QUOTA = re.compile(r"service limit '([^']+)' is (\d+ \w+)")
_NOT_AUTHORIZED = re.compile(r"(?:User: )?(\S+) is not authorized to perform: (\S+)(?: on resource: (\S+))?")
_ACCESS_DENIED_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError"}
_CREDENTIAL_CODES = {"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException"}


class ProvisioningError(Exception):
    """A failure the CLI reports as one line (no traceback): what failed and what to do about it."""


def explain_reason(reason: str, region: str) -> str:
    """A failure reason from AWS (an API error message or a stack event), with the action it calls for."""
    quota = _QUOTA.search(reason)
    if quota:
        return (
            f"quota: raise the SageMaker quota '{quota.group(1)}' in {region} (Service Quotas > Amazon SageMaker; "
            f"it is {quota.group(2)} now), or choose a smaller endpoint.instance_type / fewer max_instances"
        )
    denied = _NOT_AUTHORIZED.search(reason)
    if denied:
        principal, action, resource = denied.groups()
        where = f" on {resource}" if resource else ""
        return f"permission: {principal} lacks {action}{where}; add that action to its IAM policy"
    if "CapacityError" in reason or "InsufficientInstanceCapacity" in reason or "insufficient capacity" in reason:
        return (
            f"capacity: AWS has no spare capacity for this instance type in {region} right now; "
            f"retry later, or use another region or instance type ({reason})"
        )
    return reason


def explain_client_error(error: ClientError, region: str) -> str:
    code = error.response.get("Error", {}).get("Code", "")
    message = error.response.get("Error", {}).get("Message", "") or str(error)
    operation = error.operation_name
    explained = explain_reason(message, region)
    if explained != message:
        return explained
    if code == "ResourceLimitExceeded":
        return f"quota: {operation} hit a SageMaker quota in {region}; raise it in Service Quotas ({message})"
    if code in _ACCESS_DENIED_CODES:
        return f"permission: the caller may not call {operation} ({message}); grant it in the caller's IAM policy"
    if code in _CREDENTIAL_CODES:
        return f"credentials: AWS rejected the credentials ({code}); refresh them (e.g. `aws sso login`) and retry"
    return f"{operation} failed: {code}: {message}"
