"""Format detection and one parser per format and variant, normalised into merged speaker turns."""

import copy
import json
from itertools import pairwise
from pathlib import Path

import pytest
from chatbot.summarization import Turn
from chatbot.transcript_parsing import FailureCode, TranscriptError, TranscriptFormat, parse_transcript
from chatbot.transcript_parsing.normalize import join_words, speaker_name
from hypothesis import given, settings
from hypothesis import strategies as st

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "transcripts"
FIRST_AGENT_LINE = "Thank you for calling Northwind Internet, this is Maria. How can I help you today?"
LAST_CUSTOMER_LINE = "No, that's all. Have a nice day."


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.mark.parametrize(
    ("name", "expected_format", "speakers", "duration_s"),
    [
        ("transcribe_speaker_labels.json", TranscriptFormat.TRANSCRIBE_SPEAKERS, ["Speaker 1", "Speaker 2"], 36.16),
        (
            "transcribe_speaker_labels_legacy.json",
            TranscriptFormat.TRANSCRIBE_SPEAKERS,
            ["Speaker 1", "Speaker 2"],
            36.16,
        ),
        ("transcribe_channel_labels.json", TranscriptFormat.TRANSCRIBE_CHANNELS, ["Speaker 1", "Speaker 2"], 36.16),
        (
            "transcribe_audio_segments.json",
            TranscriptFormat.TRANSCRIBE_AUDIO_SEGMENTS,
            ["Speaker 1", "Speaker 2"],
            36.16,
        ),
        ("call_analytics.json", TranscriptFormat.TRANSCRIBE_CALL_ANALYTICS, ["Agent", "Customer"], 37.0),
        ("contact_lens.json", TranscriptFormat.CONTACT_LENS, ["Agent", "Customer"], 37.0),
        ("webvtt_voices.vtt", TranscriptFormat.WEBVTT, ["Maria", "Sam Lee"], 36.2),
        ("subrip.srt", TranscriptFormat.SUBRIP, ["MARIA", "Sam Lee"], 36.2),
        ("plain_text.txt", TranscriptFormat.PLAIN_TEXT, ["Agent", "Customer"], None),
        ("json_turns.json", TranscriptFormat.JSON_TURNS, ["Agent", "Customer"], None),
        ("pca_parsed_results.json", TranscriptFormat.POST_CALL_ANALYTICS, ["Agent", "Customer"], 37.0),
        (
            "bda_audio_standard_output.json",
            TranscriptFormat.BEDROCK_DATA_AUTOMATION,
            ["Speaker 1", "Speaker 2"],
            37.0,
        ),
    ],
)
def test_each_sample_format_is_detected_and_parsed_into_the_same_eight_turns(
    name, expected_format, speakers, duration_s
):
    # Given one of our sample transcripts of the same support call
    data = fixture(name)

    # When
    parsed = parse_transcript(data)

    # Then the format, speakers, turn texts (punctuation attached) and duration come out
    assert parsed.format == expected_format
    assert parsed.speakers == speakers
    assert len(parsed.turns) == 8
    assert (parsed.turns[0].speaker, parsed.turns[0].text) == (speakers[0], FIRST_AGENT_LINE)
    assert (parsed.turns[-1].speaker, parsed.turns[-1].text) == (speakers[1], LAST_CUSTOMER_LINE)
    assert parsed.duration_s == duration_s


@pytest.mark.parametrize(
    ("name", "first_turn_s"),
    [
        ("transcribe_speaker_labels.json", (0.5, 5.71)),  # from its first word's start to its last word's end
        ("transcribe_speaker_labels_legacy.json", (0.5, 5.71)),
        ("transcribe_channel_labels.json", (0.5, 5.71)),
        ("transcribe_audio_segments.json", (0.5, 5.71)),
        ("call_analytics.json", (0.5, 5.75)),
        ("contact_lens.json", (0.5, 5.75)),
        ("webvtt_voices.vtt", (0.5, 5.75)),
        ("subrip.srt", (0.5, 5.75)),
        ("pca_parsed_results.json", (0.5, 5.75)),
        ("bda_audio_standard_output.json", (0.5, 5.75)),
        ("plain_text.txt", (None, None)),
        ("json_turns.json", (None, None)),
    ],
)
def test_turns_keep_their_start_and_end_where_the_format_has_times(name, first_turn_s):
    # Given one of our sample transcripts of the same support call
    # When
    parsed = parse_transcript(fixture(name))

    # Then the first turn spans its first segment (or words), in seconds; formats without times say None
    assert (parsed.turns[0].start_s, parsed.turns[0].end_s) == first_turn_s
    if first_turn_s[0] is None:
        assert all(turn.start_s is None and turn.end_s is None for turn in parsed.turns)
        return
    # And every turn has times, in call order, within the call
    assert all(turn.start_s <= turn.end_s <= parsed.duration_s for turn in parsed.turns)
    assert all(before.start_s < after.start_s for before, after in pairwise(parsed.turns))


