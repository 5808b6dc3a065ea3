"""Copies of an inference component: worker threads with their own queue and backend.

A request is routed to a copy (its outstanding count goes up at once, so concurrent routing sees it),
prepared by that copy's backend on the request thread, queued, and served by the copy's worker in a
dynamic batch, or, when the backend is a model server that batches by itself, handed to it at once with
up to `max_batch_size` requests in flight. Each request gets its own `Job`, through which its events
(streamed parts, then the result or error) flow back to the waiting request thread: answers never cross
between requests.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from local.backends.base import Backend, ContinuousBatchingBackend, ModelBackend
from local.endpoint.batching import collect_batch
from provisioning.config import LocalSettings

logger = logging.getLogger(__name__)

_WAKE = object()  # wakes a retiring worker so it can check whether it has drained


@dataclass
class Job:
    """One request's way through a copy. Events: ("part", bytes), ("result", value), ("error", exc).

    `content_type` types the answer: what the backend said when the request was prepared, or, for a model server's
    stream, what its response said (set with the parts, so it is known once the first part is received)."""

    prepared: Any
    streaming: bool
    content_type: str
    events: queue.SimpleQueue[tuple[str, Any]] = field(default_factory=queue.SimpleQueue)
    abandoned: bool = False  # the caller gave up (timeout or disconnect); skip it if not started

    def send_part(self, part: bytes, content_type: str | None = None) -> None:
        if content_type is not None:
            self.content_type = content_type
        self.events.put(("part", part))

    def finish(self, outcome: Any) -> None:
        self.events.put(("error", outcome) if isinstance(outcome, BaseException) else ("result", outcome))

    def next_event(self, deadline: float) -> tuple[str, Any] | None:
        """The next event, or None once the monotonic `deadline` passes."""
        try:
            return self.events.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None


BatchObserver = Callable[[int], None]


class Copy:
    """One copy of a component: a backend, a queue and a worker thread serving batches from it."""

    def __init__(
        self,
        component_name: str,
        copy_id: int,
        instance_id: str,
        backend: ModelBackend,
        settings: LocalSettings,
        on_batch: BatchObserver,
        on_retired: Callable[[Copy], None],
    ):
        self.component_name = component_name
        self.copy_id = copy_id
        self.instance_id = instance_id
        self.backend = backend
        self._settings = settings
        self._on_batch = on_batch
        self._on_retired = on_retired
        self._queue: queue.Queue[Any] = queue.Queue()
        self._lock = threading.Lock()
        self._outstanding = 0
        self.retiring = False
        self._thread = threading.Thread(
            target=self._serve, name=f"endpoint-{component_name}-copy-{copy_id}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    @property
    def outstanding(self) -> int:
        return self._outstanding

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    def acquire(self) -> None:
        """Count a request routed here (called under the component's routing lock)."""
        with self._lock:
            self._outstanding += 1

    def release(self, count: int = 1) -> None:
        """Count requests that are finished, or that failed before reaching the queue."""
        with self._lock:
            self._outstanding -= count
            drained = self.retiring and self._outstanding == 0
        if drained:
            self._queue.put(_WAKE)

    def submit(self, job: Job) -> None:
        self._queue.put(job)

    def retire(self) -> None:
        """Stop taking work: the worker serves what was routed here, then closes the backend."""
        with self._lock:
            self.retiring = True
        self._queue.put(_WAKE)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _get(self, timeout: float | None) -> Any:
        return self._queue.get(timeout=timeout)

    def _serve(self) -> None:
        try:
            if isinstance(self.backend, ContinuousBatchingBackend):
                self._serve_continuously(self.backend)
            else:
                self._serve_batches()
        finally:
            try:
                self.backend.close()
            except Exception:
                logger.exception("closing the backend of %s copy %s failed", self.component_name, self.copy_id)
            self._on_retired(self)

    def _serve_batches(self) -> None:
        assert isinstance(self.backend, Backend)
        while not (self.retiring and self._outstanding == 0):
            batch = collect_batch(self._get, self._settings.max_batch_size, self._settings.max_batch_wait_ms / 1000)
            jobs = [item for item in batch if item is not _WAKE]
            live = [job for job in jobs if not job.abandoned]
            if live:
                self._run(live)
            if jobs:
                self.release(len(jobs))

    def _serve_continuously(self, backend: ContinuousBatchingBackend) -> None:
        """Hand each request over as it arrives; the pool bounds how many the model server has at once."""
        with ThreadPoolExecutor(self._settings.max_batch_size, f"{self._thread.name}-request") as pool:
            while not (self.retiring and self._outstanding == 0):
                item = self._queue.get()
                if item is _WAKE:
                    continue
                if item.abandoned:
                    self.release()
                    continue
                pool.submit(self._run_one, backend, item)

    def _run_one(self, backend: ContinuousBatchingBackend, job: Job) -> None:
        try:
            if job.abandoned:  # the caller gave up while the request waited for a slot
                return
            try:
                outcome = backend.serve(job.prepared, job.send_part if job.streaming else None)
            except Exception as exc:
                outcome = exc
            self._on_batch(1)
            job.finish(outcome)
        finally:
            self.release()

    def _run(self, jobs: list[Job]) -> None:
        assert isinstance(self.backend, Backend)
        sinks = [job.send_part if job.streaming else None for job in jobs]
        try:
            outcomes = self.backend.run_batch([job.prepared for job in jobs], sinks)
            if len(outcomes) != len(jobs):
                raise RuntimeError(f"backend returned {len(outcomes)} responses for a batch of {len(jobs)}")
        except Exception as exc:
            logger.exception("%s copy %s: batch of %d failed", self.component_name, self.copy_id, len(jobs))
            outcomes = [exc] * len(jobs)
        self._on_batch(len(jobs))
        for job, outcome in zip(jobs, outcomes, strict=True):
            job.finish(outcome)
