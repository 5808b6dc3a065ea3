"""Placement: copies reserve compute on instances, overflow to new instances, are refused with a reason."""

from __future__ import annotations

import pytest
from endpoint_unit_fakes import RecordingBackend, make_config

from local.endpoint.placement import Placement, PlacementError
from local.endpoint.runtime import LocalEndpoint
from provisioning.config import Compute
from provisioning.instances import INSTANCE_TYPES

ONE_GPU = Compute(accelerators=1, cpu_cores=4, min_memory_mb=24576)


def test_copies_that_fit_share_the_first_instance():
    # Given a g5.12xlarge endpoint (4 GPUs)
    placement = Placement("ml.g5.12xlarge", min_instances=1, max_instances=2)
    # When two one-GPU copies are reserved
    first = placement.reserve("chat", 1, ONE_GPU)
    second = placement.reserve("summarizer", 1, ONE_GPU)
    # Then both land on the first instance, whose free capacity shrinks by both reservations
    assert first == second == "instance-0"
    [instance] = placement.snapshot()
    capacity = INSTANCE_TYPES["ml.g5.12xlarge"]
    assert instance["free"] == {
        "accelerators": capacity.accelerators - 2,
        "cpu_cores": capacity.cpu_cores - 8,
        "memory_mb": capacity.memory_mb - 2 * 24576,
    }
    assert instance["copies"] == ["chat/1", "summarizer/1"]


def test_a_copy_that_does_not_fit_goes_to_a_new_instance_up_to_the_maximum():
    # Given a single-GPU instance type and room for two instances
    placement = Placement("ml.g5.2xlarge", min_instances=1, max_instances=2)
    # When two one-GPU copies are reserved
    placed = [placement.reserve("chat", copy_id, ONE_GPU) for copy_id in (1, 2)]
    # Then the second overflows to a second instance
    assert placed == ["instance-0", "instance-1"]
    assert placement.instance_count() == 2


def test_a_copy_that_fits_nowhere_is_refused_naming_component_copy_and_shortfall():
    # Given both allowed single-GPU instances are full
    placement = Placement("ml.g5.2xlarge", min_instances=1, max_instances=2)
    for copy_id in (1, 2):
        placement.reserve("chat", copy_id, ONE_GPU)
    # When a third copy is reserved
    with pytest.raises(PlacementError) as refused:
        placement.reserve("chat", 3, ONE_GPU)
    # Then the message names the component, the copy and what is short, and nothing was added
    message = str(refused.value)
    assert "copy 3 of component 'chat'" in message
    assert "accelerators (needs 1, 0 free)" in message
    assert "maximum of 2 ml.g5.2xlarge" in message
    assert placement.instance_count() == 2


def test_memory_shortfall_is_named_when_it_is_the_only_problem():
    # Given a CPU instance with 16 GiB and a copy wanting 12 GiB already placed, no second instance allowed
    placement = Placement("ml.c5.2xlarge", min_instances=1, max_instances=1)
    needs_memory = Compute(accelerators=0, cpu_cores=1, min_memory_mb=12288)
    placement.reserve("summarizer", 1, needs_memory)
    # When another such copy is reserved
    with pytest.raises(PlacementError) as refused:
        placement.reserve("summarizer", 2, needs_memory)
    # Then only memory is reported short
    assert "memory MB (needs 12288, 4096 free)" in str(refused.value)
    assert "accelerators (" not in str(refused.value)


def test_releasing_the_last_copy_of_an_extra_instance_removes_that_instance():
    # Given copies spread over two single-GPU instances
    placement = Placement("ml.g5.2xlarge", min_instances=1, max_instances=2)
    placement.reserve("chat", 1, ONE_GPU)
    placement.reserve("chat", 2, ONE_GPU)
    # When the copy on the second instance is released
    placement.release("chat", 2)
    # Then the endpoint scales in to its minimum and the freed capacity is usable again
    assert placement.instance_count() == 1
    assert placement.reserve("chat", 3, ONE_GPU) == "instance-2"


def test_endpoint_start_refuses_copies_that_do_not_fit_and_closes_what_it_loaded():
    # Given a config asking for 3 one-GPU copies on at most 2 single-GPU instances
    config = make_config(instance_type="ml.g5.2xlarge", max_instances=2, copies=3)
    backends: list[RecordingBackend] = []

    def factory(name, component):
        backends.append(RecordingBackend())
        return backends[-1]

    endpoint = LocalEndpoint(config, factory)
    # When the endpoint starts
    with pytest.raises(PlacementError) as refused:
        endpoint.start()
    # Then it is refused before any backend is loaded, naming the copy that did not fit
    assert "copy 3 of component 'chat'" in str(refused.value)
    assert backends == []
    assert endpoint.placement.snapshot()[0]["copies"] == []


def test_endpoint_exposes_where_each_copy_runs():
    # Given a config with five one-GPU copies on 4-GPU instances
    config = make_config(instance_type="ml.g5.12xlarge", max_instances=2, copies=5)
    endpoint = LocalEndpoint(config, lambda name, component: RecordingBackend())
    endpoint.start()
    try:
        # When the status is read
        status = endpoint.status()
    finally:
        endpoint.stop()
    # Then four copies are on the first instance and the fifth on the second
    instances = {instance["instance_id"]: instance["copies"] for instance in status["instances"]}
    assert instances == {"instance-0": ["chat/1", "chat/2", "chat/3", "chat/4"], "instance-1": ["chat/5"]}
    copies = {copy["copy_id"]: copy["instance_id"] for copy in status["components"]["chat"]["copies"]}
    assert copies[5] == "instance-1"
