"""The one way the layer writes times: ISO 8601 in UTC with a Z."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_utc(moment: datetime | float, timespec: str = "milliseconds") -> str:
    """`moment` (an aware datetime, or seconds since the epoch) as e.g. 2026-11-25T12:00:00.000Z."""
    when = datetime.fromtimestamp(moment, UTC) if isinstance(moment, int | float) else moment.astimezone(UTC)
    return when.isoformat(timespec=timespec).replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """The aware datetime of an ISO 8601 text written by iso_utc."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
