"""Amazon Transcribe Call Analytics and Amazon Connect Contact Lens output JSON.

Call Analytics: {"Transcript": [{"ParticipantRole": "AGENT"|"CUSTOMER", "Content", "BeginOffsetMillis",
"EndOffsetMillis", ...}], "ConversationCharacteristics": {"TotalConversationDurationMillis"}, ...}.
Contact Lens: {"Participants": [{"ParticipantId", "ParticipantRole"}], "Transcript": [{"ParticipantId",
"Content", "BeginOffsetMillis", "EndOffsetMillis", ...}], ...}.
"""

from typing import Any

from chatbot.summarization import Turn
from chatbot.transcript_parsing.model import ParsedTranscript, TranscriptFormat
from chatbot.transcript_parsing.normalize import merge_turns, offset_s, speaker_name


def _segments(document: Any) -> list[dict]:
    transcript = document.get("Transcript") if isinstance(document, dict) else None
    if not isinstance(transcript, list):
        return []
    return [segment for segment in transcript if isinstance(segment, dict) and "Content" in segment]


def is_contact_lens(document: Any) -> bool:
    return any("ParticipantId" in segment for segment in _segments(document))


def is_call_analytics(document: Any) -> bool:
    return any("ParticipantRole" in segment for segment in _segments(document))


def parse_contact_lens(document: dict) -> ParsedTranscript:
    roles = {
        str(participant.get("ParticipantId")): participant.get("DisplayName") or participant.get("ParticipantRole")
        for participant in document.get("Participants") or []
        if isinstance(participant, dict)
    }
    segments = _in_time_order(_segments(document))
    turns = [
        Turn(
            speaker_name(
                segment.get("DisplayName")
                or segment.get("ParticipantRole")
                or roles.get(str(segment.get("ParticipantId")))
                or segment.get("ParticipantId")
            ),
            str(segment.get("Content", "")),
            *_times_s(segment),
        )
        for segment in segments
    ]
    return ParsedTranscript(TranscriptFormat.CONTACT_LENS, merge_turns(turns), _duration_s(document, segments))


def parse_call_analytics(document: dict) -> ParsedTranscript:
    segments = _in_time_order(_segments(document))
    turns = [
        Turn(speaker_name(segment.get("ParticipantRole")), str(segment.get("Content", "")), *_times_s(segment))
        for segment in segments
    ]
    return ParsedTranscript(
        TranscriptFormat.TRANSCRIBE_CALL_ANALYTICS, merge_turns(turns), _duration_s(document, segments)
    )


def _millis_as_s(value: Any) -> float | None:
    return offset_s(value, unit_s=0.001)


def _times_s(segment: dict) -> tuple[float | None, float | None]:
    return _millis_as_s(segment.get("BeginOffsetMillis")), _millis_as_s(segment.get("EndOffsetMillis"))


def _in_time_order(segments: list[dict]) -> list[dict]:
    """Stable sort by start offset; segments without one keep their place after the one before."""
    ordered: list[tuple[float, int, dict]] = []
    last = 0.0
    for index, segment in enumerate(segments):
        begin = _millis_as_s(segment.get("BeginOffsetMillis"))
        last = begin if begin is not None else last
        ordered.append((last, index, segment))
    ordered.sort(key=lambda entry: (entry[0], entry[1]))
    return [segment for _, _, segment in ordered]


def _duration_s(document: dict, segments: list[dict]) -> float | None:
    characteristics = document.get("ConversationCharacteristics")
    if isinstance(characteristics, dict):
        total = _millis_as_s(characteristics.get("TotalConversationDurationMillis"))
        if total is not None:
            return total
    ends = [end for end in (_millis_as_s(segment.get("EndOffsetMillis")) for segment in segments) if end is not None]
    return max(ends) if ends else None
