"""Routing: least outstanding requests picks the least loaded copy; random spreads over all copies."""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass

import pytest
from endpoint_unit_fakes import RecordingBackend, json_invocation, make_config

from local.endpoint.routing import choose_copy
from local.endpoint.runtime import LocalEndpoint
from provisioning.config import RoutingStrategy


@dataclass
class FakeCopy:
    name: str
    outstanding: int


def test_least_outstanding_picks_the_least_loaded_copy():
    # Given three copies with different loads
    copies = [FakeCopy("a", 3), FakeCopy("b", 1), FakeCopy("c", 2)]
    rng = random.Random(7)
    # When routing many times
    picks = {choose_copy(copies, RoutingStrategy.LEAST_OUTSTANDING_REQUESTS, rng).name for _ in range(50)}
    # Then only the least loaded is ever picked
    assert picks == {"b"}


def test_least_outstanding_breaks_ties_at_random():
    # Given two equally idle copies and a busy one
    copies = [FakeCopy("a", 0), FakeCopy("b", 0), FakeCopy("c", 4)]
    rng = random.Random(11)
    # When routing many times
    picks = Counter(choose_copy(copies, RoutingStrategy.LEAST_OUTSTANDING_REQUESTS, rng).name for _ in range(400))
    # Then both idle copies share the traffic and the busy one gets none
    assert set(picks) == {"a", "b"}
    assert min(picks.values()) > 120


def test_random_spreads_over_every_copy_whatever_its_load():
    # Given copies with very different loads
    copies = [FakeCopy("a", 0), FakeCopy("b", 5), FakeCopy("c", 9)]
    rng = random.Random(3)
    # When routing many times at random
    picks = Counter(choose_copy(copies, RoutingStrategy.RANDOM, rng).name for _ in range(600))
    # Then every copy gets a fair share
    assert set(picks) == {"a", "b", "c"}
    assert min(picks.values()) > 120


def test_routing_with_no_copies_is_an_error():
    with pytest.raises(ValueError, match="no copies"):
        choose_copy([], RoutingStrategy.RANDOM, random.Random(0))


def test_component_routes_each_new_request_to_the_copy_with_fewest_in_flight():
    # Given a component with two copies whose backends hold their batches
    backends: list[RecordingBackend] = []

    def factory(name, component):
        backends.append(RecordingBackend())
        backends[-1].hold.clear()
        return backends[-1]

    endpoint = LocalEndpoint(make_config(copies=2, max_batch_size=1), factory, rng=random.Random(5))
    endpoint.start()
    component = endpoint.components["chat"]
    try:
        # When four requests arrive while nothing finishes
        jobs = [component.submit(json_invocation({"value": index}), streaming=False) for index in range(4)]
        loads = sorted(copy["outstanding"] for copy in component.snapshot()["copies"])
    finally:
        for backend in backends:
            backend.hold.set()
        answers = [job.next_event(deadline=time.monotonic() + 10) for job in jobs]
        endpoint.stop()
    # Then they were spread two and two, and each got its own answer
    assert loads == [2, 2]
    assert answers == [("result", {"value": index}) for index in range(4)]
