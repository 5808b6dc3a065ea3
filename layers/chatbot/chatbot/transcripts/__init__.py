"""Call transcripts in every common format, detected and normalised into speaker turns."""

from chatbot.transcripts.detect import parse_transcript
from chatbot.transcripts.model import FailureCode, ParsedTranscript, TranscriptError, TranscriptFormat

__all__ = ["FailureCode", "ParsedTranscript", "TranscriptError", "TranscriptFormat", "parse_transcript"]
