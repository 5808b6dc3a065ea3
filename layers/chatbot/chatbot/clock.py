"""The one way the layer writes times: ISO 8601 in UTC with a Z; offsets into a recording as m:ss or h:mm:ss."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_utc(moment: datetime | float, timespec: str = "milliseconds") -> str:
    """`moment` (an aware datetime, or seconds since the epoch) as e.g. 2026-11-25T12:00:00.000Z."""
    when = datetime.fromtimestamp(moment, UTC) if isinstance(moment, int | float) else moment.astimezone(UTC)
    return when.isoformat(timespec=timespec).replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """The aware datetime of an ISO 8601 text written by iso_utc."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def clock_label(seconds: float) -> str:
    """An offset into a recording as a person reads it: 0:17, 12:05, 1:02:09."""
    whole = int(seconds)
    if whole >= 3600:
        return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
    return f"{whole // 60}:{whole % 60:02d}"
