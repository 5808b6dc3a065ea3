"""Turn normalisation shared by every format: readable speaker names, words joined, same-speaker turns merged,
and times checked."""

import math
import re
from collections.abc import Iterable

from chatbot.summarization import Turn
from chatbot.transcript_parsing.model import FailureCode, TranscriptError

MAX_SPEAKER_CHARS = 64
# Times are offsets into one recording. A week is far longer than any call, and the bound keeps every time a
# finite number that the job record (a DynamoDB number) can hold.
MAX_OFFSET_S = 7 * 24 * 3600
UNKNOWN_SPEAKER = "Speaker 1"

_ROLE_NAMES = {
    "agent": "Agent",
    "customer": "Customer",
    "caller": "Customer",
    "system": "System",
    "custom_bot": "Bot",
    "bot": "Bot",
    "supervisor": "Supervisor",
}
# Transcribe's spk_0 / ch_0 and bare numbered speakers become "Speaker 1", "Speaker 2", ...
_NUMBERED_LABEL = re.compile(r"^(?:spk|ch|speaker|channel)[ _-]?(\d+)$", re.IGNORECASE)
# Punctuation that hugs the previous word ("word," "word.") and marks that hug the next one ("¿" "(").
_ATTACH_LEFT = frozenset(".,!?;:%)]}…'’”»")
_ATTACH_RIGHT = frozenset("([{¿¡“«$")
# Half of a UTF-16 surrogate pair: JSON can escape one ("\\ud800"), but no encoding can write it.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def speaker_name(label: object) -> str:
    """A readable speaker name for a role, a machine label or a person's name."""
    text = " ".join(str(label).split()) if label is not None else ""
    if not text:
        return UNKNOWN_SPEAKER
    role = _ROLE_NAMES.get(text.lower())
    if role:
        return role
    numbered = _NUMBERED_LABEL.match(text)
    if numbered:
        # Transcribe counts from 0 (spk_0); people count from 1.
        number = int(numbered.group(1))
        return f"Speaker {number + 1 if text.lower().startswith(('spk', 'ch')) else number}"
    return text[:MAX_SPEAKER_CHARS]


def join_words(words: Iterable[str]) -> str:
    """Join recognised words and punctuation marks with spaces only where they belong."""
    pieces: list[str] = []
    hugs_next = False  # the word before opens a bracket or a quote
    for word in words:
        word = word.strip()
        if not word:
            continue
        if pieces and not hugs_next and word[0] not in _ATTACH_LEFT:
            pieces.append(" ")
        pieces.append(word)
        hugs_next = word[-1] in _ATTACH_RIGHT
    return "".join(pieces)


def clean_text(text: str) -> str:
    """Collapse whitespace (line breaks inside an utterance included); lone surrogates become U+FFFD."""
    return " ".join(_LONE_SURROGATE.sub("\ufffd", text).split())


def merge_turns(turns: Iterable[Turn]) -> tuple[Turn, ...]:
    """Drop empty turns and merge consecutive turns of one speaker (from the first one's start to the last end)."""
    runs: list[tuple[str, list[str], list[Turn]]] = []
    for turn in turns:
        text = clean_text(turn.text)
        if not text:
            continue
        speaker = _LONE_SURROGATE.sub("\ufffd", turn.speaker)
        if runs and runs[-1][0] == speaker:
            runs[-1][1].append(text)
            runs[-1][2].append(turn)
        else:
            runs.append((speaker, [text], [turn]))
    return tuple(
        Turn(speaker, " ".join(texts), earliest(part.start_s for part in parts), latest(part.end_s for part in parts))
        for speaker, texts, parts in runs
    )


def earliest(times: Iterable[float | None]) -> float | None:
    return min((time for time in times if time is not None), default=None)


def latest(times: Iterable[float | None]) -> float | None:
    return max((time for time in times if time is not None), default=None)


def offset_s(value: object, unit_s: float = 1.0) -> float | None:
    """A time offset in seconds from a number or numeric string counted in units of `unit_s` seconds.

    None when the value is missing or not a number: the time is unknown. See checked_offset_s for the rest.
    """
    if value is None or isinstance(value, bool):
        return None
    try:
        seconds = float(value) * unit_s
    except (TypeError, ValueError):
        return None
    except OverflowError:  # an integer beyond any float
        seconds = math.inf
    return checked_offset_s(seconds, value)


def checked_offset_s(seconds: float, source: object) -> float:
    """`seconds`, or TranscriptError when it is NaN, infinite or outside 0..MAX_OFFSET_S, so that no impossible
    time reaches a summary or a job record; the message quotes `source`, the time as the file wrote it."""
    if not 0 <= seconds <= MAX_OFFSET_S:  # NaN fails every comparison
        quoted = repr(source) if len(repr(source)) <= 40 else repr(source)[:37] + "..."
        raise TranscriptError(
            FailureCode.UNPARSEABLE, f"the time {quoted} is not an offset between 0 and {MAX_OFFSET_S} seconds"
        )
    return seconds
