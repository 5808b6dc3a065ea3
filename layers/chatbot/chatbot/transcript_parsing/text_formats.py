"""Plain text "Speaker: text" lines, and JSON lists of {speaker, text} turns."""

import re
from typing import Any

from chatbot.summarization import Turn
from chatbot.transcript_parsing.model import ParsedTranscript, TranscriptFormat
from chatbot.transcript_parsing.normalize import merge_turns, offset_s, speaker_name

# "[00:01:02] Agent: text", "Agent (00:01): text", "AGENT: text"; a speaker holds a letter and is short.
_TIMESTAMP = r"\[?\(?\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?\)?\]?"
_SPEAKER_LINE = re.compile(
    rf"^\s*(?:{_TIMESTAMP}\s*)?(?P<speaker>[^\W\d][^:\n]{{0,39}}?)\s*(?:{_TIMESTAMP}\s*)?:\s*(?P<text>.*)$"
)
_NOT_A_SPEAKER = re.compile(r"^(?:https?|ftp|mailto|note|subject|date|time|re|fwd?)$", re.IGNORECASE)
# A plain-text transcript has most of its lines starting with a speaker.
_MIN_SPEAKER_LINE_SHARE = 0.5

_TEXT_KEYS = ("text", "content", "utterance", "message", "transcript")
_SPEAKER_KEYS = ("speaker", "role", "name", "participant", "speaker_label", "author")
_LIST_KEYS = ("turns", "messages", "utterances", "conversation", "dialogue")


def _speaker_match(line: str) -> re.Match | None:
    match = _SPEAKER_LINE.match(line)
    if match is None or _NOT_A_SPEAKER.match(match.group("speaker")):
        return None
    return match


def is_plain_text(text: str) -> bool:
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        return False
    speaker_lines = sum(1 for line in lines if _speaker_match(line))
    return speaker_lines > 0 and speaker_lines / len(lines) >= _MIN_SPEAKER_LINE_SHARE


def parse_plain_text(text: str) -> ParsedTranscript:
    """Lines without a speaker continue the turn before them (wrapped text); any before the first are dropped."""
    turns: list[Turn] = []
    for line in text.split("\n"):
        match = _speaker_match(line)
        if match:
            turns.append(Turn(speaker_name(match.group("speaker")), match.group("text")))
        elif turns and line.strip():
            turns.append(Turn(turns[-1].speaker, line))
    return ParsedTranscript(TranscriptFormat.PLAIN_TEXT, merge_turns(turns))


def _turn_list(document: Any) -> list | None:
    if isinstance(document, dict):
        document = next((document[key] for key in _LIST_KEYS if isinstance(document.get(key), list)), None)
    return document if isinstance(document, list) else None


def _first(entry: dict, keys: tuple[str, ...]) -> Any:
    return next((entry[key] for key in keys if entry.get(key) is not None), None)


def is_json_turns(document: Any) -> bool:
    entries = _turn_list(document)
    return bool(entries) and all(isinstance(entry, dict) and _first(entry, _TEXT_KEYS) is not None for entry in entries)


def parse_json_turns(document: Any) -> ParsedTranscript:
    turns = []
    ends = []
    for entry in _turn_list(document) or []:
        text = _first(entry, _TEXT_KEYS)
        turns.append(Turn(speaker_name(_first(entry, _SPEAKER_KEYS)), text if isinstance(text, str) else str(text)))
        end = offset_s(_first(entry, ("end", "end_time", "end_s")))
        if end is not None:
            ends.append(end)
    return ParsedTranscript(TranscriptFormat.JSON_TURNS, merge_turns(turns), max(ends) if ends else None)
