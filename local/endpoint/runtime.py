"""The hosted endpoint without HTTP: components, their copies, placement, routing and counters."""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from local.backends.base import ContinuousBatchingBackend, Invocation, ModelBackend, PayloadError
from local.endpoint.copies import Copy, Job
from local.endpoint.errors import (
    ACCOUNT_ID,
    MISSING_COMPONENT_MESSAGE,
    NO_CAPACITY_MESSAGE,
    ModelError,
    ValidationError,
)
from local.endpoint.placement import Placement
from local.endpoint.routing import choose_copy
from provisioning.config import Component, EndpointConfig, RoutingStrategy

logger = logging.getLogger(__name__)

BackendFactory = Callable[[str, Component], ModelBackend]

_DRAIN_TIMEOUT_S = 30.0


class ComponentCounters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.errors: Counter[str] = Counter()
        self.batches = 0
        self.batched_requests = 0

    def record_request(self) -> None:
        with self._lock:
            self.requests += 1

    def record_error(self, code: str) -> None:
        with self._lock:
            self.errors[code] += 1

    def record_batch(self, size: int) -> None:
        with self._lock:
            self.batches += 1
            self.batched_requests += size

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            mean = self.batched_requests / self.batches if self.batches else 0.0
            return {
                "requests": self.requests,
                "errors": dict(self.errors),
                "batches": self.batches,
                "mean_batch_size": round(mean, 3),
            }


class ComponentRuntime:
    """One inference component: its copies, how requests are routed to them, and its copy count."""

    def __init__(
        self,
        name: str,
        component: Component,
        placement: Placement,
        backend_factory: BackendFactory,
        strategy: RoutingStrategy,
        rng: random.Random,
    ):
        self.name = name
        self.component = component
        self.settings = component.local
        self._placement = placement
        self._backend_factory = backend_factory
        self._strategy = strategy
        self._rng = rng
        self._copies: list[Copy] = []
        self._retiring: list[Copy] = []
        self._routing_lock = threading.Lock()
        self._update_lock = threading.Lock()
        self._copy_ids = itertools.count(1)
        self.counters = ComponentCounters()
        self.desired_copies = 0
        self.status = "Creating"
        self.backend_label = ""
        self.created_at = self.modified_at = time.time()

    @property
    def copy_count(self) -> int:
        with self._routing_lock:
            return len(self._copies)

    def scale_to(self, copies: int) -> None:
        """Change the copy count. New copies are placed and loaded before they take traffic; removed copies
        stop taking new requests at once and finish what was routed to them before closing."""
        with self._update_lock:
            previous_status, self.status = self.status, "Updating"
            previous_desired, self.desired_copies = self.desired_copies, copies
            try:
                current = self.copy_count
                if copies > current:
                    self._add_copies(copies - current)
                elif copies < current:
                    self._remove_copies(current - copies)
                self.status = "InService"
            except Exception:
                self.desired_copies = previous_desired
                self.status = "InService" if previous_status != "Creating" else "Failed"
                raise
            finally:
                self.modified_at = time.time()

    def _add_copies(self, count: int) -> None:
        reserved: list[tuple[int, str]] = []
        created: list[Copy] = []
        try:
            for _ in range(count):
                copy_id = next(self._copy_ids)
                reserved.append((copy_id, self._placement.reserve(self.name, copy_id, self.component.compute)))
            for copy_id, instance_id in reserved:
                backend = self._backend_factory(self.name, self.component)
                self.backend_label = backend.label or type(backend).__name__
                created.append(
                    Copy(
                        self.name,
                        copy_id,
                        instance_id,
                        backend,
                        self.settings,
                        self.counters.record_batch,
                        self._forget,
                    )
                )
        except Exception:
            for copy in created:
                copy.backend.close()
            for copy_id, _ in reserved:
                self._placement.release(self.name, copy_id)
            raise
        for copy in created:
            copy.start()
        with self._routing_lock:
            self._copies.extend(created)

    def _remove_copies(self, count: int) -> None:
        with self._routing_lock:
            leaving = self._copies[-count:]
            del self._copies[-count:]
            self._retiring.extend(leaving)
        for copy in leaving:
            copy.retire()

    def _forget(self, copy: Copy) -> None:
        self._placement.release(self.name, copy.copy_id)
        with self._routing_lock:
            if copy in self._retiring:
                self._retiring.remove(copy)

    def submit(self, invocation: Invocation, streaming: bool) -> Job:
        """Route, prepare on this thread (bad payloads fail fast), then queue on the chosen copy. A model server
        takes the request as it came; an in-process backend takes its parsed JSON, and refuses a payload as the
        container it imitates would: SageMaker relays that refusal as a ModelError."""
        with self._routing_lock:
            if not self._copies:
                raise ValidationError(NO_CAPACITY_MESSAGE)
            copy = choose_copy(self._copies, self._strategy, self._rng)
            copy.acquire()
        try:
            if isinstance(copy.backend, ContinuousBatchingBackend):
                prepared = copy.backend.prepare(invocation)
            else:
                prepared = copy.backend.prepare(parse_json_invocation(invocation))
        except PayloadError as exc:
            copy.release()
            refusal = copy.backend.refuse(exc)
            raise ModelError(self.name, refusal.status, refusal.body) from exc
        except Exception as exc:
            copy.release()
            logger.exception("%s: prepare failed", self.name)
            raise ModelError(self.name, 500, f"{type(exc).__name__}: {exc}") from exc
        job = Job(prepared, streaming, copy.backend.answer_content_type(prepared))
        copy.submit(job)
        return job

    def stop(self) -> None:
        with self._update_lock, self._routing_lock:
            leaving = list(self._copies)
            self._copies.clear()
            self._retiring.extend(leaving)
            waiting = list(self._retiring)
        for copy in leaving:
            copy.retire()
        deadline = time.monotonic() + _DRAIN_TIMEOUT_S
        for copy in waiting:
            copy.join(max(0.0, deadline - time.monotonic()))

    def snapshot(self) -> dict[str, Any]:
        with self._routing_lock:
            serving = [(copy, "serving") for copy in self._copies]
            draining = [(copy, "draining") for copy in self._retiring]
        return {
            "status": self.status,
            "backend": self.settings.backend,
            "backend_label": self.backend_label,
            "desired_copies": self.desired_copies,
            "current_copies": len(serving),
            "copies": [
                {
                    "copy_id": copy.copy_id,
                    "instance_id": copy.instance_id,
                    "state": state,
                    "outstanding": copy.outstanding,
                    "queue_depth": copy.queue_depth,
                }
                for copy, state in serving + draining
            ],
            "compute": self.component.compute.model_dump(),
            "batching": {
                "max_batch_size": self.settings.max_batch_size,
                "max_batch_wait_ms": self.settings.max_batch_wait_ms,
            },
            "timeout_s": self.settings.timeout_s,
            "counters": self.counters.snapshot(),
        }


