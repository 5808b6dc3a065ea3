"""Hostile transcripts: parsing time grows linearly with size, and every bad file is a TranscriptError."""

import gc
import json
import time
from collections.abc import Callable

import pytest
from chatbot.summarization import Turn
from chatbot.transcript_parsing import FailureCode, TranscriptError, TranscriptFormat, parse_transcript

from bench.hostile_corpus import (
    CORPUS,
    SUMMARIZED,
    HostileCase,
    is_raw_exception_text,
    transcribe_json,
    transcribe_monologue,
    webvtt_unclosed_tags,
    webvtt_voice_storm,
)

# Linear work grows 4x from n to 4n, quadratic work 16x. Measured in CPU time on a loaded machine: 3.1x to 4.9x
# for these parsers, 14.6x to 16.8x for the quadratic ones they replace.
GROWTH = 4
MAX_GROWTH_RATIO = 10
# The documented limit on distinct speakers (diarization in Transcribe and BDA stops at 30).
MAX_SPEAKERS = 100


def parse_cpu_seconds(data: bytes) -> float:
    """CPU time of one parse (other processes' load does not count), without garbage collection pauses."""
    gc.disable()
    try:
        started = time.process_time()
        parse_transcript(data)
        return time.process_time() - started
    finally:
        gc.enable()


@pytest.mark.parametrize(
    ("make", "size"),
    [(transcribe_monologue, 2_500), (webvtt_voice_storm, 5_000), (webvtt_unclosed_tags, 2_500)],
    ids=["transcribe-monologue", "webvtt-voice-storm", "webvtt-unclosed-tags"],
)
def test_parsing_time_grows_linearly_with_the_size_of_the_file(make: Callable[[int], bytes], size: int):
    # Given the same kind of file at two sizes, one GROWTH times the other
    small, large = make(size), make(size * GROWTH)
    parse_transcript(small)  # warm up: imports, regex compilation

    # When both are parsed, in turns, and the least disturbed run of each is kept
    runs = [(parse_cpu_seconds(small), parse_cpu_seconds(large)) for _ in range(5)]
    ratio = min(large_s for _, large_s in runs) / min(small_s for small_s, _ in runs)

    # Then the time grows with the size, not with its square
    assert ratio < MAX_GROWTH_RATIO, f"{GROWTH}x the input took {ratio:.1f}x the time"


def test_transcribe_words_are_joined_the_same_way_at_any_length():
    # Given a long speaker-labels output
    parsed = parse_transcript(transcribe_json(200))

    # Then punctuation hugs its word and turns change with the speaker
    assert [turn.speaker for turn in parsed.turns] == ["Speaker 1", "Speaker 2"] * 2
    assert parsed.turns[0].text.startswith("word0 word1 word2 word3 word4 word5 word6 word7 word8 word9. word10")


# Decided by the batch job around the parser: the file's size before it is read, its length in tokens after.
JOB_CODES = {FailureCode.TOO_LARGE, FailureCode.TOO_LONG}


@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.name)
def test_every_hostile_file_parses_or_fails_for_good_with_a_sentence_about_the_file(case: HostileCase):
    # Given a file of the hostile corpus
    if case.outcome == SUMMARIZED or case.outcome in JOB_CODES:
        # When / Then it parses into turns
        assert parse_transcript(case.data).turns
        return

    # When
    with pytest.raises(TranscriptError) as raised:
        parse_transcript(case.data)

    # Then it fails for good with its code, the message says what is wrong (quoting the bad value) in words
    assert raised.value.code == case.outcome
    assert case.quoted in raised.value.message.lower()
    assert not is_raw_exception_text(raised.value.message), raised.value.message


def test_lone_surrogates_in_json_text_become_replacement_characters():
    # Given JSON escapes for half a surrogate pair in a speaker name and in a turn's text
    data = b'[{"speaker": "Ana\\udc80", "text": "caf\\ud800 au lait"}, {"speaker": "Bo", "text": "ok \\ud83d\\ude00"}]'

    # When
    parsed = parse_transcript(data)

    # Then each lone half is U+FFFD (a whole pair stays the emoji it encodes), and all the text encodes as UTF-8
    assert parsed.turns == (Turn("Ana\ufffd", "caf\ufffd au lait"), Turn("Bo", "ok \U0001f600"))
    assert all((turn.speaker + turn.text).encode("utf-8") for turn in parsed.turns)


def test_more_distinct_speakers_than_the_limit_is_a_permanent_failure():
    # Given one more speaker than the job record allows
    turns = [{"speaker": f"Person {index}", "text": "hello"} for index in range(MAX_SPEAKERS + 1)]

    # When
    with pytest.raises(TranscriptError) as raised:
        parse_transcript(json.dumps(turns).encode())

    # Then
    assert raised.value.code == FailureCode.TOO_MANY_SPEAKERS
    assert str(MAX_SPEAKERS) in raised.value.message


def test_exactly_the_speaker_limit_is_accepted():
    # Given
    turns = [{"speaker": f"Person {index}", "text": "hello"} for index in range(MAX_SPEAKERS)]

    # When
    parsed = parse_transcript(json.dumps(turns).encode())

    # Then
    assert len(parsed.speakers) == MAX_SPEAKERS


def test_subrip_without_cue_numbers_is_read_like_numbered_subrip():
    # Given cues without numbers, the second and third with no blank line between them
    srt = (
        "00:00:01,000 --> 00:00:03,000\nAgent: Hello, how can I help?\n\n"
        "00:00:03,500 --> 00:00:06,000\nCustomer: My bill is wrong,\nit doubled.\n"
        "00:00:06,500 --> 00:00:08,250\nAgent: Let me check.\n"
    )

    # When
    parsed = parse_transcript(srt.encode())

    # Then
    assert parsed.format == TranscriptFormat.SUBRIP
    assert parsed.turns == (
        Turn("Agent", "Hello, how can I help?", 1.0, 3.0),
        Turn("Customer", "My bill is wrong, it doubled.", 3.5, 6.0),
        Turn("Agent", "Let me check.", 6.5, 8.25),
    )
    assert parsed.duration_s == 8.25


def test_numbered_subrip_without_blank_lines_drops_the_cue_numbers():
    # Given
    srt = "1\n00:00:01,000 --> 00:00:02,000\nHello?\n2\n00:00:02,500 --> 00:00:04,000\nAnyone there?\n"

    # When
    parsed = parse_transcript(srt.encode())

    # Then
    assert parsed.turns == (Turn("Speaker 1", "Hello? Anyone there?", 1.0, 4.0),)
