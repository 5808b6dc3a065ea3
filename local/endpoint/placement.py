"""Where inference-component copies run: each copy reserves its component's compute on an instance.

Instances all have the endpoint's instance type. The endpoint starts with `min_instances` (at least
one) and adds instances, up to `max_instances`, when a copy fits on none of the running ones, as
SageMaker's managed instance scaling does. A copy that fits nowhere is refused with what is short.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field

from provisioning.config import Compute
from provisioning.instances import INSTANCE_TYPES, InstanceCapacity

CopyKey = tuple[str, int]  # (component name, copy id)


class PlacementError(RuntimeError):
    """A copy does not fit on the endpoint's instances."""


@dataclass(frozen=True)
class Resources:
    accelerators: float
    cpu_cores: float
    memory_mb: float

    @classmethod
    def of_compute(cls, compute: Compute) -> Resources:
        return cls(compute.accelerators, compute.cpu_cores, compute.min_memory_mb)

    @classmethod
    def of_capacity(cls, capacity: InstanceCapacity) -> Resources:
        return cls(capacity.accelerators, capacity.cpu_cores, capacity.memory_mb)

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.accelerators + other.accelerators, self.cpu_cores + other.cpu_cores, self.memory_mb + other.memory_mb
        )

    def __sub__(self, other: Resources) -> Resources:
        return Resources(
            self.accelerators - other.accelerators, self.cpu_cores - other.cpu_cores, self.memory_mb - other.memory_mb
        )

    def shortfalls(self, need: Resources) -> list[str]:
        """Which of `need` these free resources cannot cover, e.g. ['accelerators (needs 1, 0 free)']."""
        rows = (
            ("accelerators", need.accelerators, self.accelerators),
            ("CPU cores", need.cpu_cores, self.cpu_cores),
            ("memory MB", need.memory_mb, self.memory_mb),
        )
        return [f"{label} (needs {want:g}, {have:g} free)" for label, want, have in rows if want > have + 1e-9]

    def as_dict(self) -> dict[str, float]:
        return {"accelerators": self.accelerators, "cpu_cores": self.cpu_cores, "memory_mb": self.memory_mb}


@dataclass
class Instance:
    instance_id: str
    capacity: Resources
    reservations: dict[CopyKey, Resources] = field(default_factory=dict)

    @property
    def free(self) -> Resources:
        used = Resources(0, 0, 0)
        for reserved in self.reservations.values():
            used = used + reserved
        return self.capacity - used


class Placement:
    """Thread-safe book of instances and the copies reserved on them."""

    def __init__(self, instance_type: str, min_instances: int, max_instances: int):
        self.instance_type = instance_type
        self.min_instances = max(1, min_instances)
        self.max_instances = max(self.min_instances, max_instances)
        self._capacity = Resources.of_capacity(INSTANCE_TYPES[instance_type])
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._instances = [self._new_instance() for _ in range(self.min_instances)]

    def _new_instance(self) -> Instance:
        return Instance(f"instance-{next(self._ids)}", self._capacity)

    def reserve(self, component_name: str, copy_id: int, compute: Compute) -> str:
        """Reserve one copy's compute on the first instance it fits, adding an instance if allowed."""
        need = Resources.of_compute(compute)
        with self._lock:
            for instance in self._instances:
                if not instance.free.shortfalls(need):
                    instance.reservations[(component_name, copy_id)] = need
                    return instance.instance_id
            if len(self._instances) < self.max_instances:
                instance = self._new_instance()
                if not instance.free.shortfalls(need):
                    self._instances.append(instance)
                    instance.reservations[(component_name, copy_id)] = need
                    return instance.instance_id
            raise PlacementError(self._refusal(component_name, copy_id, need))

    def _refusal(self, component_name: str, copy_id: int, need: Resources) -> str:
        details = "; ".join(
            f"{instance.instance_id} is short of {', '.join(instance.free.shortfalls(need))}"
            for instance in self._instances
        )
        return (
            f"cannot place copy {copy_id} of component {component_name!r}: it needs {need.accelerators:g} "
            f"accelerators, {need.cpu_cores:g} CPU cores and {need.memory_mb:g} MB memory; {details}; "
            f"the endpoint already has its maximum of {self.max_instances} {self.instance_type} instance(s)"
        )

    def release(self, component_name: str, copy_id: int) -> None:
        """Free a copy's reservation; an instance left empty above the minimum count is removed."""
        with self._lock:
            for instance in self._instances:
                instance.reservations.pop((component_name, copy_id), None)
            while len(self._instances) > self.min_instances and not self._instances[-1].reservations:
                self._instances.pop()

    def instance_count(self) -> int:
        with self._lock:
            return len(self._instances)

    def snapshot(self) -> list[dict[str, object]]:
        with self._lock:
            return [
                {
                    "instance_id": instance.instance_id,
                    "instance_type": self.instance_type,
                    "capacity": instance.capacity.as_dict(),
                    "free": instance.free.as_dict(),
                    "copies": [f"{name}/{copy_id}" for name, copy_id in instance.reservations],
                }
                for instance in self._instances
            ]