def test_merged_turns_span_from_the_first_start_to_the_last_end():
    # Given two consecutive cues of one speaker, then another speaker's
    text = "WEBVTT\n\n00:01.000 --> 00:02.500\n<v Ana>Hello.\n\n00:03.000 --> 00:04.000\n<v Ana>Still me.\n\n"
    text += "00:04.500 --> 00:06.000\n<v Bo>Hi.\n"

    # When
    parsed = parse_transcript(text.encode())

    # Then Ana's two cues are one turn from 1.0 s to 4.0 s
    assert parsed.turns == (Turn("Ana", "Hello. Still me.", 1.0, 4.0), Turn("Bo", "Hi.", 4.5, 6.0))


def test_transcribe_without_labels_is_one_speaker_with_words_joined():
    # Given
    parsed = parse_transcript(fixture("transcribe_unlabelled.json"))

    # Then
    assert parsed.format == TranscriptFormat.TRANSCRIBE_UNLABELLED
    assert parsed.speakers == ["Speaker 1"]
    assert parsed.turns[0].text.startswith(FIRST_AGENT_LINE + " Hi, my router")


def test_transcribe_channels_without_labels_on_items_are_interleaved_by_time():
    # Given an older channel-identification output: labels only on channel_labels.channels
    document = json.loads(fixture("transcribe_channel_labels.json"))
    document["results"]["items"] = [
        {key: value for key, value in item.items() if key != "channel_label"} for item in document["results"]["items"]
    ]

    # When
    parsed = parse_transcript(json.dumps(document).encode())

    # Then the two channels are merged back into the conversation order
    assert parsed.format == TranscriptFormat.TRANSCRIBE_CHANNELS
    assert [turn.speaker for turn in parsed.turns] == ["Speaker 1", "Speaker 2"] * 4
    assert parsed.turns[3].text == "Sure, it's an AX1800."


def test_transcribe_audio_segments_without_labels_take_the_speaker_of_their_items():
    # Given
    document = json.loads(fixture("transcribe_audio_segments.json"))
    for segment in document["results"]["audio_segments"]:
        del segment["speaker_label"]

    # When
    parsed = parse_transcript(json.dumps(document).encode())

    # Then
    assert parsed.speakers == ["Speaker 1", "Speaker 2"]
    assert len(parsed.turns) == 8


def test_transcribe_with_only_a_transcript_string_is_one_turn():
    # Given
    document = {"results": {"transcripts": [{"transcript": "Hello there. General Kenobi."}], "items": []}}

    # When
    parsed = parse_transcript(json.dumps(document).encode())

    # Then
    assert parsed.turns == (Turn("Speaker 1", "Hello there. General Kenobi."),)


def test_consecutive_turns_of_one_speaker_are_merged():
    # Given a call analytics file where the agent speaks twice in a row, out of time order in the file
    document = json.loads(fixture("call_analytics.json"))
    extra = copy.deepcopy(document["Transcript"][0])
    extra.update(Content="Please hold.", BeginOffsetMillis=5000, Id="extra")
    document["Transcript"].append(extra)

    # When
    parsed = parse_transcript(json.dumps(document).encode())

    # Then the extra segment joins the first agent turn (sorted by time, then merged)
    assert parsed.turns[0] == Turn("Agent", FIRST_AGENT_LINE + " Please hold.", 0.5, 5.75)
    assert len(parsed.turns) == 8


