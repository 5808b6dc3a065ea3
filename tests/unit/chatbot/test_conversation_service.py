import pytest
from chatbot.conversations.memory import SUMMARY_HEADING
from chatbot.conversations.service import ConversationService
from chatbot.conversations.store import ConditionFailedError
from chatbot.errors import ConflictError, NotFoundError, TooLargeError
from chatbot.inference import ModelInvocationError, ModelUnavailableError

ALICE, BOB = "alice-sub", "bob-sub"


def test_a_turn_stores_question_and_answer_in_order(service, inference):
    # Given a new conversation
    conversation = service.create_conversation(ALICE, "Billing", "Be brief.")
    # When Alice sends a message
    exchange = service.send_message(ALICE, conversation["id"], "Why two charges?")
    # Then the answer comes back, both are stored in order and the counts move
    assert exchange["assistant_message"]["content"] == "answer to: Why two charges?"
    assert (exchange["user_message"]["seq"], exchange["assistant_message"]["seq"]) == (1, 2)
    assert exchange["assistant_message"]["reply_to"] == 1
    stored = service.list_messages(ALICE, conversation["id"], 50, None, newest_first=False)["items"]
    assert [(m["role"], m["content"]) for m in stored] == [
        ("user", "Why two charges?"),
        ("assistant", "answer to: Why two charges?"),
    ]
    assert stored[0]["status"] == "answered"
    assert service.get_conversation(ALICE, conversation["id"])["message_count"] == 2
    # And the model saw the system prompt then the question
    assert inference.chat_calls[0][0] == {"role": "system", "content": "Be brief."}


def test_other_users_get_not_found_everywhere(service):
    conversation_id = service.create_conversation(ALICE, None, None)["id"]
    calls = [
        lambda: service.get_conversation(BOB, conversation_id),
        lambda: service.list_messages(BOB, conversation_id, 10, None, newest_first=False),
        lambda: service.send_message(BOB, conversation_id, "hi"),
        lambda: service.retry_last_message(BOB, conversation_id),
        lambda: service.clear_conversation(BOB, conversation_id),
        lambda: service.delete_conversation(BOB, conversation_id),
        lambda: service.update_conversation(BOB, conversation_id, {"title": "mine now"}),
        lambda: service.summarize_conversation(BOB, conversation_id),
        lambda: service.get_conversation(ALICE, "no-such-id"),
    ]
    for call in calls:
        with pytest.raises(NotFoundError):
            call()
    assert service.list_conversations(BOB, 10, None)["items"] == []
    assert service.get_conversation(ALICE, conversation_id)["message_count"] == 0


def test_model_failure_keeps_the_message_and_a_resend_answers_it(service, inference):
    conversation_id = service.create_conversation(ALICE, None, None)["id"]
    # Given the model fails on the first try
    inference.failures.append(ModelInvocationError("boom"))
    with pytest.raises(ModelInvocationError):
        service.send_message(ALICE, conversation_id, "Hello?")
    # Then the message is stored, marked unanswered
    stored = service.list_messages(ALICE, conversation_id, 10, None, newest_first=False)["items"]
    assert [(m["seq"], m["status"]) for m in stored] == [(1, "unanswered")]
    # When the same text is sent again
    exchange = service.send_message(ALICE, conversation_id, "Hello?")
    # Then that message is answered, not duplicated
    assert exchange["user_message"]["seq"] == 1
    stored = service.list_messages(ALICE, conversation_id, 10, None, newest_first=False)["items"]
    assert [(m["seq"], m["role"]) for m in stored] == [(1, "user"), (2, "assistant")]
    assert service.get_conversation(ALICE, conversation_id)["message_count"] == 2


def test_dedicated_retry_answers_the_unanswered_message(service, inference):
    conversation_id = service.create_conversation(ALICE, None, None)["id"]
    with pytest.raises(ConflictError):
        service.retry_last_message(ALICE, conversation_id)
    inference.failures.append(ModelUnavailableError("busy", 5))
    with pytest.raises(ModelUnavailableError):
        service.send_message(ALICE, conversation_id, "Are you there?")
    exchange = service.retry_last_message(ALICE, conversation_id)
    assert exchange["user_message"]["seq"] == 1
    assert exchange["assistant_message"]["content"] == "answer to: Are you there?"
    with pytest.raises(ConflictError):
        service.retry_last_message(ALICE, conversation_id)


