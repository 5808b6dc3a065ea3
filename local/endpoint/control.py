"""The SageMaker control-plane operations the local endpoint answers (JSON 1.1, `X-Amz-Target: SageMaker.<Op>`).

Response shapes follow botocore's `sagemaker` model, so a boto3 `sagemaker` client with `endpoint_url`
works: DescribeEndpoint, DescribeInferenceComponent, ListInferenceComponents and
UpdateInferenceComponentRuntimeConfig (which changes a component's copy count at run time).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from local.endpoint.errors import (
    VARIANT_NAME,
    ControlPlaneValidation,
    ResourceLimitExceeded,
    UnknownOperation,
    component_arn,
    endpoint_arn,
)
from local.endpoint.placement import PlacementError
from local.endpoint.runtime import ComponentRuntime, LocalEndpoint

TARGET_PREFIX = "SageMaker."
_MAX_LIST_RESULTS = 100


def _component(endpoint: LocalEndpoint, request: dict[str, Any]) -> ComponentRuntime:
    name = request.get("InferenceComponentName")
    if not isinstance(name, str) or not name:
        raise ControlPlaneValidation("InferenceComponentName is required.")
    component = endpoint.components.get(name)
    if component is None:
        raise ControlPlaneValidation(f'Could not find inference component "{component_arn(name)}".')
    return component


def describe_endpoint(endpoint: LocalEndpoint, request: dict[str, Any]) -> dict[str, Any]:
    name = request.get("EndpointName")
    if name != endpoint.name:
        raise ControlPlaneValidation(f'Could not find endpoint "{endpoint_arn(str(name))}".')
    scaling = endpoint.config.endpoint.scaling
    instances = endpoint.placement.instance_count()
    return {
        "EndpointName": endpoint.name,
        "EndpointArn": endpoint_arn(endpoint.name),
        "EndpointConfigName": f"{endpoint.name}-config",
        "ProductionVariants": [
            {
                "VariantName": VARIANT_NAME,
                "CurrentInstanceCount": instances,
                "DesiredInstanceCount": instances,
                "ManagedInstanceScaling": {
                    "Status": "ENABLED",
                    "MinInstanceCount": scaling.min_instances,
                    "MaxInstanceCount": scaling.max_instances,
                },
                "RoutingConfig": {"RoutingStrategy": endpoint.config.endpoint.routing_strategy.value},
            }
        ],
        "EndpointStatus": "InService",
        "CreationTime": endpoint.created_at,
        "LastModifiedTime": endpoint.modified_at,
    }


def _summary(endpoint: LocalEndpoint, component: ComponentRuntime) -> dict[str, Any]:
    return {
        "InferenceComponentName": component.name,
        "InferenceComponentArn": component_arn(component.name),
        "EndpointName": endpoint.name,
        "EndpointArn": endpoint_arn(endpoint.name),
        "VariantName": VARIANT_NAME,
        "InferenceComponentStatus": component.status,
        "CreationTime": component.created_at,
        "LastModifiedTime": component.modified_at,
    }


def describe_inference_component(endpoint: LocalEndpoint, request: dict[str, Any]) -> dict[str, Any]:
    component = _component(endpoint, request)
    compute = component.component.compute
    requirements: dict[str, Any] = {
        "NumberOfCpuCoresRequired": compute.cpu_cores,
        "MinMemoryRequiredInMb": compute.min_memory_mb,
    }
    if compute.accelerators:
        requirements["NumberOfAcceleratorDevicesRequired"] = compute.accelerators
    current = component.copy_count
    return {
        **_summary(endpoint, component),
        "Specification": {
            "Container": {"Environment": dict(component.component.container.environment)},
            "ComputeResourceRequirements": requirements,
        },
        "RuntimeConfig": {
            "DesiredCopyCount": component.desired_copies,
            "CurrentCopyCount": current,
            "PlacementStatus": [{"InstanceType": endpoint.placement.instance_type, "CurrentCopyCount": current}],
        },
    }


def list_inference_components(endpoint: LocalEndpoint, request: dict[str, Any]) -> dict[str, Any]:
    summaries = [_summary(endpoint, component) for component in endpoint.components.values()]
    filters: list[tuple[str, Callable[[dict[str, Any], Any], bool]]] = [
        ("NameContains", lambda s, v: v in s["InferenceComponentName"]),
        ("StatusEquals", lambda s, v: s["InferenceComponentStatus"] == v),
        ("EndpointNameEquals", lambda s, v: s["EndpointName"] == v),
        ("VariantNameEquals", lambda s, v: s["VariantName"] == v),
        ("CreationTimeBefore", lambda s, v: s["CreationTime"] < v),
        ("CreationTimeAfter", lambda s, v: s["CreationTime"] > v),
        ("LastModifiedTimeBefore", lambda s, v: s["LastModifiedTime"] < v),
        ("LastModifiedTimeAfter", lambda s, v: s["LastModifiedTime"] > v),
    ]
    for member, keep in filters:
        if member in request:
            summaries = [summary for summary in summaries if keep(summary, request[member])]
    sort_key = {"Name": "InferenceComponentName", "CreationTime": "CreationTime", "Status": "InferenceComponentStatus"}
    summaries.sort(
        key=lambda s: s[sort_key.get(request.get("SortBy", "CreationTime"), "CreationTime")],
        reverse=request.get("SortOrder", "Descending") == "Descending",
    )
    start = _page_start(request.get("NextToken"))
    size = min(int(request.get("MaxResults", _MAX_LIST_RESULTS)), _MAX_LIST_RESULTS)
    page = summaries[start : start + size]
    response: dict[str, Any] = {"InferenceComponents": page}
    if start + size < len(summaries):
        response["NextToken"] = str(start + size)
    return response


def _page_start(token: Any) -> int:
    if token is None:
        return 0
    if isinstance(token, str) and token.isdigit():
        return int(token)
    raise ControlPlaneValidation(f"NextToken {token!r} is not valid.")


def update_inference_component_runtime_config(endpoint: LocalEndpoint, request: dict[str, Any]) -> dict[str, Any]:
    component = _component(endpoint, request)
    desired = request.get("DesiredRuntimeConfig")
    copies = desired.get("CopyCount") if isinstance(desired, dict) else None
    if not isinstance(copies, int) or isinstance(copies, bool) or copies < 0:
        raise ControlPlaneValidation("DesiredRuntimeConfig.CopyCount must be an integer of at least 0.")
    try:
        component.scale_to(copies)
    except PlacementError as exc:
        raise ResourceLimitExceeded(str(exc)) from exc
    endpoint.modified_at = component.modified_at
    endpoint.tune_threads()
    return {"InferenceComponentArn": component_arn(component.name)}


OPERATIONS: dict[str, Callable[[LocalEndpoint, dict[str, Any]], dict[str, Any]]] = {
    "DescribeEndpoint": describe_endpoint,
    "DescribeInferenceComponent": describe_inference_component,
    "ListInferenceComponents": list_inference_components,
    "UpdateInferenceComponentRuntimeConfig": update_inference_component_runtime_config,
}


def handle_control_request(endpoint: LocalEndpoint, target: str | None, request: Any) -> dict[str, Any]:
    """Answer one control-plane call; raises EndpointError in the JSON 1.1 error shapes."""
    operation = (target or "").removeprefix(TARGET_PREFIX)
    handler = OPERATIONS.get(operation) if target and target.startswith(TARGET_PREFIX) else None
    if handler is None:
        raise UnknownOperation(
            f"Operation {target!r} is not supported by the local endpoint; supported: {', '.join(OPERATIONS)}."
        )
    if not isinstance(request, dict):
        raise ControlPlaneValidation("The request body must be a JSON object.")
    return handler(endpoint, request)
