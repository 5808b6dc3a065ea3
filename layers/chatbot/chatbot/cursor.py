"""Opaque pagination cursors: base64url of DynamoDB's LastEvaluatedKey, checked on the way back in.

A cursor is only accepted if it decodes to exactly the key attributes expected for the listing it came
from, each a non-empty UTF-8 string DynamoDB accepts as a key value, and points inside the caller's own data
and the listing's key range; anything else (including JSON nested past the recursion limit) is a 400, never a
DynamoDB error or a crash.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

from chatbot.errors import InvalidInputError

_MAX_CURSOR_CHARS = 2048
# DynamoDB refuses sort key values over 1,024 bytes (and partition key values over 2,048).
_MAX_VALUE_BYTES = 1024


def encode_cursor(last_key: dict[str, Any] | None) -> str | None:
    if not last_key:
        return None
    raw = json.dumps(last_key, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(
    cursor: str | None, *, attributes: frozenset[str], belongs: Callable[[dict[str, str]], bool]
) -> dict[str, str] | None:
    """The start key inside `cursor`, if it has exactly `attributes` (all strings) and `belongs` accepts it."""
    if cursor is None or cursor == "":
        return None
    invalid = InvalidInputError("The cursor is not valid for this listing; request the first page without it.")
    if len(cursor) > _MAX_CURSOR_CHARS:
        raise invalid
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, RecursionError):
        raise invalid from None
    if not isinstance(key, dict) or set(key) != attributes:
        raise invalid
    if not all(_is_key_value(value) for value in key.values()) or not belongs(key):
        raise invalid
    return key


def _is_key_value(value: object) -> bool:
    """A non-empty string that encodes to UTF-8 (no lone surrogates) within DynamoDB's key size."""
    if not isinstance(value, str) or not value:
        return False
    try:
        return len(value.encode("utf-8")) <= _MAX_VALUE_BYTES
    except UnicodeEncodeError:
        return False
