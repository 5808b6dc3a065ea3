"""Call transcripts in every common format, detected and normalised into speaker turns."""

from chatbot.transcript_parsing.detect import parse_transcript
from chatbot.transcript_parsing.model import FailureCode, ParsedTranscript, TranscriptError, TranscriptFormat

__all__ = ["FailureCode", "ParsedTranscript", "TranscriptError", "TranscriptFormat", "parse_transcript"]
