"""Transcript parsing benchmark: MB/s of `parse_transcript` on the largest file the pipeline accepts.

Files of TRANSCRIPT_MAX_BYTES: an Amazon Transcribe speaker-labels JSON (a two-speaker
call, and one speaker throughout), a WebVTT call with voice tags, and a hostile WebVTT cue of voice tags that
never close. Each is compared with a baseline on the same bytes in the same run: `json.loads` for the JSON
(parsing can hardly beat decoding it), decoding and splitting into lines for the captions. The figure is the
ratio, so it compares across machines.

Run: `python -m bench.parsing` (or `make bench`).
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable

from chatbot.transcript_jobs.keys import TRANSCRIPT_MAX_BYTES
from chatbot.transcript_parsing import parse_transcript

from bench.hostile_corpus import largest, webvtt_voice_storm

RUNS = 3
SENTENCES = (
    "I can see the router dropped the connection three times last night",
    "could you restart it and tell me what the lights show",
    "the firmware update is pending so I will push it now",
    "thanks that fixed it for today but it happened last week too",
)


def transcribe_json(words: int, turn_words: int = 40) -> bytes:
    """A Transcribe speaker-labels output: the speaker changes every `turn_words` words, a full stop every 12."""
    items = []
    for index in range(words):
        start = index * 0.35
        sentence = SENTENCES[index // 12 % len(SENTENCES)].split()
        items.append(
            {
                "id": len(items),
                "type": "pronunciation",
                "alternatives": [{"confidence": "0.998", "content": sentence[index % len(sentence)]}],
                "start_time": f"{start:.3f}",
                "end_time": f"{start + 0.3:.3f}",
                "speaker_label": f"spk_{index // turn_words % 2}",
            }
        )
        if index % 12 == 11:
            items.append(
                {
                    "id": len(items),
                    "type": "punctuation",
                    "alternatives": [{"confidence": "0.0", "content": "."}],
                    "speaker_label": f"spk_{index // turn_words % 2}",
                }
            )
    document = {"jobName": "bench", "results": {"transcripts": [{"transcript": "..."}], "items": items}}
    return json.dumps(document).encode()


def transcribe_monologue(words: int) -> bytes:
    """One speaker throughout: a single turn as long as the file (quadratic for a per-word scan of the turn)."""
    return transcribe_json(words, turn_words=words)


def webvtt_call(cues: int) -> bytes:
    lines = ["WEBVTT", ""]
    for index in range(cues):
        start = index * 4
        speaker = ("Maria", "Sam Lee")[index % 2]
        lines += [
            f"{start // 3600:02d}:{start // 60 % 60:02d}:{start % 60:02d}.000 --> "
            f"{start // 3600:02d}:{start // 60 % 60:02d}:{start % 60 + 3:02d}.500",
            f"<v {speaker}>{SENTENCES[index % len(SENTENCES)]}.",
            "",
        ]
    return "\n".join(lines).encode()


def best_cpu_s(work: Callable[[], object]) -> float:
    """The least CPU time of RUNS runs: other processes on a shared machine do not count."""
    timings = []
    gc.disable()  # a collection in one run and not in another would be noise
    try:
        for _ in range(RUNS):
            started = time.process_time()
            work()
            timings.append(time.process_time() - started)
    finally:
        gc.enable()
    return min(timings)


def _lines(data: bytes) -> list[str]:
    return data.decode("utf-8").split("\n")


def main() -> None:
    size = f"{TRANSCRIPT_MAX_BYTES // 1024:,} KiB"
    print(f"parsing: parse_transcript on the largest accepted file ({size}), least CPU time of {RUNS} runs")
    cases = (
        ("Transcribe speaker-labels JSON", largest(transcribe_json), "json.loads", json.loads),
        ("Transcribe JSON, one speaker", largest(transcribe_monologue), "json.loads", json.loads),
        ("WebVTT call with voice tags", largest(webvtt_call), "decode + split lines", _lines),
        ("WebVTT cue of unclosed <v tags", largest(webvtt_voice_storm), "decode + split lines", _lines),
    )
    for label, data, baseline_label, baseline in cases:
        megabytes = len(data) / 1e6
        parse_s = best_cpu_s(lambda data=data: parse_transcript(data))
        baseline_s = best_cpu_s(lambda data=data, baseline=baseline: baseline(data))
        print(
            f"  {label} ({megabytes:.1f} MB): {megabytes / parse_s:6.1f} MB/s "
            f"vs {baseline_label} {megabytes / baseline_s:7.1f} MB/s: parsing takes {parse_s / baseline_s:.1f}x"
            f" the baseline ({parse_s:.2f} s CPU)"
        )


if __name__ == "__main__":
    main()
