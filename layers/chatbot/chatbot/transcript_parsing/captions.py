"""WebVTT (voice tags <v Name>) and SubRip captions; cues become turns, speakers from voice tags or "Name:" prefixes."""

import html
import re

from chatbot.summarization import Turn
from chatbot.transcript_parsing.model import FailureCode, ParsedTranscript, TranscriptError, TranscriptFormat
from chatbot.transcript_parsing.normalize import UNKNOWN_SPEAKER, merge_turns, speaker_name

_TIMING = re.compile(
    r"^\s*(?P<start>(?:\d+:)?\d{1,2}:\d{2}[.,]\d{1,3})\s*-->\s*(?P<end>(?:\d+:)?\d{1,2}:\d{2}[.,]\d{1,3})"
)
_VOICE = re.compile(r"<v(?:\.[^\s>]*)?\s+([^>]*)>", re.IGNORECASE)
_TAG = re.compile(r"</?[^>]*>|\{\\[^}]*\}")  # HTML-ish cue tags, inline timestamps, ASS overrides like {\an8}
_NAME_PREFIX = re.compile(r"^(?:-\s*|>>\s*)?(?P<name>[^\W\d][\w .'’-]{0,39}?)\s*:\s+(?P<text>\S.*)$")
_SUBRIP_START = re.compile(r"^\s*\d+\s*\n\s*(?:\d+:)?\d{1,2}:\d{2}[.,]\d{1,3}\s*-->")


def is_webvtt(text: str) -> bool:
    return text.lstrip().startswith("WEBVTT")


def is_subrip(text: str) -> bool:
    return bool(_SUBRIP_START.match(text.lstrip("\n")))


def parse_webvtt(text: str) -> ParsedTranscript:
    return _parse_cues(text, TranscriptFormat.WEBVTT)


def parse_subrip(text: str) -> ParsedTranscript:
    return _parse_cues(text, TranscriptFormat.SUBRIP)


def _seconds(timestamp: str) -> float:
    parts = timestamp.replace(",", ".").split(":")
    seconds = float(parts[-1])
    for index, part in enumerate(reversed(parts[:-1]), start=1):
        seconds += int(part) * 60**index
    return seconds


def _parse_cues(text: str, caption_format: TranscriptFormat) -> ParsedTranscript:
    turns: list[Turn] = []
    duration: float | None = None
    cue_count = 0
    for block in re.split(r"\n\s*\n", text):
        lines = block.strip("\n").split("\n")
        timing_index = next((index for index, line in enumerate(lines[:3]) if _TIMING.match(line)), None)
        if timing_index is None:
            continue  # header, NOTE, STYLE and REGION blocks, stray text
        cue_count += 1
        timing = _TIMING.match(lines[timing_index])
        end = _seconds(timing.group("end"))
        duration = end if duration is None else max(duration, end)
        turns.extend(_cue_turns(lines[timing_index + 1 :]))
    if cue_count == 0:
        raise TranscriptError(FailureCode.UNPARSEABLE, f"no {caption_format.value} cue (timing line) found")
    return ParsedTranscript(caption_format, merge_turns(turns), duration)


def _cue_turns(payload: list[str]) -> list[Turn]:
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
            turns.append(Turn(speaker, plain))
    return turns
