"""Amazon Transcribe batch output JSON: speaker labels, channel labels, audio segments, or no labels.

Shape (results of a batch job): {"results": {"transcripts": [{"transcript"}], "items": [{"type":
"pronunciation"|"punctuation", "alternatives": [{"content"}], "start_time", "end_time", "speaker_label"?,
"channel_label"?}], "speaker_labels"?: {"segments": [{"speaker_label", "items": [{"start_time"}]}]},
"channel_labels"?: {"channels": [{"channel_label", "items": [...]}]}, "audio_segments"?: [{"transcript",
"start_time", "end_time", "speaker_label"?|"channel_label"?, "items": [item ids]}]}}. Times are strings.
"""

from collections.abc import Iterable
from typing import Any

from chatbot.summarization import Turn
from chatbot.transcript_parsing.model import ParsedTranscript, TranscriptFormat
from chatbot.transcript_parsing.normalize import (
    UNKNOWN_SPEAKER,
    earliest,
    join_words,
    latest,
    merge_turns,
    offset_s,
    speaker_name,
)


def is_transcribe(document: Any) -> bool:
    results = document.get("results") if isinstance(document, dict) else None
    return isinstance(results, dict) and any(key in results for key in ("items", "transcripts", "audio_segments"))


def parse_transcribe(document: dict) -> ParsedTranscript:
    results = document["results"]
    items = [item for item in results.get("items") or [] if isinstance(item, dict)]
    duration = _max_time([*items, *(results.get("audio_segments") or [])])
    if results.get("audio_segments"):
        turns = _audio_segment_turns(results["audio_segments"], items)
        return ParsedTranscript(TranscriptFormat.TRANSCRIBE_AUDIO_SEGMENTS, merge_turns(turns), duration)
    if results.get("channel_labels") or any("channel_label" in item for item in items):
        channel_items = _channel_items(results.get("channel_labels") or {}, items)
        duration = duration if duration is not None else _max_time(channel_items)
        turns = _word_turns(channel_items, "channel_label", {})
        return ParsedTranscript(TranscriptFormat.TRANSCRIBE_CHANNELS, merge_turns(turns), duration)
    if results.get("speaker_labels") or any("speaker_label" in item for item in items):
        speaker_by_start = _speakers_by_start_time(results.get("speaker_labels") or {})
        turns = _word_turns(items, "speaker_label", speaker_by_start)
        return ParsedTranscript(TranscriptFormat.TRANSCRIBE_SPEAKERS, merge_turns(turns), duration)
    if items:
        turns = [Turn(UNKNOWN_SPEAKER, join_words(_content(item) for item in items), *_span_s(items))]
    else:
        transcripts = results.get("transcripts") or []
        turns = [
            Turn(UNKNOWN_SPEAKER, str(entry.get("transcript", ""))) for entry in transcripts if isinstance(entry, dict)
        ]
    return ParsedTranscript(TranscriptFormat.TRANSCRIBE_UNLABELLED, merge_turns(turns), duration)


def _content(item: dict) -> str:
    alternatives = item.get("alternatives") or [{}]
    return str(alternatives[0].get("content", "")) if isinstance(alternatives[0], dict) else ""


def _max_time(entries: Iterable[Any]) -> float | None:
    times = [offset_s(entry.get("end_time")) for entry in entries if isinstance(entry, dict)]
    known = [time for time in times if time is not None]
    return max(known) if known else None


def _word_turns(items: list[dict], label_key: str, speaker_by_start: dict[str, str]) -> list[Turn]:
    """One turn per run of words by one speaker; punctuation (no times, maybe no label) follows its word."""
    turns: list[Turn] = []
    speaker, run = None, []
    for item in items:
        label = item.get(label_key) or speaker_by_start.get(str(item.get("start_time")))
        if label is None or (item.get("type") == "punctuation" and speaker is not None):
            label = speaker
        if label != speaker and run:
            turns.append(Turn(speaker_name(speaker), join_words(_content(word) for word in run), *_span_s(run)))
            run = []
        speaker = label
        run.append(item)
    if run:
        turns.append(Turn(speaker_name(speaker), join_words(_content(word) for word in run), *_span_s(run)))
    return turns


def _span_s(items: list[dict]) -> tuple[float | None, float | None]:
    """From the first word's start to the last word's end (punctuation has no times)."""
    return (
        earliest(offset_s(item.get("start_time")) for item in items),
        latest(offset_s(item.get("end_time")) for item in items),
    )


def _speakers_by_start_time(speaker_labels: dict) -> dict[str, str]:
    """Older outputs label words only in speaker_labels.segments; match them to items by start time."""
    mapping: dict[str, str] = {}
    for segment in speaker_labels.get("segments") or []:
        for item in segment.get("items") or []:
            if isinstance(item, dict) and "start_time" in item:
                mapping[str(item["start_time"])] = str(item.get("speaker_label") or segment.get("speaker_label"))
    return mapping


def _channel_items(channel_labels: dict, items: list[dict]) -> list[dict]:
    """All channels' words in time order; punctuation keeps the time of the word it follows."""
    if any("channel_label" in item for item in items):
        return items
    timed: list[tuple[float, int, dict]] = []
    for channel in channel_labels.get("channels") or []:
        label = channel.get("channel_label")
        last_start = 0.0
        for item in channel.get("items") or []:
            if not isinstance(item, dict):
                continue
            start = offset_s(item.get("start_time"))
            last_start = start if start is not None else last_start
            timed.append((last_start, len(timed), {**item, "channel_label": label}))
    timed.sort(key=lambda entry: (entry[0], entry[1]))
    return [item for _, _, item in timed]


def _audio_segment_turns(segments: list[Any], items: list[dict]) -> list[Turn]:
    items_by_id = {str(item.get("id")): item for item in items if "id" in item}
    turns: list[Turn] = []
    for segment in segments:
        if not isinstance(segment, dict):
            continue
        label = segment.get("speaker_label") or segment.get("channel_label")
        if label is None:
            # Some outputs label only the items a segment points at.
            first_item = next((items_by_id.get(str(item_id)) for item_id in segment.get("items") or []), None) or {}
            label = first_item.get("speaker_label") or first_item.get("channel_label")
        text = segment.get("transcript")
        if text is None:
            text = join_words(_content(items_by_id.get(str(item_id), {})) for item_id in segment.get("items") or [])
        turns.append(
            Turn(speaker_name(label), str(text), offset_s(segment.get("start_time")), offset_s(segment.get("end_time")))
        )
    return turns
