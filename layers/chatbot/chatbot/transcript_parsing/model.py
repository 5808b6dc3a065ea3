"""What a parsed transcript is, and the permanent reasons a file cannot become one."""

from dataclasses import dataclass
from enum import StrEnum

from chatbot.summarization import Turn


class TranscriptFormat(StrEnum):
    TRANSCRIBE_SPEAKERS = "transcribe-speaker-labels"
    TRANSCRIBE_CHANNELS = "transcribe-channel-labels"
    TRANSCRIBE_AUDIO_SEGMENTS = "transcribe-audio-segments"
    TRANSCRIBE_UNLABELLED = "transcribe"
    TRANSCRIBE_CALL_ANALYTICS = "transcribe-call-analytics"
    CONTACT_LENS = "contact-lens"
    WEBVTT = "webvtt"
    SUBRIP = "subrip"
    PLAIN_TEXT = "plain-text"
    JSON_TURNS = "json-turns"
    POST_CALL_ANALYTICS = "transcribe-post-call-analytics"
    BEDROCK_DATA_AUTOMATION = "bedrock-data-automation-audio"


class FailureCode(StrEnum):
    """Permanent reasons: retrying the same file gives the same answer."""

    EMPTY = "empty"
    UNPARSEABLE = "unparseable"
    UNKNOWN_FORMAT = "unknown_format"
    TOO_LARGE = "too_large"
    TOO_LONG = "too_long"  # too many tokens to summarize within one run of the batch function
    NO_SPEECH = "no_speech"
    TOO_MANY_SPEAKERS = "too_many_speakers"
    SOURCE_MISSING = "source_missing"
    SUMMARIZER_FAILED = "summarizer_failed"
    # Not the file's fault: transient errors on every receive of its message (a DLQ redrive retries the job).
    RETRIES_EXHAUSTED = "retries_exhausted"


class TranscriptError(Exception):
    """A file that can never be summarized as it is; `code` says why in one word, the message in a sentence."""

    def __init__(self, code: FailureCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class ParsedTranscript:
    format: TranscriptFormat
    turns: tuple[Turn, ...]
    duration_s: float | None = None

    @property
    def speakers(self) -> list[str]:
        """Speaker names in order of first appearance."""
        return list(dict.fromkeys(turn.speaker for turn in self.turns))
