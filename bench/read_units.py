"""DynamoDB read units, counted on a boto3 client as DynamoDB bills them, because moto's ConsumedCapacity is a
constant, not a measure: 4 KB units of the item sizes read, GetItem rounded up per item, Query on the total,
half for eventually consistent reads. Used by the API benchmark and by the tests that keep reads per turn flat.
"""

from __future__ import annotations

import math
from typing import Any

READ_UNIT_BYTES = 4096


def item_size(item: dict[str, Any]) -> int:
    """Approximate billed size of a (wire-format) item: attribute names plus values."""
    size = 0
    for name, value in item.items():
        size += len(name.encode("utf-8"))
        ((kind, content),) = value.items()
        if kind == "S":
            size += len(content.encode("utf-8"))
        elif kind == "N":
            size += 1 + math.ceil(len(content.lstrip("-").replace(".", "")) / 2)
        elif kind == "M":
            size += 3 + item_size(content)
        elif kind == "L":
            size += 3 + sum(item_size({"": entry}) for entry in content)
        else:
            size += len(str(content))
    return size


def read_units(items: list[dict[str, Any]], *, consistent: bool, per_item: bool) -> float:
    """Read units DynamoDB bills: GetItem rounds each item up to 4 KB, Query rounds the total."""
    sizes = [item_size(item) for item in items] or [0]
    if per_item:
        units = sum(math.ceil(max(size, 1) / READ_UNIT_BYTES) for size in sizes)
    else:
        units = max(1, math.ceil(sum(sizes) / READ_UNIT_BYTES))
    return units if consistent else units / 2


class ReadUnitMeter:
    """Adds up the read units of every GetItem and Query a DynamoDB client makes, from its own events."""

    def __init__(self, client: Any):
        self.total = 0.0
        client.meta.events.register("before-parameter-build.dynamodb.GetItem", self._remember_consistency)
        client.meta.events.register("before-parameter-build.dynamodb.Query", self._remember_consistency)
        client.meta.events.register("after-call.dynamodb.GetItem", self._count_item)
        client.meta.events.register("after-call.dynamodb.Query", self._count_page)

    @staticmethod
    def _remember_consistency(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["consistent_read"] = bool(params.get("ConsistentRead"))

    def _count_item(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        item = parsed.get("Item")
        self.total += read_units([item] if item else [], consistent=context["consistent_read"], per_item=True)

    def _count_page(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        items = parsed.get("Items", [])
        self.total += read_units(items, consistent=context["consistent_read"], per_item=False)
