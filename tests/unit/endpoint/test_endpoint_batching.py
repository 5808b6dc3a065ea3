"""Dynamic batching: what arrives together is served as one batch, within max size and max wait."""

from __future__ import annotations

import queue
import time
from collections import deque
from typing import Any

from endpoint_unit_fakes import RecordingBackend, make_config

from local.endpoint.batching import collect_batch
from local.endpoint.copies import Copy, Job


class VirtualQueue:
    """A queue on a virtual clock: items become available at their arrival time; waiting advances time."""

    def __init__(self, arrivals: list[tuple[float, Any]]):
        self.now = 0.0
        self.pending = deque(sorted(arrivals, key=lambda arrival: arrival[0]))

    def clock(self) -> float:
        return self.now

    def get(self, timeout: float | None) -> Any:
        if self.pending and (timeout is None or self.pending[0][0] <= self.now + timeout):
            arrival, item = self.pending.popleft()
            self.now = max(self.now, arrival)
            return item
        assert timeout is not None, "the test queue would block forever"
        self.now += timeout
        raise queue.Empty


def batches_of(arrivals: list[tuple[float, Any]], max_size: int, max_wait_s: float) -> list[list[Any]]:
    source = VirtualQueue(arrivals)
    batches = []
    while source.pending:
        batches.append(collect_batch(source.get, max_size, max_wait_s, clock=source.clock))
    return batches


def test_requests_arriving_together_form_one_batch():
    # Given four requests arriving within 3 ms and a 10 ms batching window
    arrivals = [(0.000, "a"), (0.001, "b"), (0.002, "c"), (0.003, "d")]
    # When batches are collected, then all four are served together
    assert batches_of(arrivals, max_size=8, max_wait_s=0.010) == [["a", "b", "c", "d"]]


def test_max_batch_size_splits_a_burst():
    # Given ten requests queued at once and a max batch of four
    arrivals = [(0.0, index) for index in range(10)]
    # When batches are collected, then they hold 4, 4 and 2 requests, in arrival order
    assert batches_of(arrivals, max_size=4, max_wait_s=1.0) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_max_wait_closes_the_batch_after_the_window():
    # Given requests at 0 and 5 ms, then at 15 and 18 ms, with a 10 ms window
    arrivals = [(0.000, "a"), (0.005, "b"), (0.015, "c"), (0.018, "d")]
    # When batches are collected, then the window after the first request closes before the third
    assert batches_of(arrivals, max_size=8, max_wait_s=0.010) == [["a", "b"], ["c", "d"]]


def test_zero_wait_takes_only_what_is_already_queued():
    # Given two requests queued together and one a millisecond later, with no batching window
    arrivals = [(0.0, "a"), (0.0, "b"), (0.001, "c")]
    # When batches are collected, then the late one is not waited for
    assert batches_of(arrivals, max_size=8, max_wait_s=0.0) == [["a", "b"], ["c"]]


def make_copy(backend: RecordingBackend, max_batch_size: int, retired: list[Copy] | None = None) -> Copy:
    settings = make_config(max_batch_size=max_batch_size).components["chat"].local
    batches: list[int] = []
    copy = Copy(
        "chat", 1, "instance-0", backend, settings, batches.append, (retired if retired is not None else []).append
    )
    copy.start()
    return copy


def submit(copy: Copy, value: Any, **flags: Any) -> Job:
    job = Job({"value": value, **flags}, streaming=False, content_type="application/json")
    copy.acquire()
    copy.submit(job)
    return job


def outcome(job: Job) -> tuple[str, Any]:
    event = job.next_event(time.monotonic() + 10)
    assert event is not None, "no answer within 10 s"
    return event


def test_copy_serves_what_queued_during_a_batch_as_the_next_batch():
    # Given a copy (max batch 3) busy with a first request
    backend = RecordingBackend()
    backend.hold.clear()
    copy = make_copy(backend, max_batch_size=3)
    first = submit(copy, "first")
    assert backend.started.wait(10)
    # When five more requests queue up meanwhile and the first batch finishes
    queued = [submit(copy, index) for index in range(5)]
    backend.hold.set()
    answers = [outcome(job) for job in [first, *queued]]
    copy.retire()
    copy.join(10)
    # Then they ran as batches of 1, 3 and 2 and each caller got its own answer
    assert backend.batch_sizes == [1, 3, 2]
    assert answers == [("result", {"value": value}) for value in ["first", 0, 1, 2, 3, 4]]


def test_a_request_failing_alone_fails_only_itself():
    # Given a copy held while three requests queue, the middle one failing
    backend = RecordingBackend()
    backend.hold.clear()
    copy = make_copy(backend, max_batch_size=8)
    jobs = [submit(copy, "a"), submit(copy, "b", fail=True), submit(copy, "c")]
    backend.hold.set()
    # When they are answered
    answers = [outcome(job) for job in jobs]
    copy.retire()
    copy.join(10)
    # Then only the failing one gets its error
    assert answers[0] == ("result", {"value": "a"})
    assert answers[1][0] == "error" and "request b failed" in str(answers[1][1])
    assert answers[2] == ("result", {"value": "c"})


def test_a_batch_that_raises_fails_every_request_in_it():
    # Given two requests queued together, one making the whole batch raise
    backend = RecordingBackend()
    backend.hold.clear()
    copy = make_copy(backend, max_batch_size=8)
    blocker = submit(copy, "blocker")
    assert backend.started.wait(10)
    jobs = [submit(copy, "a"), submit(copy, "b", explode=True)]
    backend.hold.set()
    # When they are answered
    answers = [outcome(job) for job in jobs]
    copy.retire()
    copy.join(10)
    # Then both carry the batch's error, and the earlier request was unaffected
    assert outcome(blocker) == ("result", {"value": "blocker"})
    assert [kind for kind, _ in answers] == ["error", "error"]
    assert all("whole batch failed" in str(error) for _, error in answers)


def test_a_retired_copy_serves_its_queue_before_closing_its_backend():
    # Given a busy copy with requests queued behind the running one
    backend = RecordingBackend()
    backend.hold.clear()
    retired: list[Copy] = []
    copy = make_copy(backend, max_batch_size=2, retired=retired)
    jobs = [submit(copy, index) for index in range(5)]
    assert backend.started.wait(10)
    # When the copy is retired and its batches are let through
    copy.retire()
    closed_while_queued = backend.closed
    backend.hold.set()
    answers = [outcome(job) for job in jobs]
    copy.join(10)
    # Then every queued request is answered, and only then is the backend closed and the copy reported retired
    assert answers == [("result", {"value": index}) for index in range(5)]
    assert not closed_while_queued
    assert backend.closed
    assert retired == [copy]
    assert sum(backend.batch_sizes) == 5


def test_an_abandoned_request_is_skipped_if_it_has_not_started():
    # Given a held copy with a request queued behind a running one
    backend = RecordingBackend()
    backend.hold.clear()
    copy = make_copy(backend, max_batch_size=8)
    running = submit(copy, "running")
    assert backend.started.wait(10)
    abandoned = submit(copy, "gave up")
    # When its caller gives up before it starts
    abandoned.abandoned = True
    backend.hold.set()
    answer = outcome(running)
    copy.retire()
    copy.join(10)
    # Then it never reaches the backend and the copy's count of outstanding requests returns to zero
    assert answer == ("result", {"value": "running"})
    assert backend.batch_sizes == [1]
    assert copy.outstanding == 0
    assert abandoned.next_event(time.monotonic()) is None
