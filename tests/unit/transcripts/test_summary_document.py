"""The summary document keeps every turn, last, and the first turns can be read from any prefix of it."""

import json

import pytest
from chatbot.summarization import Turn
from chatbot.transcript_jobs.summary_document import TURNS_FIELD, all_turns, first_turns, render_summary_document
from hypothesis import given, settings
from hypothesis import strategies as st

FIELDS = {"summary": 'Agent quoted "transcript": [ back to the customer.\n  "transcript": [', "turns": 3}
TURNS = [
    Turn("Agent", "Grüß Gott, wie kann ich helfen?"),
    Turn("Customer", "請幫我查一下帳單 — the one from 3 March 🙂"),
    Turn("Agent", 'She said: "done", then left.\nNext line.'),
]
EXPECTED = [{"speaker": turn.speaker, "text": turn.text} for turn in TURNS]


def test_the_document_holds_every_turn_last_and_reads_back_whole():
    # Given / When
    body = render_summary_document(FIELDS, TURNS)
    document = json.loads(body)

    # Then the fields come first, then every turn
    assert list(document) == [*FIELDS, TURNS_FIELD]
    assert document[TURNS_FIELD] == EXPECTED
    excerpt = first_turns(body, complete=True, max_turns=10)
    assert (excerpt.turns, excerpt.truncated) == (EXPECTED, False)


def test_turn_times_are_stored_where_known_and_every_turn_reads_back_with_them():
    # Given turns with times, one with a start only, one without
    timed = [Turn("Agent", "Hello.", 0.5, 2.25), Turn("Customer", "Hi.", 3.0), *TURNS]

    # When the document is written and all its turns are read back
    body = render_summary_document(FIELDS, timed)

    # Then the times are stored as `start` / `end` seconds only where known, and come back as they went in
    assert json.loads(body)[TURNS_FIELD][:3] == [
        {"speaker": "Agent", "text": "Hello.", "start": 0.5, "end": 2.25},
        {"speaker": "Customer", "text": "Hi.", "start": 3.0},
        EXPECTED[0],
    ]
    assert all_turns(body) == timed
    # And a document without turns (written before they were stored) has none to read
    assert all_turns(json.dumps({"summary": "x"}).encode()) is None


@pytest.mark.parametrize("complete", [True, False])
def test_the_first_turns_carry_their_times_where_known(complete):
    # Given a document whose first turns have times (one with a start only) and then turns without
    timed = [Turn("Agent", "Hello.", 0.5, 2.25), Turn("Customer", "Hi.", 3.0), *TURNS]
    body = render_summary_document(FIELDS, timed)

    # When the first turns are read, from the whole document or from a prefix of it
    excerpt = first_turns(body if complete else body[:-1], complete=complete, max_turns=3)

    # Then each turn shows its start and end in seconds where the transcript had them, and no times otherwise
    assert excerpt.turns == [
        {"speaker": "Agent", "text": "Hello.", "start_s": 0.5, "end_s": 2.25},
        {"speaker": "Customer", "text": "Hi.", "start_s": 3.0},
        EXPECTED[0],
    ]


def test_every_prefix_gives_a_prefix_of_the_turns():
    # Given the document cut after every possible byte (multi-byte characters included)
    body = render_summary_document(FIELDS, TURNS)
    marker = f'\n  "{TURNS_FIELD}": ['.encode()
    turns_open_at = body.index(marker) + len(marker)
    turns_close_at = body.rindex(b"]") + 1
    for cut in range(len(body) + 1):
        # When the first turns are read from that prefix alone
        excerpt = first_turns(body[:cut], complete=False, max_turns=10)

        # Then nothing is found before the turns open, and afterwards a prefix of them, flagged until all are read
        if cut < turns_open_at:
            assert excerpt is None, cut
            continue
        assert excerpt is not None, cut
        assert excerpt.turns == EXPECTED[: len(excerpt.turns)], cut
        assert excerpt.truncated == (cut < turns_close_at), cut
        assert len(excerpt.turns) == len(EXPECTED) or cut < turns_close_at, cut
    assert first_turns(body, complete=False, max_turns=10).turns == EXPECTED


@pytest.mark.parametrize("complete", [True, False])
def test_at_most_max_turns_are_returned_and_the_cut_is_flagged(complete):
    body = render_summary_document({"summary": "s"}, TURNS)
    excerpt = first_turns(body, complete=complete, max_turns=2)
    assert (excerpt.turns, excerpt.truncated) == (EXPECTED[:2], True)
    exactly = first_turns(body, complete=complete, max_turns=3)
    assert (exactly.turns, exactly.truncated) == (EXPECTED, False)


@pytest.mark.parametrize("complete", [True, False])
def test_a_document_without_turns_has_none(complete):
    # Given a summary document written before turns were stored
    body = json.dumps({"summary": "Old summary.", "turns": 4}, indent=2).encode()
    # When / Then
    assert first_turns(body, complete=complete, max_turns=10) is None


def test_the_turns_field_name_is_reserved():
    with pytest.raises(ValueError, match=TURNS_FIELD):
        render_summary_document({TURNS_FIELD: "mine"}, TURNS)


@settings(max_examples=60, deadline=None)
@given(
    turns=st.lists(st.builds(Turn, st.text(min_size=1, max_size=12), st.text(max_size=40)), max_size=12),
    cut=st.integers(min_value=0, max_value=4000),
)
def test_any_transcript_cut_anywhere_reads_as_a_prefix(turns, cut):
    # Given any turns (any characters) and a read that ends anywhere
    body = render_summary_document({"summary": "s"}, turns)
    expected = [{"speaker": turn.speaker, "text": turn.text} for turn in turns]
    # When the first turns are read from that prefix
    excerpt = first_turns(body[:cut], complete=False, max_turns=100)
    # Then they are the transcript's first turns, and a shortened list says so
    if excerpt is not None:
        assert excerpt.turns == expected[: len(excerpt.turns)]
        assert excerpt.truncated or excerpt.turns == expected
