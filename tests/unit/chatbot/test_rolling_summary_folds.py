"""Folding messages that left the window into the rolling summary: within the time left to the request, and never
past a question whose answer is still coming."""

import re

import pytest

ALICE = "alice-sub"
# Messages of about 120 tokens, so a long backlog needs several summarizer inputs of 1,024 tokens.
FILLER = " ".join(["detail"] * 110)
NO_TIME_TO_FOLD_MS = 5_000  # less than one fold call (8 s) plus the 1 s margin
_FOLDED_LINE = re.compile(r"^(User: q|AI: answer to: q)(\d+) ", re.MULTILINE)


def small_context_service(make_service):
    return make_service(chat_context_tokens=1024, chat_max_new_tokens=256, chat_window_messages=6)


def folded_seqs(summarize_calls: list[list[str]]) -> list[int]:
    """The seqs of the messages the summarizer read: "User: qN ..." is seq 2N-1, "AI: answer to: qN ..." is 2N."""
    texts = "\n".join(text for call in summarize_calls for text in call)
    return [2 * int(turn) - (1 if speaker == "User: q" else 0) for speaker, turn in _FOLDED_LINE.findall(texts)]


@pytest.mark.parametrize(("remaining_ms", "calls_allowed"), [(12_000, 1), (20_000, 2)])
def test_a_long_backlog_is_folded_a_bounded_step_per_turn(make_service, inference, store, remaining_ms, calls_allowed):
    # Given 40 turns answered with no time left to fold: a backlog of 80 unsummarized messages
    service = small_context_service(make_service)
    conversation_id = service.create_conversation(ALICE, None, None)["id"]
    for turn in range(1, 41):
        service.send_message(ALICE, conversation_id, f"q{turn} {FILLER}", remaining_ms=lambda: NO_TIME_TO_FOLD_MS)
    assert inference.summarize_calls == []
    folded_through = 0
    for turn in (41, 42):
        # When a turn ends with time for `calls_allowed` summarizer calls of 8 s (plus a 1 s margin)
        calls_before = len(inference.summarize_calls)
        service.send_message(ALICE, conversation_id, f"q{turn} {FILLER}", remaining_ms=lambda: remaining_ms)
        calls = inference.summarize_calls[calls_before:]
        # Then the summarizer was called no more often than that time allows
        assert len(calls) == calls_allowed
        # And it read the oldest unsummarized messages, in order, from just after what was already folded
        summarized_through = store.get_conversation(conversation_id)["summarized_through"]
        assert folded_seqs(calls) == list(range(folded_through + 1, summarized_through + 1))
        # And the rest of the backlog is left for later turns
        assert folded_through < summarized_through < 80
        folded_through = summarized_through
    # And the second turn's fold built on the first's summary
    assert calls[0][0].startswith("Earlier: summary of")


def test_a_pending_question_stops_the_fold_until_its_answer_is_stored(make_service, inference, store, monkeypatch):
    # Given a conversation with some answered turns
    service = small_context_service(make_service)
    conversation_id = service.create_conversation(ALICE, None, None)["id"]
    for turn in range(1, 4):
        service.send_message(ALICE, conversation_id, f"q{turn} {FILLER}")
    slow = f"q4 {FILLER}"
    answer_chat = inference.chat
    while_slow_was_pending = {}

    def chat_overlapped_by_other_turns(messages, **parameters):
        # When the model is still answering the slow question, other turns are answered and folded meanwhile
        if messages[-1]["content"] == slow and not while_slow_was_pending:
            while_slow_was_pending["pending"] = service.list_messages(ALICE, conversation_id, 1, None, True)["items"]
            for turn in range(5, 17):
                service.send_message(ALICE, conversation_id, f"q{turn} {FILLER}")
            while_slow_was_pending["summarized_through"] = store.get_conversation(conversation_id)["summarized_through"]
        return answer_chat(messages, **parameters)

    monkeypatch.setattr(inference, "chat", chat_overlapped_by_other_turns)
    slow_exchange = service.send_message(ALICE, conversation_id, slow)
    slow_seq = slow_exchange["user_message"]["seq"]
    assert [(m["seq"], m["status"]) for m in while_slow_was_pending["pending"]] == [(slow_seq, "pending")]
    # Then meanwhile the rolling summary moved on but stopped before the pending question
    assert 0 < while_slow_was_pending["summarized_through"] < slow_seq
    # When the next turn is answered, after the slow answer was stored
    calls_before = len(inference.summarize_calls)
    service.send_message(ALICE, conversation_id, f"q17 {FILLER}")
    # Then the slow exchange was folded, question and answer, and nothing was skipped
    summarized_through = store.get_conversation(conversation_id)["summarized_through"]
    assert summarized_through > slow_exchange["assistant_message"]["seq"]
    assert set(folded_seqs(inference.summarize_calls)) == set(range(1, summarized_through + 1))
    assert {slow_seq, slow_seq + 1} <= set(folded_seqs(inference.summarize_calls[calls_before:]))
