"""Outputs of two AWS call-analytics pipelines that carry a transcript: the parsed results JSON of the Amazon
Transcribe post-call analytics sample (PCA) and the standard output of Amazon Bedrock Data Automation for audio.

PCA (github.com/aws-samples/amazon-transcribe-post-call-analytics, docs/output_json_structure.md):
{"ConversationAnalytics": {"Duration": "<seconds>", "SpeakerLabels": [{"Speaker": "spk_0", "DisplayText":
"Agent"}], ...}, "SpeechSegments": [{"SegmentStartTime", "SegmentEndTime" (seconds), "SegmentSpeaker": "spk_0",
"OriginalText", "DisplayText" (the text as edited for display), ...}]}.

BDA audio standard output (docs.aws.amazon.com/bedrock/latest/userguide/audio-processing.html):
{"metadata": {"semantic_modality": "AUDIO", "duration_millis", ...}, "audio": {"summary", "transcript":
{"representation": {"text"}}}, "audio_segments": [{"start_timestamp_millis", "end_timestamp_millis",
"segment_index", "type": "TRANSCRIPT", "text", "speaker"?: {"speaker_label": "spk_0"}, "channel"?:
{"channel_label": "ch_0"}, "audio_item_indices", "language"}], "audio_items": [{"item_index", "content",
"start_timestamp_millis"?, ...}], "topics", "statistics"}.
"""

import re
from typing import Any

from chatbot.summarization import Turn
from chatbot.transcript_parsing.model import ParsedTranscript, TranscriptFormat
from chatbot.transcript_parsing.normalize import (
    UNKNOWN_SPEAKER,
    join_words,
    latest,
    merge_turns,
    offset_s,
    speaker_name,
)

# PCA names speakers it has no configured name for "Unknown_<n>"; "Speaker <n+1>" reads better.
_PCA_PLACEHOLDER_NAME = re.compile(r"^Unknown_\d+$")


def _dicts(value: Any) -> list[dict]:
    return [entry for entry in value if isinstance(entry, dict)] if isinstance(value, list) else []


def is_post_call_analytics(document: Any) -> bool:
    segments = _dicts(document.get("SpeechSegments")) if isinstance(document, dict) else []
    return any("SegmentSpeaker" in segment for segment in segments)


def parse_post_call_analytics(document: dict) -> ParsedTranscript:
    analytics = document.get("ConversationAnalytics")
    analytics = analytics if isinstance(analytics, dict) else {}
    display_names = {
        str(label.get("Speaker")): label.get("DisplayText")
        for label in _dicts(analytics.get("SpeakerLabels"))
        if isinstance(label.get("DisplayText"), str) and not _PCA_PLACEHOLDER_NAME.match(label["DisplayText"])
    }
    segments = _dicts(document.get("SpeechSegments"))
    turns = []
    for segment in segments:
        label = segment.get("SegmentSpeaker")
        text = segment.get("DisplayText")
        text = text if isinstance(text, str) else segment.get("OriginalText")
        turns.append(
            Turn(
                speaker_name(display_names.get(str(label), label)),
                str(text or ""),
                offset_s(segment.get("SegmentStartTime")),
                offset_s(segment.get("SegmentEndTime")),
            )
        )
    duration = offset_s(analytics.get("Duration"))
    if duration is None:
        duration = latest(turn.end_s for turn in turns)
    return ParsedTranscript(TranscriptFormat.POST_CALL_ANALYTICS, merge_turns(turns), duration)


def is_bedrock_audio(document: Any) -> bool:
    if not isinstance(document, dict):
        return False
    metadata = document.get("metadata")
    return isinstance(metadata, dict) and metadata.get("semantic_modality") == "AUDIO"


def parse_bedrock_audio(document: dict) -> ParsedTranscript:
    segments = _dicts(document.get("audio_segments"))
    if segments:
        items = document.get("audio_items")
        items = items if isinstance(items, list) else []
        turns = [
            Turn(
                _bedrock_speaker(segment),
                _bedrock_text(segment, items),
                offset_s(segment.get("start_timestamp_millis"), unit_s=0.001),
                offset_s(segment.get("end_timestamp_millis"), unit_s=0.001),
            )
            for segment in segments
        ]
    else:
        # Without segments only the full transcript is left, with nobody to attribute it to.
        audio = document.get("audio")
        transcript = audio.get("transcript") if isinstance(audio, dict) else None
        representation = transcript.get("representation") if isinstance(transcript, dict) else None
        text = representation.get("text") if isinstance(representation, dict) else None
        turns = [Turn(UNKNOWN_SPEAKER, str(text or ""))]
    duration = offset_s(document["metadata"].get("duration_millis"), unit_s=0.001)
    if duration is None:
        duration = latest(turn.end_s for turn in turns)
    return ParsedTranscript(TranscriptFormat.BEDROCK_DATA_AUTOMATION, merge_turns(turns), duration)


def _bedrock_speaker(segment: dict) -> str:
    """Speaker labels when speaker labelling was on, else channel labels, else one unknown speaker."""
    for key, label_key in (("speaker", "speaker_label"), ("channel", "channel_label")):
        labels = segment.get(key)
        if isinstance(labels, dict) and labels.get(label_key) is not None:
            return speaker_name(labels[label_key])
    return UNKNOWN_SPEAKER


def _bedrock_text(segment: dict, items: list[Any]) -> str:
    text = segment.get("text")
    if text is not None:
        return str(text)
    # A segment without text still lists its words by index into audio_items.
    indices = segment.get("audio_item_indices")
    words = [items[index] for index in indices or [] if isinstance(index, int) and 0 <= index < len(items)]
    return join_words(str(word.get("content", "")) for word in words if isinstance(word, dict))