def test_contact_lens_uses_display_names_when_participants_have_them():
    # Given
    document = json.loads(fixture("contact_lens.json"))
    document["Participants"][1]["DisplayName"] = "Maria (agent)"

    # When
    parsed = parse_transcript(json.dumps(document).encode())

    # Then
    assert parsed.speakers == ["Maria (agent)", "Customer"]


def test_post_call_analytics_shows_the_display_text_and_numbers_speakers_without_a_configured_name():
    # Given PCA results where a speaker has PCA's placeholder name and one turn's text was edited for display
    document = json.loads(fixture("pca_parsed_results.json"))
    document["ConversationAnalytics"]["SpeakerLabels"][1]["DisplayText"] = "Unknown_1"
    document["SpeechSegments"][1]["DisplayText"] = "Hi, my router drops the connection every evening."
    del document["ConversationAnalytics"]["Duration"]

    # When
    parsed = parse_transcript(json.dumps(document).encode())

    # Then
    assert parsed.speakers == ["Agent", "Speaker 2"]
    assert parsed.turns[1] == Turn("Speaker 2", "Hi, my router drops the connection every evening.", 6.55, 9.7)
    assert parsed.duration_s == 36.2  # the last segment's end, without the header's duration


def test_bedrock_audio_without_speaker_labels_uses_channels_and_the_words_of_untexted_segments():
    # Given BDA output with channel labelling only, and a segment that lists its words but carries no text
    document = json.loads(fixture("bda_audio_standard_output.json"))
    for segment in document["audio_segments"]:
        del segment["speaker"]
    del document["audio_segments"][3]["text"]
    del document["metadata"]["duration_millis"]

    # When
    parsed = parse_transcript(json.dumps(document).encode())

    # Then
    assert parsed.speakers == ["Speaker 1", "Speaker 2"]
    assert parsed.turns[3] == Turn("Speaker 2", "Sure, it's an AX1800.", 17.6, 19.0)
    assert parsed.duration_s == 36.2


def test_bedrock_audio_without_segments_is_its_full_transcript_by_one_speaker():
    # Given
    document = json.loads(fixture("bda_audio_standard_output.json"))
    del document["audio_segments"]

    # When
    parsed = parse_transcript(json.dumps(document).encode())

    # Then
    assert len(parsed.turns) == 1
    assert parsed.turns[0].speaker == "Speaker 1"
    assert parsed.turns[0].text.startswith(FIRST_AGENT_LINE + " Hi, my router")
    assert parsed.duration_s == 37.0


def test_webvtt_without_voice_tags_reads_name_prefixes_and_strips_styling():
    # Given
    vtt = (
        "WEBVTT - support call\n\nSTYLE\n::cue { color: lime }\n\n"
        "00:01.000 --> 00:03.000\n<i>Agent:</i> Hello &amp; welcome.\n\n"
        "2\n00:03.500 --> 00:05.000 align:start\n- Customer: My <b>bill</b> is wrong,\nit doubled.\n\n"
        "00:05.000 --> 01:00:07.250\n<v.loud Agent>Let me check.\n"
    )

    # When
    parsed = parse_transcript(vtt.encode())

    # Then
    assert parsed.turns == (
        Turn("Agent", "Hello & welcome.", 1.0, 3.0),
        Turn("Customer", "My bill is wrong, it doubled.", 3.5, 5.0),
        Turn("Agent", "Let me check.", 5.0, 3607.25),
    )
    assert parsed.duration_s == 3607.25


def test_subrip_with_formatting_tags_and_unlabelled_cues():
    # Given
    srt = (
        "1\n00:00:01,000 --> 00:00:02,000\n<i>Hello?</i>\n\n2\n00:00:02,500 --> 00:00:04,000\n{\\an8}Is anyone there?\n"
    )

    # When
    parsed = parse_transcript(srt.encode())

    # Then
    assert parsed.format == TranscriptFormat.SUBRIP
    assert parsed.turns == (Turn("Speaker 1", "Hello? Is anyone there?", 1.0, 4.0),)


