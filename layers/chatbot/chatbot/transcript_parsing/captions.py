"""WebVTT (voice tags <v Name>) and SubRip captions; cues become turns, speakers from voice tags or "Name:" prefixes."""

import html
import re

from chatbot.summarization import Turn
from chatbot.transcript_parsing.model import FailureCode, ParsedTranscript, TranscriptError, TranscriptFormat
from chatbot.transcript_parsing.normalize import (
    MAX_OFFSET_S,
    UNKNOWN_SPEAKER,
    checked_offset_s,
    merge_turns,
    speaker_name,
)

_TIMESTAMP = r"(?:\d+:)?\d{1,2}:\d{2}[.,]\d{1,3}"
_TIMING = re.compile(rf"^\s*(?P<start>{_TIMESTAMP})\s*-->\s*(?P<end>{_TIMESTAMP})")
# No tag pattern crosses a "<" (or a "{" for overrides): each scan stops at the next possible tag, so a line of
# tags that never close costs time in proportion to its length, not to its square.
_VOICE = re.compile(r"<v(?:\.[^\s<>]*)?\s([^<>]*)>", re.IGNORECASE)
_TAG = re.compile(r"<[^<>]*>|\{\\[^{}]*\}")  # HTML-ish cue tags, inline timestamps, ASS overrides like {\an8}
_NAME_PREFIX = re.compile(r"^(?:-\s*|>>\s*)?(?P<name>[^\W\d][\w .'’-]{0,39}?)\s*:\s+(?P<text>\S.*)$")
# A SubRip file starts with its first cue: a number line (which many writers leave out), then the timing line.
_SUBRIP_START = re.compile(rf"^\s*(?:\d+[ \t]*\n\s*)?{_TIMESTAMP}\s*-->")
_CUE_NUMBER = re.compile(r"\s*\d+\s*")


def is_webvtt(text: str) -> bool:
    return text.lstrip().startswith("WEBVTT")


def is_subrip(text: str) -> bool:
    return bool(_SUBRIP_START.match(text.lstrip("\n")))


def parse_webvtt(text: str) -> ParsedTranscript:
    return _parse_cues(text, TranscriptFormat.WEBVTT)


def parse_subrip(text: str) -> ParsedTranscript:
    return _parse_cues(text, TranscriptFormat.SUBRIP)


def _seconds(timestamp: str) -> float:
    *hours_minutes, seconds = timestamp.replace(",", ".").split(":")
    whole_minutes = 0
    for part in hours_minutes:
        whole_minutes = whole_minutes * 60 + int(part)
    # Capped while still an exact integer (hours of hundreds of digits would overflow a float); a capped time
    # is out of range all the same.
    return checked_offset_s(min(whole_minutes, MAX_OFFSET_S) * 60 + float(seconds), timestamp)


def _parse_cues(text: str, caption_format: TranscriptFormat) -> ParsedTranscript:
    turns: list[Turn] = []
    duration: float | None = None
    cues = _cues(text)
    for start, end, payload in cues:
        duration = end if duration is None else max(duration, end)
        turns.extend(_cue_turns(payload, start, end))
    if not cues:
        raise TranscriptError(FailureCode.UNPARSEABLE, f"no {caption_format.value} cue (timing line) found")
    return ParsedTranscript(caption_format, merge_turns(turns), duration)


def _cues(text: str) -> list[tuple[float, float, list[str]]]:
    """(start and end in seconds, text lines) of each cue: the lines after a timing line, up to a blank or timing line.

    Lines outside cues (headers, NOTE, STYLE and REGION blocks, cue identifiers) are skipped. A number line
    right before a timing line numbers that cue, as in SubRip written without blank lines between cues.
    """
    cues: list[tuple[float, float, list[str]]] = []
    payload: list[str] | None = None
    for line in text.split("\n"):
        timing = _TIMING.match(line)
        if timing:
            if payload and _CUE_NUMBER.fullmatch(payload[-1]):
                payload.pop()
            payload = []
            cues.append((_seconds(timing.group("start")), _seconds(timing.group("end")), payload))
        elif not line.strip():
            payload = None
        elif payload is not None:
            payload.append(line)
    return cues


def _cue_turns(payload: list[str], start_s: float, end_s: float) -> list[Turn]:
    turns: list[Turn] = []
    speaker = UNKNOWN_SPEAKER
    for line in payload:
        voice = _VOICE.search(line)
        if voice:
            speaker = speaker_name(html.unescape(voice.group(1)))
        plain = html.unescape(_TAG.sub("", line)).strip()
        named = None if voice else _NAME_PREFIX.match(plain)
        if named:
            speaker, plain = speaker_name(named.group("name")), named.group("text")
        if plain:
            turns.append(Turn(speaker, plain, start_s, end_s))
    return turns