def test_a_different_text_after_a_failure_is_a_new_turn(service, inference):
    conversation_id = service.create_conversation(ALICE, None, None)["id"]
    inference.failures.append(ModelInvocationError("boom"))
    with pytest.raises(ModelInvocationError):
        service.send_message(ALICE, conversation_id, "first")
    exchange = service.send_message(ALICE, conversation_id, "second")
    assert exchange["user_message"]["seq"] == 3
    # The unanswered question is not sent to the model (roles keep alternating)
    assert [m["content"] for m in inference.chat_calls[-1]] == ["second"]


def test_a_lost_writer_takes_the_next_turn(service, store):
    # Given two senders that read the conversation at the same time
    conversation_id = service.create_conversation(ALICE, None, None)["id"]
    stale = store.get_conversation(conversation_id)
    service.send_message(ALICE, conversation_id, "first")
    # When the second writes with the stale turn counter
    _conversation, question = service._start_turn(stale, "second")
    # Then its message goes to the next free turn; nothing is overwritten
    assert question["seq"] == 3
    contents = [m["content"] for m in service.list_messages(ALICE, conversation_id, 10, None, False)["items"]]
    assert contents == ["first", "answer to: first", "second"]


def test_message_size_limits(service, make_service):
    conversation_id = service.create_conversation(ALICE, None, None)["id"]
    with pytest.raises(TooLargeError, match="limit"):
        service.send_message(ALICE, conversation_id, "x" * 8001)
    small_context = make_service(chat_context_tokens=1024, chat_max_new_tokens=256, max_message_chars=100_000)
    with pytest.raises(TooLargeError, match="context"):
        small_context.send_message(ALICE, conversation_id, "word " * 2000)
    assert service.list_messages(ALICE, conversation_id, 10, None, False)["items"] == []


def test_memory_folds_old_messages_into_the_rolling_summary(make_service, inference, store):
    # Given a small context so messages soon fall out of the window
    service = make_service(chat_context_tokens=1024, chat_max_new_tokens=256, chat_window_messages=6)
    conversation_id = service.create_conversation(ALICE, None, "Stay on topic.")["id"]
    # When many turns are sent
    for turn in range(12):
        service.send_message(ALICE, conversation_id, f"message number {turn} " + "detail " * 20)
    # Then the summarizer was used and the summary covers the oldest messages
    conversation = store.get_conversation(conversation_id)
    assert inference.summarize_calls
    assert conversation["rolling_summary"].startswith("summary of")
    assert conversation["summarized_through"] >= 2
    # And the latest prompt has the system prompt + summary, a bounded window, and the question last
    prompt = inference.chat_calls[-1]
    assert prompt[0]["role"] == "system"
    assert "Stay on topic." in prompt[0]["content"]
    assert SUMMARY_HEADING in prompt[0]["content"]
    assert len(prompt) - 2 <= 6
    assert prompt[-1]["content"].startswith("message number 11")
    # And nothing was deleted: the history still has every message
    assert len(service.list_messages(ALICE, conversation_id, 100, None, False)["items"]) == 24


def test_dynamodb_reads_per_turn_do_not_grow_with_length(make_service, read_meter):
    service = make_service(chat_window_messages=6)
    reads = {}
    for length in (4, 30):
        conversation_id = service.create_conversation(ALICE, None, None)["id"]
        for turn in range(length):
            service.send_message(ALICE, conversation_id, f"turn {turn}")
        before = read_meter.total
        service.send_message(ALICE, conversation_id, "one more")
        reads[length] = read_meter.total - before
    assert 0 < reads[30] <= reads[4] * 1.1


