"""Hostile transcript files, each with the outcome the batch pipeline owes it: summarized, or failed with a code.

One corpus for every level: the unit tests run it through the parser and the batch job (moto), the fault suite
drops it into the local stack's bucket as one batch (tests/integration/faults/test_hostile_batch.py), and
`python -m bench.hostile` reports its size and outcome counts. Files are built on first use (some are as large
as the pipeline accepts) and kept.

A failed job's reason is shown to users, so it must be a sentence about the file, never an exception's text.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from chatbot.transcript_jobs.keys import TRANSCRIPT_MAX_BYTES
from chatbot.transcript_parsing import FailureCode
from chatbot.transcript_parsing.detect import MAX_SPEAKERS

#: The outcome of a file that must be summarized (a failed file's outcome is its failure code).
SUMMARIZED = "summarized"

# Python's own words for an error: an exception's class name or repr, a traceback, a codec's complaint.
_RAW_EXCEPTION = re.compile(r"\w+(Error|Exception)\b|Traceback|File \"|codec can't")


def is_raw_exception_text(message: str) -> bool:
    """True when a user-facing message shows Python's error text instead of saying what is wrong with the file."""
    return bool(_RAW_EXCEPTION.search(message))


@dataclass(frozen=True)
class HostileCase:
    name: str  # also the file name it is uploaded under
    make: Callable[[], bytes]
    outcome: str  # SUMMARIZED or a FailureCode value
    quoted: str = ""  # what a failure's message must quote (lower-cased), e.g. the bad value

    @cached_property
    def data(self) -> bytes:
        return self.make()


def largest(make: Callable[[int], bytes], max_bytes: int = TRANSCRIPT_MAX_BYTES) -> bytes:
    """make(n) for about the largest n whose output fits in max_bytes (output size grows in step with n)."""
    sample = 1_000
    count = max_bytes * sample // len(make(sample))
    data = make(count)
    while len(data) > max_bytes:
        count = count * 99 // 100
        data = make(count)
    return data


def transcribe_json(words: int, turn_words: int = 50) -> bytes:
    """A Transcribe speaker-labels output of `words` words (and a full stop after every tenth), the speaker
    changing every `turn_words` words."""
    items = []
    for index in range(words):
        start = index * 0.4
        items.append(
            {
                "type": "pronunciation",
                "alternatives": [{"confidence": "0.99", "content": f"word{index % 97}"}],
                "start_time": f"{start:.2f}",
                "end_time": f"{start + 0.3:.2f}",
                "speaker_label": f"spk_{index // turn_words % 2}",
            }
        )
        if index % 10 == 9:
            items.append({"type": "punctuation", "alternatives": [{"confidence": "0.0", "content": "."}]})
    return json.dumps({"results": {"transcripts": [{"transcript": "..."}], "items": items}}).encode()


def transcribe_monologue(words: int) -> bytes:
    """Every word by one speaker: a single turn as long as the file (quadratic for a per-word scan of the turn)."""
    return transcribe_json(words, turn_words=words)


def webvtt_voice_storm(repeats: int) -> bytes:
    """One cue whose text is `<v ` over and over: every `<` opens a voice tag that never closes."""
    return ("WEBVTT\n\n00:00.000 --> 00:01.000\n" + "<v " * repeats + "hello\n").encode()


def webvtt_unclosed_tags(repeats: int) -> bytes:
    """One cue full of tags and styling overrides that never close."""
    return ("WEBVTT\n\n00:00.000 --> 00:01.000\nAgent: " + "<b {\\i1 " * repeats + "hello\n").encode()


def _transcribe_item(end_time: str) -> bytes:
    return b'{"results": {"items": [{"alternatives": [{"content": "hi"}], "end_time": ' + end_time.encode() + b"}]}}"


def _json_turns(speakers: int, speaker_name: Callable[[int], str] = lambda index: f"Person {index}") -> bytes:
    return json.dumps([{"speaker": speaker_name(index), "text": "hello"} for index in range(speakers)]).encode()


def _webvtt_voices(speakers: int) -> bytes:
    cues = "".join(f"00:00.000 --> 00:01.000\n<v Voice {index}>hello\n\n" for index in range(speakers))
    return f"WEBVTT\n\n{cues}".encode()


