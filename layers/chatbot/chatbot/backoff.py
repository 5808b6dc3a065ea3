"""Capped exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"):
each wait is uniform in [0, min(cap, base * 2**attempt)], so writers that collided spread out instead of
colliding again in step."""

from __future__ import annotations

import random
from collections.abc import Callable


def full_jitter_delay(
    attempt: int, *, base_s: float, cap_s: float, uniform: Callable[[float, float], float] = random.uniform
) -> float:
    """The wait before retry number `attempt + 1` (attempt 0 is the first retry)."""
    return uniform(0, min(cap_s, base_s * 2**attempt))