def test_summary_is_cached_until_the_conversation_changes(service, inference):
    conversation_id = service.create_conversation(ALICE, None, None)["id"]
    with pytest.raises(ConflictError, match="no messages"):
        service.summarize_conversation(ALICE, conversation_id)
    service.send_message(ALICE, conversation_id, "Hello")
    first = service.summarize_conversation(ALICE, conversation_id)
    calls = len(inference.summarize_calls)
    # The summarizer reads "User:" / "AI:" lines
    assert inference.summarize_calls[-1][0].startswith("User: Hello")
    assert "\nAI: answer to: Hello" in inference.summarize_calls[-1][0]
    again = service.summarize_conversation(ALICE, conversation_id)
    assert (first["cached"], again["cached"]) == (False, True)
    assert again["summary"] == first["summary"]
    assert len(inference.summarize_calls) == calls
    # Other speaker names are a different summary
    named = service.summarize_conversation(ALICE, conversation_id, "Customer", "Agent")
    assert named["cached"] is False
    assert inference.summarize_calls[-1][0].startswith("Customer: Hello")
    # A new message invalidates the cache
    service.send_message(ALICE, conversation_id, "More")
    assert service.summarize_conversation(ALICE, conversation_id, "Customer", "Agent")["cached"] is False


def test_long_conversations_are_summarized_map_reduce(service, inference):
    conversation_id = service.create_conversation(ALICE, None, None)["id"]
    for turn in range(30):
        service.send_message(ALICE, conversation_id, f"turn {turn} " + "lots of words here " * 15)
    summary = service.summarize_conversation(ALICE, conversation_id)
    assert summary["chunk_count"] > 1
    assert summary["rounds"] >= 2
    assert summary["message_count"] == 60


def test_clear_removes_messages_and_summaries_but_keeps_the_conversation(service, store):
    conversation_id = service.create_conversation(ALICE, "Keep me", None)["id"]
    service.send_message(ALICE, conversation_id, "Hello")
    service.summarize_conversation(ALICE, conversation_id)
    service.clear_conversation(ALICE, conversation_id)
    assert service.list_messages(ALICE, conversation_id, 10, None, False)["items"] == []
    conversation = service.get_conversation(ALICE, conversation_id)
    assert (conversation["title"], conversation["message_count"]) == ("Keep me", 0)
    assert "cached_summary" not in store.get_conversation(conversation_id)
    # New turns continue after the cleared ones
    assert service.send_message(ALICE, conversation_id, "Again")["user_message"]["seq"] == 3


def test_an_answer_arriving_after_a_clear_is_dropped(service, store):
    conversation_id = service.create_conversation(ALICE, None, None)["id"]
    conversation, question = service._start_turn(store.get_conversation(conversation_id), "Hello")
    service.clear_conversation(ALICE, conversation_id)
    with pytest.raises(ConflictError, match="cleared or deleted"):
        service._store_answer(conversation, question, "late answer")
    assert service.list_messages(ALICE, conversation_id, 10, None, False)["items"] == []


def test_delete_removes_everything(service, store):
    conversation_id = service.create_conversation(ALICE, None, None)["id"]
    service.send_message(ALICE, conversation_id, "Hello")
    service.delete_conversation(ALICE, conversation_id)
    with pytest.raises(NotFoundError):
        service.get_conversation(ALICE, conversation_id)
    assert list(store.all_messages(conversation_id)) == []


def test_activity_refreshes_the_expiry(service, clock):
    conversation = service.create_conversation(ALICE, None, None)
    clock.advance(days=10)
    service.send_message(ALICE, conversation["id"], "still here")
    refreshed = service.get_conversation(ALICE, conversation["id"])
    assert refreshed["expires_at"] > conversation["expires_at"]
    assert refreshed["expires_at"].startswith("2027-01-04")  # 10 days later + 30 idle days


def test_conversations_are_listed_newest_first_with_cursors(service, clock):
    ids = []
    for index in range(5):
        clock.advance(minutes=1)
        ids.append(service.create_conversation(ALICE, f"c{index}", None)["id"])
    service.create_conversation(BOB, "not alice's", None)
    first = service.list_conversations(ALICE, 2, None)
    second = service.list_conversations(ALICE, 2, first["next_cursor"])
    third = service.list_conversations(ALICE, 2, second["next_cursor"])
    listed = [item["id"] for page in (first, second, third) for item in page["items"]]
    assert listed == list(reversed(ids))
    assert third["next_cursor"] is None or service.list_conversations(ALICE, 2, third["next_cursor"])["items"] == []


