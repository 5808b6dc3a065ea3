"""SageMaker control-plane operations through an unmodified boto3 `sagemaker` client."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.integration


def test_describe_endpoint_reports_variant_scaling_and_routing(control, running):
    # When the endpoint is described
    described = control.describe_endpoint(EndpointName="local-test")
    # Then it is InService with the configured scaling and routing
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointArn"] == "arn:aws:sagemaker:us-east-1:123456789012:endpoint/local-test"
    [variant] = described["ProductionVariants"]
    assert variant["VariantName"] == "AllTraffic"
    assert variant["CurrentInstanceCount"] == 1
    assert variant["ManagedInstanceScaling"] == {"Status": "ENABLED", "MinInstanceCount": 1, "MaxInstanceCount": 2}
    assert variant["RoutingConfig"] == {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"}


def test_describe_unknown_endpoint_is_a_validation_exception(control):
    with pytest.raises(ClientError) as raised:
        control.describe_endpoint(EndpointName="elsewhere")
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert "Could not find endpoint" in raised.value.response["Error"]["Message"]


def test_describe_inference_component_reports_compute_and_copies(control):
    # When a component is described
    described = control.describe_inference_component(InferenceComponentName="chat")
    # Then its reservation and copy counts are those of the configuration
    assert described["InferenceComponentStatus"] == "InService"
    assert described["EndpointName"] == "local-test"
    assert described["Specification"]["ComputeResourceRequirements"] == {
        "NumberOfCpuCoresRequired": 2.0,
        "NumberOfAcceleratorDevicesRequired": 1.0,
        "MinMemoryRequiredInMb": 4096,
    }
    assert described["RuntimeConfig"] == {
        "DesiredCopyCount": 1,
        "CurrentCopyCount": 1,
        "PlacementStatus": [{"InstanceType": "ml.g5.12xlarge", "CurrentCopyCount": 1}],
    }


def test_list_inference_components_filters_sorts_and_pages(control):
    # When components are listed by name, one per page
    first = control.list_inference_components(SortBy="Name", SortOrder="Ascending", MaxResults=1)
    second = control.list_inference_components(
        SortBy="Name", SortOrder="Ascending", MaxResults=1, NextToken=first["NextToken"]
    )
    filtered = control.list_inference_components(NameContains="summ")
    # Then the pages hold each component once, in order, and the filter keeps only matches
    assert [item["InferenceComponentName"] for item in first["InferenceComponents"]] == ["chat"]
    assert [item["InferenceComponentName"] for item in second["InferenceComponents"]] == ["summarizer"]
    assert "NextToken" not in second
    assert [item["InferenceComponentName"] for item in filtered["InferenceComponents"]] == ["summarizer"]


def test_update_runtime_config_changes_the_copy_count_and_placement(control, running, runtime):
    # When the chat component is scaled to three copies
    response = control.update_inference_component_runtime_config(
        InferenceComponentName="chat", DesiredRuntimeConfig={"CopyCount": 3}
    )
    described = control.describe_inference_component(InferenceComponentName="chat")
    answer = runtime.invoke_endpoint(
        EndpointName="local-test", InferenceComponentName="chat", Body=json.dumps({"text": "still here"})
    )
    # Then three copies serve, each placed on an instance, and requests are still answered
    assert response["InferenceComponentArn"].endswith(":inference-component/chat")
    assert described["RuntimeConfig"]["CurrentCopyCount"] == 3
    assert json.loads(answer["Body"].read())["echo"] == "still here"
    copies = running.endpoint.status()["components"]["chat"]["copies"]
    assert [copy["copy_id"] for copy in copies] == [1, 2, 3]
    assert all(copy["instance_id"] == "instance-0" for copy in copies)


def test_update_beyond_capacity_is_resource_limit_exceeded_and_keeps_the_copies(control):
    # When more one-GPU copies are asked for than two 4-GPU instances hold (one GPU is the summarizer's)
    with pytest.raises(control.exceptions.ResourceLimitExceeded) as raised:
        control.update_inference_component_runtime_config(
            InferenceComponentName="chat", DesiredRuntimeConfig={"CopyCount": 8}
        )
    described = control.describe_inference_component(InferenceComponentName="chat")
    # Then the refusal says what is short, and the component keeps its one copy
    assert "accelerators (needs 1, 0 free)" in raised.value.response["Error"]["Message"]
    assert described["RuntimeConfig"]["DesiredCopyCount"] == 1
    assert described["RuntimeConfig"]["CurrentCopyCount"] == 1


def test_update_unknown_component_is_a_validation_exception(control):
    with pytest.raises(ClientError) as raised:
        control.update_inference_component_runtime_config(
            InferenceComponentName="translator", DesiredRuntimeConfig={"CopyCount": 1}
        )
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert "inference-component/translator" in raised.value.response["Error"]["Message"]


def test_unsupported_operation_is_a_json_error(control):
    with pytest.raises(ClientError) as raised:
        control.list_endpoints()
    assert raised.value.response["Error"]["Code"] == "UnknownOperationException"
    assert "ListEndpoints" in raised.value.response["Error"]["Message"]
