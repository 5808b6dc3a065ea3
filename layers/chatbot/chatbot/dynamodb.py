"""The one way the layer talks to DynamoDB: the low-level client, with items converted here.

Items go out with None values left off and floats as Decimals (rounded to milliseconds of precision), and
come back as plain JSON-friendly Python: integral numbers as int, others as float.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

# DynamoDB (and other AWS) answers that mean "too busy right now", once botocore's own retries are spent.
THROTTLING_CODES = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded", "Throttling"}
)

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _storable(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return Decimal(str(round(value, 3)))
    if isinstance(value, dict):
        return {key: _storable(item) for key, item in value.items() if item is not None}
    if isinstance(value, list | tuple):
        return [_storable(item) for item in value]
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | set):
        return [_plain(item) for item in value]
    return value


def serialize_value(value: Any) -> dict[str, Any]:
    return _serializer.serialize(_storable(value))


def serialize(item: dict[str, Any]) -> dict[str, Any]:
    """A plain item (or key, or expression values) in DynamoDB's wire format."""
    return {key: serialize_value(value) for key, value in item.items() if value is not None}


def deserialize(item: dict[str, Any]) -> dict[str, Any]:
    """A wire-format item as plain Python."""
    return {key: _plain(_deserializer.deserialize(value)) for key, value in item.items()}


def is_throttled(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in THROTTLING_CODES
