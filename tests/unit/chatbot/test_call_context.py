"""The context of a question about a call: summary, relevant turns within the token budget, references."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from chatbot.call_context import CallTurn, NoTurnsError, TurnReference, build_call_context, call_turns
from chatbot.tokens import estimate_tokens
from chatbot.transcript_parsing import parse_transcript

FIXTURES = Path(__file__).parents[2] / "fixtures" / "transcripts"
SUMMARY = "A customer called about a broken kettle; the agent arranged a replacement and a refund."
FILLER = (
    "The weather has been awful this week, hasn't it?",
    "Let me just pull up your account details on the screen.",
    "Could you spell your surname for me, please?",
    "Our systems are a little slow today, bear with me.",
    "I can see your address is still on Elm Street.",
    "The parcel was sent with the usual courier last month.",
)
REFUND = "Yes, I have promised you a full refund of forty pounds, it will reach your card within five days."


def refund_call(filler_turns: int = 60, refund_at: int = 37) -> list[CallTurn]:
    """A long call where one agent turn promises a refund; every other turn is unrelated small talk."""
    turns = []
    for index in range(filler_turns):
        speaker = "Agent" if index == refund_at else ("Agent", "Customer")[index % 2]
        text = REFUND if index == refund_at else FILLER[index % len(FILLER)]
        turns.append(CallTurn(index, speaker, text, start_s=index * 7.5, end_s=index * 7.5 + 6))
    return turns


def quoted_indexes(context_text: str) -> list[int]:
    return [int(number) for number in re.findall(r"^\[turn (\d+)", context_text, flags=re.MULTILINE)]


def test_the_turn_that_answers_the_question_is_chosen_over_unrelated_turns():
    # Given a call far longer than the budget, with one turn about a refund
    turns = refund_call()

    # When the analyst asks whether a refund was promised
    context = build_call_context(SUMMARY, turns, "Was a refund promised?", max_tokens=120)

    # Then the refund turn is quoted and referenced, after the summary, and the context says it is a selection
    assert context.matched and context.selection
    assert context.text.startswith(f"Summary of the call:\n{SUMMARY}\n")
    assert "[turn 37, 4:37] Agent: " + REFUND in context.text
    assert TurnReference(37, "Agent", 37 * 7.5) in context.turns
    assert len(context.turns) < len(turns)


def test_the_turns_beside_a_match_follow_it_when_there_is_room():
    # Given the refund call and a budget for a few turns
    turns = refund_call()

    # When the question matches only the refund turn
    context = build_call_context(SUMMARY, turns, "Was a refund promised?", max_tokens=200)

    # Then the turns just before and after it are quoted too (an answer often follows its question)
    assert {36, 37, 38} <= {reference.index for reference in context.turns}


def test_the_budget_is_respected_exactly():
    turns = refund_call()
    # Given the tokens of the context when every turn fits
    full = build_call_context(SUMMARY, turns, "Was a refund promised?", max_tokens=100_000)
    assert not full.selection and len(full.turns) == len(turns)
    assert full.tokens == estimate_tokens(full.text)

    # When the budget is exactly that, then every turn is quoted; one token less, and only a selection fits
    assert not build_call_context(SUMMARY, turns, "refund", max_tokens=full.tokens).selection
    assert build_call_context(SUMMARY, turns, "refund", max_tokens=full.tokens - 1).selection

    # And whatever the budget, the context's estimate never exceeds it
    for budget in range(120, full.tokens, 37):
        context = build_call_context(SUMMARY, turns, "Was a refund promised?", max_tokens=budget)
        assert estimate_tokens(context.text) == context.tokens <= budget


def test_selected_turns_are_shown_in_call_order_with_speaker_and_time():
    # Given a call whose most relevant turns come late and early
    turns = refund_call()
    turns[5] = CallTurn(5, "Customer", "I want a refund for the kettle.", start_s=3725.0)

    # When a selection is made
    context = build_call_context(SUMMARY, turns, "refund kettle", max_tokens=220)

    # Then the quoted lines and the references are in call order, and they agree
    indexes = quoted_indexes(context.text)
    assert indexes == sorted(indexes) and 5 in indexes and 37 in indexes
    assert [reference.index for reference in context.turns] == indexes
    assert TurnReference(5, "Customer", 3725.0) in context.turns
    assert "[turn 5, 1:02:05] Customer: I want a refund for the kettle." in context.text


def test_a_call_that_fits_is_quoted_whole_with_the_times_the_parser_kept():
    # Given the WebVTT fixture parsed by the real parser (its cues have times)
    parsed = parse_transcript((FIXTURES / "webvtt_voices.vtt").read_bytes())
    turns = call_turns(parsed.turns)

    # When the budget holds all of it
    context = build_call_context("Router drops; firmware updated.", turns, "What model?", max_tokens=2_000)

    # Then every turn is quoted, numbered as stored, with its start time, and it is not a selection
    assert not context.selection
    assert [reference.index for reference in context.turns] == list(range(len(parsed.turns)))
    assert [reference.start_s for reference in context.turns] == [turn.start_s for turn in parsed.turns]
    assert f"The call's turns (all {len(turns)}), in call order:" in context.text
    assert f"[turn 3, 0:17] {parsed.turns[3].speaker}: {parsed.turns[3].text}" in context.text


def test_a_parsed_fixture_gives_the_turn_that_answers():
    # Given the plain-text fixture parsed by the real parser
    turns = call_turns(parse_transcript((FIXTURES / "plain_text.txt").read_bytes()).turns)

    # When the budget holds only a couple of turns and the question is about the router's model number
    context = build_call_context("Router fixed.", turns, "What is the router's model number?", max_tokens=110)

    # Then the turn asking for the model number is the one quoted
    assert context.selection
    assert 2 in [reference.index for reference in context.turns]


def test_a_call_with_no_turns_is_a_domain_error():
    # Given calls with no turns, or only empty ones, when a context is asked for, then NoTurnsError says why
    for turns in ([], [CallTurn(0, "Agent", "   "), CallTurn(1, "Customer", "")]):
        with pytest.raises(NoTurnsError, match="no transcript turns"):
            build_call_context(SUMMARY, turns, "Was a refund promised?", max_tokens=500)


def test_a_question_with_no_word_in_the_call_falls_back_to_its_opening_and_closing():
    turns = refund_call()

    # When nothing in the question matches any turn (only stop words and an unknown word)
    context = build_call_context(SUMMARY, turns, "What about the xylophone?", max_tokens=200)

    # Then the first and last turns are quoted, and the context says nothing matched
    assert not context.matched and context.selection
    indexes = [reference.index for reference in context.turns]
    assert indexes[0] == 0 and indexes[-1] == len(turns) - 1
    assert "none matched the question" in context.text


def test_recent_messages_help_a_follow_up_question():
    turns = refund_call()

    # Given a follow-up that names nothing in the call by itself
    question = "And how many days will it take?"
    alone = build_call_context(SUMMARY, turns, "And how long will it take?", max_tokens=120)

    # When the earlier question is passed as a recent message
    context = build_call_context(SUMMARY, turns, question, max_tokens=120, recent_messages=["Was a refund promised?"])

    # Then the refund turn is found (it is not without the history)
    assert 37 not in [reference.index for reference in alone.turns]
    assert 37 in [reference.index for reference in context.turns]


def test_a_turn_longer_than_the_budget_is_split_and_its_relevant_part_quoted():
    # Given a monologue far longer than the budget, with the refund in one sentence deep inside
    sentences = [f"Item {number} on the list is checked and nothing is wrong with it." for number in range(400)]
    sentences[250] = "The agent promised a refund of ninety pounds."
    turns = [CallTurn(0, "Agent", "Hello."), CallTurn(1, "Agent", " ".join(sentences), start_s=61.0)]

    # When asked about the refund with a small budget
    context = build_call_context(SUMMARY, turns, "Was a refund promised?", max_tokens=150)

    # Then the sentence is quoted as an excerpt of turn 1, within the budget
    assert "[turn 1, 1:01, excerpt] Agent: " in context.text
    assert "The agent promised a refund of ninety pounds." in context.text
    assert context.tokens <= 150 and context.selection
    assert TurnReference(1, "Agent", 61.0) in context.turns


def test_unicode_text_matches_without_accents_and_counts_its_bytes():
    # Given a call in French and German with accented words and a speaker name outside ASCII
    turns = [
        CallTurn(index, "Zoë 🎧", f"Bonjour, ceci est la phrase numéro {index} de l'appel.") for index in range(40)
    ]
    turns[17] = CallTurn(17, "Jürgen", "Die Rückerstattung für das Café wurde zugesagt.")

    # When the question spells the words without accents
    context = build_call_context("Résumé : remboursement.", turns, "Cafe Ruckerstattung?", max_tokens=160)

    # Then the accented turn is found, and the multibyte characters are counted within the budget
    assert context.matched and TurnReference(17, "Jürgen", None) in context.turns
    assert context.tokens == estimate_tokens(context.text) <= 160


def test_a_summary_that_leaves_no_room_for_turns_is_refused():
    # Given a budget smaller than the summary, when a context is asked for, then it is a ValueError, not a cut summary
    with pytest.raises(ValueError, match="no room for turns"):
        build_call_context(SUMMARY * 10, refund_call(), "refund", max_tokens=100)
