"""Dynamic batching: take the first queued request, then whatever else arrives within the wait."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import TypeVar

ItemT = TypeVar("ItemT")

# Blocks for at most `timeout` seconds (forever if None); raises queue.Empty when nothing came.
Getter = Callable[[float | None], ItemT]


def collect_batch(
    get: Getter[ItemT], max_size: int, max_wait_s: float, clock: Callable[[], float] = time.monotonic
) -> list[ItemT]:
    """Block for a first item, then collect more until `max_size` items or `max_wait_s` after the first."""
    batch = [get(None)]
    deadline = clock() + max_wait_s
    while len(batch) < max_size:
        try:
            batch.append(get(max(0.0, deadline - clock())))
        except queue.Empty:
            break
    return batch