def _oversized() -> bytes:
    line = b"Agent: The router dropped the connection again last night.\n"
    return (line * (TRANSCRIPT_MAX_BYTES // len(line) + 1))[: TRANSCRIPT_MAX_BYTES + 1]


def _zip_of_a_transcript() -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("call.txt", "Agent: Hello, how can I help?\nCustomer: My bill is wrong.\n" * 1_000)
    return archive.getvalue()


def _binary_garbage() -> bytes:
    # Every byte value, shuffled by a fixed multiplier: deterministic, and nowhere near text.
    return bytes((index * 167 + 13) % 256 for index in range(64 * 1024))


_CALL = "Agent: Hello, how can I help?\nCustomer: My bill doubled this month, and I was charged twice.\n"
_DIGITS_400 = "9" * 400

CORPUS: tuple[HostileCase, ...] = (
    # Inputs that made the parsers quadratic (17 s for 1.3 MB), at the largest size the pipeline accepts.
    HostileCase("transcribe-monologue-at-limit.json", lambda: largest(transcribe_monologue), SUMMARIZED),
    # About one token per 1.5 bytes: twice the tokens one run of the batch function can summarize.
    HostileCase("webvtt-voice-storm-at-limit.vtt", lambda: largest(webvtt_voice_storm), FailureCode.TOO_LONG, "tokens"),
    HostileCase(
        "webvtt-unclosed-tags-at-limit.vtt", lambda: largest(webvtt_unclosed_tags), FailureCode.TOO_LONG, "tokens"
    ),
    HostileCase("plain-text-one-line-at-limit.txt", lambda: largest(lambda n: b"Agent: " + b"word " * n), SUMMARIZED),
    # Times that are no offset into a call (OverflowError, NaN or infinity once stored as a Decimal).
    HostileCase(
        "webvtt-hours-of-400-digits.vtt",
        lambda: f"WEBVTT\n\n00:00.000 --> {_DIGITS_400}:00:01.000\nhello\n".encode(),
        FailureCode.UNPARSEABLE,
        "999",
    ),
    HostileCase(
        "subrip-hours-of-400-digits.srt",
        lambda: f"1\n00:00:00,000 --> {_DIGITS_400}:00:01,000\nhello\n".encode(),
        FailureCode.UNPARSEABLE,
        "999",
    ),
    HostileCase("transcribe-nan-end.json", lambda: _transcribe_item('"NaN"'), FailureCode.UNPARSEABLE, "nan"),
    HostileCase("transcribe-1e999-end.json", lambda: _transcribe_item("1e999"), FailureCode.UNPARSEABLE, "inf"),
    HostileCase(
        "transcribe-minus-infinity-end.json", lambda: _transcribe_item('"-Infinity"'), FailureCode.UNPARSEABLE, "-inf"
    ),
    HostileCase("transcribe-1e300-end.json", lambda: _transcribe_item('"1e300"'), FailureCode.UNPARSEABLE, "1e300"),
    HostileCase(
        "call-analytics-nan-offset.json",
        lambda: b'{"Transcript": [{"ParticipantRole": "AGENT", "Content": "hi", "EndOffsetMillis": NaN}]}',
        FailureCode.UNPARSEABLE,
        "nan",
    ),
    HostileCase(
        "json-turns-400-digit-end.json",
        lambda: f'[{{"speaker": "A", "text": "hi", "end": {_DIGITS_400}}}]'.encode(),
        FailureCode.UNPARSEABLE,
        "999",
    ),
    # Text that cannot be encoded as UTF-8 (UnicodeEncodeError in token counting).
    HostileCase(
        "json-lone-surrogates.json",
        lambda: b'[{"speaker": "Ana\\udc80", "text": "caf\\ud800 au lait"}, {"speaker": "Bo", "text": "ok"}]',
        SUMMARIZED,
    ),
    HostileCase(
        "webvtt-surrogate-bytes.vtt",
        lambda: "WEBVTT\n\n00:00.000 --> 00:01.000\n<v Ana>hi \ud800 there\n".encode("utf-8", "surrogatepass"),
        SUMMARIZED,
    ),
    # Speakers: every name is kept on the job record (a DynamoDB item is at most 400 KB).
    HostileCase(
        f"json-turns-{MAX_SPEAKERS + 1}-speakers.json",
        lambda: _json_turns(MAX_SPEAKERS + 1),
        FailureCode.TOO_MANY_SPEAKERS,
        str(MAX_SPEAKERS),
    ),
    HostileCase("webvtt-10000-voices.vtt", lambda: _webvtt_voices(10_000), FailureCode.TOO_MANY_SPEAKERS, "10000"),
    HostileCase(
        f"json-turns-{MAX_SPEAKERS}-speakers-of-9000-characters.json",
        lambda: _json_turns(MAX_SPEAKERS, lambda index: f"{index:03d}" + "x" * 9_000),
        SUMMARIZED,
    ),
    HostileCase(
        "json-turns-speaker-of-100k-characters.json",
        lambda: _json_turns(1, lambda _: "A" * 100_000),
        SUMMARIZED,
    ),
    # Size and emptiness.
    HostileCase("oversized.txt", _oversized, FailureCode.TOO_LARGE, f"{TRANSCRIPT_MAX_BYTES:,}"),
    HostileCase("empty.txt", lambda: b"", FailureCode.EMPTY),
    HostileCase("whitespace-only.txt", lambda: b"  \n\t \r\n", FailureCode.EMPTY),
    HostileCase("byte-order-mark-only.txt", lambda: "\ufeff  \n".encode(), FailureCode.EMPTY),
    # Not text: binary files, archives (never unpacked, so a zip bomb is only its compressed bytes).
    HostileCase("binary-garbage.bin", _binary_garbage, FailureCode.UNPARSEABLE, "binary"),
    HostileCase(
        "png-image.png", lambda: b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, FailureCode.UNPARSEABLE, "binary"
    ),
    HostileCase(
        "gzip-bomb-10mb-of-zeros.txt.gz", lambda: gzip.compress(b"\0" * 10_000_000), FailureCode.UNPARSEABLE, "binary"
    ),
    HostileCase("zip-of-a-transcript.zip", _zip_of_a_transcript, FailureCode.UNPARSEABLE, "binary"),
    HostileCase("nul-bytes-in-text.txt", lambda: b"Agent: hi\0\0\0\0there\n", FailureCode.UNPARSEABLE, "binary"),
    # Encodings: what a text editor may save is read; a byte order mark that lies is refused.
    HostileCase("utf-16-le-without-bom.txt", lambda: _CALL.encode("utf-16-le"), SUMMARIZED),
    HostileCase("utf-16-be-with-bom.txt", lambda: ("\ufeff" + _CALL).encode("utf-16-be"), SUMMARIZED),
    HostileCase(
        "windows-1252.txt", lambda: "Agent: Café \u2019ok\u2019 \u20ac5\nCustomer: Merci\n".encode("cp1252"), SUMMARIZED
    ),
    HostileCase("latin-1-undefined-in-1252.txt", lambda: b"Agent: \x81\x8d caf\xe9\nCustomer: ok\n", SUMMARIZED),
    HostileCase(
        "utf-8-bom-then-invalid-utf-8.txt",
        lambda: b"\xef\xbb\xbfAgent: caf\xe9 \xff\n",
        FailureCode.UNPARSEABLE,
        "utf-8",
    ),
    HostileCase(
        "utf-16-bom-odd-length.txt",
        lambda: b"\xff\xfe" + "Agent: hi\n".encode("utf-16-le") + b"\0",
        FailureCode.UNPARSEABLE,
        "utf-16",
    ),
    HostileCase(
        "utf-32-bom-then-out-of-range.txt",
        lambda: b"\xff\xfe\0\0" + b"\xff\xff\xff\xff" * 4,
        FailureCode.UNPARSEABLE,
        "utf-32",
    ),
    # JSON that breaks the decoder or the format's rules.
    HostileCase(
        "json-nested-100k-arrays.json", lambda: b"[" * 100_000 + b"]" * 100_000, FailureCode.UNPARSEABLE, "nested"
    ),
    HostileCase(
        "json-nested-50k-objects.json",
        lambda: b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        FailureCode.UNPARSEABLE,
        "nested",
    ),
    HostileCase(
        "json-truncated.json", lambda: b'[{"speaker": "A", "text": "hi"', FailureCode.UNPARSEABLE, "invalid json"
    ),
    HostileCase(
        "transcribe-wrong-types.json",
        lambda: b'{"results": {"items": [{"alternatives": 5}]}}',
        FailureCode.UNPARSEABLE,
        "malformed",
    ),
    HostileCase(
        "transcribe-speaker-segments-of-strings.json",
        lambda: (
            b'{"results": {"items": [{"alternatives": [{"content": "hi"}]}], "speaker_labels": {"segments": ["x"]}}}'
        ),
        FailureCode.UNPARSEABLE,
        "malformed",
    ),
    HostileCase("transcribe-no-items.json", lambda: b'{"results": {"items": []}}', FailureCode.NO_SPEECH),
    HostileCase(
        "call-analytics-blank-content.json",
        lambda: b'{"Transcript": [{"ParticipantRole": "AGENT", "Content": "   "}]}',
        FailureCode.NO_SPEECH,
    ),
    HostileCase("json-of-no-known-format.json", lambda: b'{"foo": [1, 2, 3]}', FailureCode.UNKNOWN_FORMAT),
    HostileCase("json-list-of-numbers.json", lambda: b"[1, 2, 3]", FailureCode.UNKNOWN_FORMAT),
    # Captions and text.
    HostileCase(
        "subrip-without-cue-numbers.srt",
        lambda: b"00:00:01,000 --> 00:00:03,000\nAgent: Hello\n00:00:03,500 --> 00:00:06,000\nCustomer: Hi\n",
        SUMMARIZED,
    ),
    HostileCase("webvtt-without-cues.vtt", lambda: b"WEBVTT\n\nNOTE nothing here\n", FailureCode.UNPARSEABLE, "cue"),
    HostileCase("webvtt-empty-cue.vtt", lambda: b"WEBVTT\n\n00:00.000 --> 00:01.000\n\n", FailureCode.NO_SPEECH),
    HostileCase("notes-not-a-transcript.txt", lambda: b"Remember to buy milk.\n", FailureCode.UNKNOWN_FORMAT),
)


def failing_cases() -> list[HostileCase]:
    return [case for case in CORPUS if case.outcome != SUMMARIZED]


def summarized_cases() -> list[HostileCase]:
    return [case for case in CORPUS if case.outcome == SUMMARIZED]