def parse_json_invocation(invocation: Invocation) -> Any:
    """The JSON body the in-process backends read; they speak JSON only. A body they cannot read is the container's
    refusal (PayloadError), not SageMaker's: its message is the JSON decoder's, as in both containers."""
    content_type = invocation.content_type
    if content_type and "json" not in content_type.lower():
        raise PayloadError(f"Content-Type {content_type!r} is not supported: send application/json.")
    try:
        return json.loads(invocation.body)
    except ValueError as exc:  # JSONDecodeError, or UnicodeDecodeError for bytes that are not UTF-8
        raise PayloadError(str(exc)) from None


def tune_torch_threads(copies: int) -> None:
    """Share the cores between copies, keeping one for the HTTP side (request threads, tokenizing), but only
    if a backend already brought torch in. Oversubscribed intra-op threads stall each other badly."""
    torch = sys.modules.get("torch")
    if torch is None or copies < 1:
        return
    torch.set_num_threads(max(1, ((os.cpu_count() or 1) - 1) // copies))


class LocalEndpoint:
    """One endpoint and its inference components, hosted in this process."""

    def __init__(self, config: EndpointConfig, backend_factory: BackendFactory, rng: random.Random | None = None):
        self.config = config
        self.name = config.endpoint.name
        self.created_at = self.modified_at = time.time()
        self.placement = Placement(
            config.endpoint.instance_type, config.endpoint.scaling.min_instances, config.endpoint.scaling.max_instances
        )
        rng = rng or random.Random()
        self.components = {
            name: ComponentRuntime(
                name, component, self.placement, backend_factory, config.endpoint.routing_strategy, rng
            )
            for name, component in config.components.items()
        }
        self._errors: Counter[str] = Counter()
        self._errors_lock = threading.Lock()

    def start(self) -> None:
        """Place and load every component's configured copies; refuse (and clean up) if any do not fit."""
        try:
            for component in self.components.values():
                component.scale_to(component.component.copies)
        except Exception:
            self.stop()
            raise
        self.tune_threads()

    def tune_threads(self) -> None:
        tune_torch_threads(sum(component.copy_count for component in self.components.values()))

    def stop(self) -> None:
        for component in self.components.values():
            component.stop()

    def resolve(self, endpoint_name: str, component_name: str | None) -> ComponentRuntime:
        if endpoint_name != self.name:
            raise ValidationError(f"Endpoint {endpoint_name} of account {ACCOUNT_ID} not found.")
        if not component_name:
            raise ValidationError(MISSING_COMPONENT_MESSAGE)
        component = self.components.get(component_name)
        if component is None:
            raise ValidationError(
                f"Inference Component {component_name} not found on endpoint {endpoint_name}. "
                f"Hosted components: {', '.join(sorted(self.components))}."
            )
        return component

    def record_error(self, code: str, component: ComponentRuntime | None = None) -> None:
        with self._errors_lock:
            self._errors[code] += 1
        if component is not None:
            component.counters.record_error(code)

    def ready(self) -> bool:
        """Every component that should have copies has all of them loaded and serving."""
        return all(component.copy_count >= component.desired_copies for component in self.components.values())

    def status(self) -> dict[str, Any]:
        components = {name: component.snapshot() for name, component in self.components.items()}
        with self._errors_lock:
            errors = dict(self._errors)
        return {
            "endpoint": {
                "name": self.name,
                "instance_type": self.config.endpoint.instance_type,
                "routing_strategy": self.config.endpoint.routing_strategy.value,
                "scaling": self.config.endpoint.scaling.model_dump(),
                "ready": self.ready(),
            },
            "instances": self.placement.snapshot(),
            "components": components,
            "counters": {
                "requests": sum(c["counters"]["requests"] for c in components.values()),
                "errors": errors,
                "batches": sum(c["counters"]["batches"] for c in components.values()),
            },
        }
