from chatbot.conversations.memory import (
    FOLD_TARGET_SHARE,
    SUMMARY_HEADING,
    chat_messages,
    fold_calls,
    fold_step,
    fold_turns,
    message_tokens,
    plan_context,
)


def _turns(count: int, words: int = 10) -> list[dict]:
    messages = []
    for turn in range(1, count + 1):
        text = " ".join(["word"] * words)
        messages.append({"seq": 2 * turn - 1, "role": "user", "content": f"q{turn} {text}", "status": "answered"})
        messages.append({"seq": 2 * turn, "role": "assistant", "content": f"a{turn} {text}"})
    return messages


def test_everything_fits_nothing_is_folded():
    history = _turns(3)
    plan = plan_context(history, budget_tokens=10_000, max_messages=24)
    assert plan.window == history
    assert plan.fold == []
    assert plan.summarized_through is None


def test_newest_messages_are_kept_and_older_ones_folded_in_order():
    # Given more history than the budget holds
    history = _turns(20)
    budget = sum(message_tokens(message["content"]) for message in history[-6:])
    # When planning
    plan = plan_context(history, budget_tokens=budget, max_messages=24)
    # Then the window is the newest suffix, opens with a user message, and fits the folding target
    assert plan.window == history[-len(plan.window) :]
    assert plan.window[0]["role"] == "user"
    assert sum(message_tokens(m["content"]) for m in plan.window) <= budget * FOLD_TARGET_SHARE
    # And everything before it is folded, contiguous and oldest first
    assert plan.fold == history[: len(history) - len(plan.window)]
    assert plan.summarized_through == plan.window[0]["seq"] - 1


def test_message_count_limit_bounds_the_window():
    history = _turns(30, words=1)
    plan = plan_context(history, budget_tokens=100_000, max_messages=10)
    assert len(plan.window) <= 10
    assert plan.fold and plan.fold[-1]["seq"] < plan.window[0]["seq"]


def test_unanswered_questions_of_other_turns_are_not_sent():
    history = _turns(2)
    history.insert(2, {"seq": 99, "role": "user", "content": "lost", "status": "unanswered"})
    history.sort(key=lambda message: message["seq"])
    plan = plan_context(history, budget_tokens=10_000, max_messages=24)
    assert all(message["content"] != "lost" for message in plan.window)
    roles = [message["role"] for message in plan.window]
    assert roles == ["user", "assistant"] * 2


def test_chat_payload_has_system_prompt_summary_window_and_question():
    window = _turns(1)
    messages = chat_messages("Be brief.", "They talked about invoices.", window, "And now?")
    assert messages[0]["role"] == "system"
    assert messages[0]["content"].startswith("Be brief.")
    assert f"{SUMMARY_HEADING} They talked about invoices." in messages[0]["content"]
    assert [m["content"] for m in messages[1:-1]] == [m["content"] for m in window]
    assert messages[-1] == {"role": "user", "content": "And now?"}


def test_no_system_message_without_prompt_or_summary():
    messages = chat_messages(None, None, [], "Hello")
    assert messages == [{"role": "user", "content": "Hello"}]


def test_a_fold_step_is_the_oldest_messages_one_summarizer_input_holds_with_the_summary():
    # Given a backlog far longer than one summarizer input
    backlog = _turns(40, words=30)
    # When the next fold step is chosen, with and without a rolling summary
    step = fold_step(backlog, None, max_input_tokens=512)
    after_summary = fold_step(backlog, "word " * 200, max_input_tokens=512)
    # Then each is an oldest prefix that one summarizer call folds, and one message more would need a second
    for summary, chosen in ((None, step), ("word " * 200, after_summary)):
        assert chosen == backlog[: len(chosen)]
        assert fold_calls(fold_turns(chosen, summary), max_input_tokens=512) == 1
        assert fold_calls(fold_turns(backlog[: len(chosen) + 1], summary), max_input_tokens=512) > 1
    # And the summary's share of the input leaves room for fewer messages
    assert 0 < len(after_summary) < len(step)


def test_a_message_too_long_for_one_input_is_a_step_of_its_own():
    backlog = [{"seq": 1, "role": "user", "content": "word " * 2000, "status": "answered"}, *_turns(3)[1:]]
    step = fold_step(backlog, None, max_input_tokens=512)
    assert step == backlog[:1]
    assert fold_calls(fold_turns(step, None), max_input_tokens=512) > 1
