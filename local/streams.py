"""DynamoDB stream records as a Lambda event source mapping hands them to a function: read from the table's
stream (moto keeps one) and kept only when they match one of the mapping's FilterCriteria patterns.

The local stack runs no stream poller; tests use this to run a stream-triggered function (e.g.
ConversationCleanupFunction) on exactly the records Lambda would give it. Patterns are matched with the part
of Lambda's filter grammar the template uses: nested objects, lists of values, `prefix` and `exists`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from local.template import Template


def filter_patterns(template: Template, logical_id: str) -> list[dict[str, Any]]:
    """The FilterCriteria patterns of the function's DynamoDB event sources."""
    patterns = []
    for event in (template.function_property(logical_id, "Events") or {}).values():
        if event.get("Type") == "DynamoDB":
            filters = event.get("Properties", {}).get("FilterCriteria", {}).get("Filters", [])
            patterns.extend(json.loads(entry["Pattern"]) for entry in filters)
    return patterns


def matches(pattern: Mapping[str, Any], record: Any) -> bool:
    """True when the record matches the pattern (every field of the pattern; a list means any of its values)."""
    if not isinstance(record, Mapping):
        return False
    for name, expected in pattern.items():
        if isinstance(expected, Mapping):
            if not matches(expected, record.get(name)):
                return False
        elif not any(_value_matches(rule, name in record, record.get(name)) for rule in expected):
            return False
    return True


def _value_matches(rule: Any, present: bool, value: Any) -> bool:
    if not isinstance(rule, Mapping):
        return present and value == rule
    if set(rule) == {"exists"}:
        return present == rule["exists"]
    if set(rule) == {"prefix"}:
        return present and isinstance(value, str) and value.startswith(rule["prefix"])
    raise ValueError(f"filter rule not supported here: {rule}")


def stream_records(streams_client: Any, stream_arn: str) -> list[dict[str, Any]]:
    """Every record of the stream, oldest first per shard, as JSON-ready event records."""
    records = []
    shards = streams_client.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
    for shard in shards:
        iterator = streams_client.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams_client.get_records(ShardIterator=iterator, Limit=1000)
            records.extend(_as_event_record(record, stream_arn) for record in page["Records"])
            iterator = page.get("NextShardIterator") if page["Records"] else None
    return records


def _as_event_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    change = dict(record["dynamodb"])
    created = change.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        change["ApproximateCreationDateTime"] = int(created.timestamp())
    return {**record, "dynamodb": change, "eventSourceARN": stream_arn}


def delivered_event(template: Template, logical_id: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The event the function would receive: the records that pass its filters."""
    patterns = filter_patterns(template, logical_id)
    return {"Records": [record for record in records if any(matches(pattern, record) for pattern in patterns)]}
