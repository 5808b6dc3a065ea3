"""Format detection: bytes in, a ParsedTranscript or a TranscriptError (with a permanent reason) out."""

import json
from collections.abc import Callable
from typing import Any

from chatbot.transcript_parsing.analytics_outputs import (
    is_bedrock_audio,
    is_post_call_analytics,
    parse_bedrock_audio,
    parse_post_call_analytics,
)
from chatbot.transcript_parsing.captions import is_subrip, is_webvtt, parse_subrip, parse_webvtt
from chatbot.transcript_parsing.contact_center import (
    is_call_analytics,
    is_contact_lens,
    parse_call_analytics,
    parse_contact_lens,
)
from chatbot.transcript_parsing.decoding import decode_text
from chatbot.transcript_parsing.model import FailureCode, ParsedTranscript, TranscriptError
from chatbot.transcript_parsing.text_formats import is_json_turns, is_plain_text, parse_json_turns, parse_plain_text
from chatbot.transcript_parsing.transcribe import is_transcribe, parse_transcribe

# Most specific first: Contact Lens and Call Analytics share "Transcript"; Contact Lens adds ParticipantId.
_JSON_FORMATS: tuple[tuple[Callable[[Any], bool], Callable[[Any], ParsedTranscript]], ...] = (
    (is_transcribe, parse_transcribe),
    (is_contact_lens, parse_contact_lens),
    (is_call_analytics, parse_call_analytics),
    (is_post_call_analytics, parse_post_call_analytics),
    (is_bedrock_audio, parse_bedrock_audio),
    (is_json_turns, parse_json_turns),
)
_TEXT_FORMATS: tuple[tuple[Callable[[str], bool], Callable[[str], ParsedTranscript]], ...] = (
    (is_webvtt, parse_webvtt),
    (is_subrip, parse_subrip),
    (is_plain_text, parse_plain_text),
)
KNOWN_FORMATS = (
    "Amazon Transcribe JSON, Transcribe Call Analytics JSON, Contact Lens JSON, post-call analytics (PCA) "
    "results JSON, Bedrock Data Automation audio output, a JSON list of {speaker, text}, WebVTT, SubRip, "
    "or 'Speaker: text' lines"
)
# Every speaker's name is kept on the job record, an item DynamoDB caps at 400 KB. Diarization in Transcribe
# and Bedrock Data Automation tells at most 30 speakers apart; 100 leaves room for named speakers, and 100
# names of at most 64 characters take at most 26 KB.
MAX_SPEAKERS = 100


def parse_transcript(data: bytes) -> ParsedTranscript:
    """Detect the format of a transcript file and parse it into merged speaker turns.

    Raises TranscriptError (empty, unparseable, unknown format, no speech, too many speakers) for anything
    that is not a transcript with words in it; it never raises anything else.
    """
    if not data.strip():
        raise TranscriptError(FailureCode.EMPTY, "the file is empty")
    text = decode_text(data)
    if not text.strip():
        raise TranscriptError(FailureCode.EMPTY, "the file holds only whitespace")
    try:
        parsed = _parse_text(text)
    except TranscriptError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError, ArithmeticError) as exc:
        # Structures that look like a known format but break its rules (wrong types, missing fields, numbers
        # out of any range). Users see a sentence; the exception stays chained for the logs.
        raise TranscriptError(
            FailureCode.UNPARSEABLE,
            "the file looks like a transcript but is malformed: a field is missing or has the wrong type",
        ) from exc
    if not parsed.turns:
        raise TranscriptError(FailureCode.NO_SPEECH, f"no speech: the {parsed.format.value} transcript has no words")
    speakers = len(parsed.speakers)
    if speakers > MAX_SPEAKERS:
        raise TranscriptError(
            FailureCode.TOO_MANY_SPEAKERS, f"{speakers} distinct speakers; a transcript may have at most {MAX_SPEAKERS}"
        )
    return parsed


def _parse_text(text: str) -> ParsedTranscript:
    if text.lstrip()[:1] in ("{", "["):
        try:
            document = json.loads(text)
        except RecursionError:
            raise TranscriptError(FailureCode.UNPARSEABLE, "the JSON is nested too deeply") from None
        except ValueError as exc:
            if not is_plain_text(text):
                raise TranscriptError(FailureCode.UNPARSEABLE, f"invalid JSON: {exc}") from None
        else:
            for matches, parse in _JSON_FORMATS:
                if matches(document):
                    return parse(document)
            raise TranscriptError(
                FailureCode.UNKNOWN_FORMAT, f"a JSON document of no known format; expected {KNOWN_FORMATS}"
            )
    for matches, parse in _TEXT_FORMATS:
        if matches(text):
            return parse(text)
    raise TranscriptError(FailureCode.UNKNOWN_FORMAT, f"unknown transcript format; expected {KNOWN_FORMATS}")
