"""The summary document (`summaries/<key>.json`): how the batch job writes it and how the API reads its turns.

The parsed turns go last in the document, so the API can read the first turns of any transcript from the first
bytes of the object (one ranged GET) instead of downloading and parsing a multi-megabyte document per request.
The document itself always holds every turn, with its `start` and `end` offsets in seconds where the format has
them; `all_turns` reads them all back, for questions about the call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chatbot.summarization import Turn

TURNS_FIELD = "transcript"
_INDENT = 2
# Where the turns array opens: a newline + indent can only be structure (inside strings newlines are escaped).
_TURNS_OPENING = re.compile(rf'\n {{{_INDENT}}}"{TURNS_FIELD}": \[')
_WHITESPACE = re.compile(r"\s*")
_decoder = json.JSONDecoder()


@dataclass(frozen=True)
class TurnsExcerpt:
    turns: list[dict[str, Any]]  # {"speaker", "text", "start_s"?, "end_s"?} in transcript order
    truncated: bool  # the transcript has more turns than `turns`


def render_summary_document(fields: dict[str, Any], turns: Sequence[Turn]) -> bytes:
    """The document as stored: `fields`, then every turn under TURNS_FIELD (UTF-8 JSON)."""
    if TURNS_FIELD in fields:
        raise ValueError(f"{TURNS_FIELD!r} is reserved for the turns")
    document = {**fields, TURNS_FIELD: [_stored(turn) for turn in turns]}
    return json.dumps(document, ensure_ascii=False, indent=_INDENT).encode("utf-8")


def _stored(turn: Turn) -> dict[str, Any]:
    stored: dict[str, Any] = {"speaker": turn.speaker, "text": turn.text}
    if turn.start_s is not None:
        stored["start"] = turn.start_s
    if turn.end_s is not None:
        stored["end"] = turn.end_s
    return stored


def all_turns(body: bytes) -> list[Turn] | None:
    """Every turn of a whole summary document, times included; None when it has no turns field."""
    document = json.loads(body.decode("utf-8"))
    turns = document.get(TURNS_FIELD) if isinstance(document, dict) else None
    if not isinstance(turns, list):
        return None
    return [
        Turn(turn["speaker"], turn["text"], _seconds(turn.get("start")), _seconds(turn.get("end")))
        for turn in turns
        if _is_turn(turn)
    ]


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def first_turns(head: bytes, *, complete: bool, max_turns: int) -> TurnsExcerpt | None:
    """Up to `max_turns` turns from the start of a summary document (`complete` when `head` is all of it).

    None when the document has no turns field (written before turns were stored, or cut before they start).
    """
    if complete:
        document = json.loads(head.decode("utf-8"))
        turns = document.get(TURNS_FIELD) if isinstance(document, dict) else None
        if not isinstance(turns, list):
            return None
        kept = [_turn(turn) for turn in turns[:max_turns] if _is_turn(turn)]
        return TurnsExcerpt(kept, truncated=len(turns) > max_turns)
    # A cut may split a multi-byte character at the very end: drop that partial character only.
    text = head.decode("utf-8", errors="ignore")
    opening = _TURNS_OPENING.search(text)
    if opening is None:
        return None
    turns: list[dict[str, Any]] = []
    position = opening.end()
    while True:
        position = _WHITESPACE.match(text, position).end()
        if text.startswith("]", position):
            return TurnsExcerpt(turns, truncated=False)
        if len(turns) == max_turns:
            return TurnsExcerpt(turns, truncated=True)
        try:
            turn, position = _decoder.raw_decode(text, position)
        except json.JSONDecodeError:  # the read ended inside this turn
            return TurnsExcerpt(turns, truncated=True)
        if _is_turn(turn):
            turns.append(_turn(turn))
        position = _WHITESPACE.match(text, position).end()
        if text.startswith(",", position):
            position += 1


def _is_turn(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("speaker"), str) and isinstance(value.get("text"), str)


def _turn(value: dict[str, Any]) -> dict[str, Any]:
    """A stored turn as the API shows it: times (seconds into the call) only where the format had them."""
    turn: dict[str, Any] = {"speaker": value["speaker"], "text": value["text"]}
    for stored, shown in (("start", "start_s"), ("end", "end_s")):
        seconds = _seconds(value.get(stored))
        if seconds is not None:
            turn[shown] = seconds
    return turn
