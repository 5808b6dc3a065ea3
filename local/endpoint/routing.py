"""Which copy of a component serves a request, per the endpoint's routing strategy."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol, TypeVar

from provisioning.config import RoutingStrategy


class Loaded(Protocol):
    @property
    def outstanding(self) -> int: ...


CopyT = TypeVar("CopyT", bound=Loaded)


def choose_copy(copies: Sequence[CopyT], strategy: RoutingStrategy, rng: random.Random) -> CopyT:
    """Least outstanding requests (ties broken at random), or uniformly at random."""
    if not copies:
        raise ValueError("no copies to route to")
    if strategy is RoutingStrategy.RANDOM:
        return rng.choice(copies)
    fewest = min(copy.outstanding for copy in copies)
    return rng.choice([copy for copy in copies if copy.outstanding == fewest])