def test_plain_text_with_timestamps_roles_in_capitals_and_wrapped_lines():
    # Given
    text = (
        "Call 4411, 2026-11-02\n"
        "[00:00:01] AGENT: Good morning, you're through to billing.\n"
        "[00:00:04] CUSTOMER: Hi. I was charged twice\n"
        "for the same month.\n"
        "[00:00:09] AGENT: I can see that; I'll refund it today.\n"
    )

    # When
    parsed = parse_transcript(text.encode())

    # Then the header line before the first speaker is dropped, the wrapped line joins its turn
    assert parsed.turns == (
        Turn("Agent", "Good morning, you're through to billing."),
        Turn("Customer", "Hi. I was charged twice for the same month."),
        Turn("Agent", "I can see that; I'll refund it today."),
    )


def test_json_turns_accept_common_key_names_and_a_wrapping_object():
    # Given
    document = {"messages": [{"role": "agent", "content": "Hello."}, {"name": "Dana", "utterance": "Hi!", "end": 4.5}]}

    # When
    parsed = parse_transcript(json.dumps(document).encode())

    # Then
    assert parsed.turns == (Turn("Agent", "Hello."), Turn("Dana", "Hi!"))
    assert parsed.duration_s == 4.5


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: text.encode("utf-8-sig"),
        lambda text: text.encode("utf-16"),
        lambda text: text.encode("utf-16-le"),
        lambda text: text.encode("utf-16-be"),
        lambda text: text.encode("utf-32"),
        lambda text: text.encode("cp1252"),
        lambda text: text.replace("\n", "\r\n").encode("utf-8"),
        lambda text: text.replace("\n", "\r").encode("utf-8"),
    ],
    ids=["utf8-bom", "utf16-bom", "utf16le-no-bom", "utf16be-no-bom", "utf32-bom", "cp1252", "crlf", "cr"],
)
def test_text_encodings_and_line_ends_decode_to_the_same_turns(encode):
    # Given a transcript with curly quotes and accents in several encodings
    text = "Agent: Bonjour, ça va? “Yes” — it’s fine.\nCustomer: Très bien, merci.\n"

    # When
    parsed = parse_transcript(encode(text))

    # Then
    assert parsed.turns == (
        Turn("Agent", "Bonjour, ça va? “Yes” — it’s fine."),
        Turn("Customer", "Très bien, merci."),
    )


def test_latin1_bytes_that_are_not_cp1252_still_decode():
    # Given byte 0x81 (undefined in cp1252) among Latin-1 text
    data = "Agent: Grüß Gott\n".encode("latin-1") + b"Customer: ok \x81\n"

    # When
    parsed = parse_transcript(data)

    # Then
    assert parsed.turns[0] == Turn("Agent", "Grüß Gott")


@pytest.mark.parametrize(
    ("label", "name"),
    [
        ("spk_0", "Speaker 1"),
        ("ch_1", "Speaker 2"),
        ("AGENT", "Agent"),
        ("customer", "Customer"),
        ("CUSTOM_BOT", "Bot"),
        ("  Dr.   Who ", "Dr. Who"),
        ("", "Speaker 1"),
        (None, "Speaker 1"),
        ("x" * 100, "x" * 64),
    ],
)
def test_speaker_labels_become_readable_names(label, name):
    # Given / When / Then
    assert speaker_name(label) == name


def test_words_and_punctuation_are_joined_with_spaces_only_where_they_belong():
    # Given / When / Then
    assert join_words(["Hello", ",", "it's", "(", "really", ")", "10", "%", "done", "."]) == (
        "Hello, it's (really) 10% done."
    )


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=2000),
        st.text(max_size=1000).map(str.encode),
        st.sampled_from([path.read_bytes() for path in sorted(FIXTURES.iterdir())]).flatmap(
            lambda data: st.integers(0, len(data)).map(lambda cut: data[:cut])
        ),
    )
)
def test_any_bytes_parse_to_turns_or_a_transcript_error_and_nothing_else(data):
    # Given arbitrary bytes, text, or a sample cut off anywhere
    # When
    try:
        parsed = parse_transcript(data)
    except TranscriptError as error:
        # Then either a permanent reason...
        assert error.code in FailureCode
    else:
        # ...or speaker turns with text, never two in a row by one speaker
        assert parsed.turns and all(turn.text.strip() and turn.speaker for turn in parsed.turns)
        assert all(first.speaker != second.speaker for first, second in pairwise(parsed.turns))