def test_messages_page_with_cursors_both_ways(service):
    conversation_id = service.create_conversation(ALICE, None, None)["id"]
    for turn in range(3):
        service.send_message(ALICE, conversation_id, f"m{turn}")
    first = service.list_messages(ALICE, conversation_id, 4, None, newest_first=False)
    rest = service.list_messages(ALICE, conversation_id, 4, first["next_cursor"], newest_first=False)
    assert [m["seq"] for m in first["items"] + rest["items"]] == [1, 2, 3, 4, 5, 6]
    newest = service.list_messages(ALICE, conversation_id, 2, None, newest_first=True)
    assert [m["seq"] for m in newest["items"]] == [6, 5]
    # A cursor from another conversation is refused
    other = service.create_conversation(ALICE, None, None)["id"]
    from chatbot.errors import InvalidInputError

    with pytest.raises(InvalidInputError):
        service.list_messages(ALICE, other, 4, first["next_cursor"], newest_first=False)


def test_a_writer_that_keeps_losing_gets_409(service, store, monkeypatch):
    # Given every attempt to take the next turn loses to another writer
    conversation_id = service.create_conversation(ALICE, None, None)["id"]

    def always_taken(*_args, **_kwargs):
        raise ConditionFailedError(["ConditionalCheckFailed", "None"])

    monkeypatch.setattr(store, "start_turn", always_taken)
    monkeypatch.setattr(ConversationService, "_backoff", staticmethod(lambda attempt: None))
    # When sending, Then the sender is told to retry, with a Retry-After
    with pytest.raises(ConflictError) as error:
        service.send_message(ALICE, conversation_id, "hello")
    assert error.value.retry_after_s == 1


def test_rename_changes_only_what_is_sent_and_is_not_activity(service, clock):
    # Given two conversations, the renamed one the older
    older = service.create_conversation(ALICE, "Billing", "Be brief.")
    service.send_message(ALICE, older["id"], "Why two charges?")
    clock.advance(minutes=5)
    newer = service.create_conversation(ALICE, "Shipping", None)
    clock.advance(minutes=5)
    before = service.get_conversation(ALICE, older["id"])
    # When the older one is renamed
    renamed = service.update_conversation(ALICE, older["id"], {"title": "Double charge"})
    # Then the title changes; the prompt, counts, activity time and expiry stay
    assert renamed == {**before, "title": "Double charge"}
    assert service.get_conversation(ALICE, older["id"]) == renamed
    # And the list order (most recently active first) is unchanged
    assert [item["id"] for item in service.list_conversations(ALICE, 10, None)["items"]] == [newer["id"], older["id"]]
    # And the messages are untouched
    assert len(service.list_messages(ALICE, older["id"], 10, None, newest_first=False)["items"]) == 2


def test_update_sets_or_removes_the_system_prompt(service, inference):
    conversation_id = service.create_conversation(ALICE, "Billing", "Be brief.")["id"]
    # When the prompt is replaced, the next turn uses the new one
    updated = service.update_conversation(ALICE, conversation_id, {"title": "Billing", "system_prompt": "Be formal."})
    assert updated["system_prompt"] == "Be formal."
    service.send_message(ALICE, conversation_id, "Hello")
    assert inference.chat_calls[-1][0] == {"role": "system", "content": "Be formal."}
    # When it is removed (None), the next turn has no system message
    removed = service.update_conversation(ALICE, conversation_id, {"title": "Billing", "system_prompt": None})
    assert removed["system_prompt"] is None
    service.send_message(ALICE, conversation_id, "Hello again")
    assert all(message["role"] != "system" for message in inference.chat_calls[-1])


def test_update_refuses_attributes_that_are_not_editable(service):
    conversation_id = service.create_conversation(ALICE, "Billing", None)["id"]
    with pytest.raises(ValueError, match="owner"):
        service.update_conversation(ALICE, conversation_id, {"owner": BOB})
    assert service.get_conversation(ALICE, conversation_id)["title"] == "Billing"
