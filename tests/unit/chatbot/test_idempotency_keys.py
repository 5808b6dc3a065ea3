"""An Idempotency-Key names the one message it was first sent with: resends answer or replay it, never store it
twice, whatever else arrived in the conversation meanwhile; clearing or deleting forgets the keys."""

import pytest
from chatbot.conversations.retention import MessagePurger
from chatbot.conversations.store import IDEMPOTENCY_KEY_PREFIX, conversation_pk
from chatbot.dynamodb import serialize
from chatbot.errors import ConflictError, IdempotencyKeyReusedError
from chatbot.inference import ModelInvocationError, ModelUnavailableError

ALICE = "alice-sub"


def stored(service, conversation_id: str) -> list[tuple[int, str, str]]:
    items = service.list_messages(ALICE, conversation_id, 100, None, newest_first=False)["items"]
    return [(message["seq"], message["role"], message["content"]) for message in items]


def key_items(store, conversation_id: str) -> list[dict]:
    response = store._client.query(
        TableName=store.table_name,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues=serialize(
            {":pk": conversation_pk(conversation_id), ":prefix": IDEMPOTENCY_KEY_PREFIX}
        ),
        ConsistentRead=True,
    )
    return response["Items"]


def test_a_resend_after_a_failure_answers_the_original_even_when_another_message_came_between(service, inference):
    conversation_id = service.create_conversation(ALICE, None, None)["id"]
    # Given a keyed send the model failed on
    inference.failures.append(ModelUnavailableError("busy", 3))
    with pytest.raises(ModelUnavailableError):
        service.send_message(ALICE, conversation_id, "Where is my parcel?", idempotency_key="key-a")
    # And another message answered in the same conversation meanwhile (another tab)
    service.send_message(ALICE, conversation_id, "And my invoice?", idempotency_key="key-b")

    # When the first send is resent with its key
    exchange = service.send_message(ALICE, conversation_id, "Where is my parcel?", idempotency_key="key-a")

    # Then the original message is answered, and nothing is stored twice
    assert exchange["user_message"]["seq"] == 1
    assert exchange["user_message"]["status"] == "answered"
    assert exchange["assistant_message"]["reply_to"] == 1
    assert stored(service, conversation_id) == [
        (1, "user", "Where is my parcel?"),
        (2, "assistant", "answer to: Where is my parcel?"),
        (3, "user", "And my invoice?"),
        (4, "assistant", "answer to: And my invoice?"),
    ]
    assert service.get_conversation(ALICE, conversation_id)["message_count"] == 4


def test_a_resend_after_success_returns_the_same_exchange_without_asking_the_model(service, inference):
    conversation_id = service.create_conversation(ALICE, None, None)["id"]
    # Given a keyed send that was answered, then another message
    first = service.send_message(ALICE, conversation_id, "Hello?", idempotency_key="key-1")
    service.send_message(ALICE, conversation_id, "Anyone there?")
    calls_before = len(inference.chat_calls)

    # When it is resent with the same key
    again = service.send_message(ALICE, conversation_id, "Hello?", idempotency_key="key-1")

    # Then the first exchange comes back as it was, the model is not asked and nothing new is stored
    assert again == first
    assert len(inference.chat_calls) == calls_before
    assert [seq for seq, _, _ in stored(service, conversation_id)] == [1, 2, 3, 4]


@pytest.mark.parametrize("first_attempt_fails", [False, True], ids=["after-success", "after-failure"])
def test_the_same_key_with_another_text_is_refused_and_stores_nothing(service, inference, first_attempt_fails):
    conversation_id = service.create_conversation(ALICE, None, None)["id"]
    if first_attempt_fails:
        inference.failures.append(ModelInvocationError("boom"))
        with pytest.raises(ModelInvocationError):
            service.send_message(ALICE, conversation_id, "First text", idempotency_key="key-1")
    else:
        service.send_message(ALICE, conversation_id, "First text", idempotency_key="key-1")
    before = stored(service, conversation_id)

    with pytest.raises(IdempotencyKeyReusedError, match="Idempotency-Key"):
        service.send_message(ALICE, conversation_id, "Other text", idempotency_key="key-1")

    assert stored(service, conversation_id) == before


def test_a_send_still_in_flight_under_the_key_gets_409_with_retry_after(service, store):
    conversation_id = service.create_conversation(ALICE, None, None)["id"]
    # Given a keyed message stored and not answered yet (its request is still waiting for the model)
    service._start_turn(store.get_conversation(conversation_id), "Slow one", "key-1")

    # When the same request arrives again
    with pytest.raises(ConflictError) as raised:
        service.send_message(ALICE, conversation_id, "Slow one", idempotency_key="key-1")

    # Then it is told to retry later and nothing is stored twice
    assert raised.value.retry_after_s == 2
    assert [seq for seq, _, _ in stored(service, conversation_id)] == [1]


def test_two_sends_racing_with_one_key_store_one_message(service, store, monkeypatch):
    conversation_id = service.create_conversation(ALICE, None, None)["id"]
    # Given a rival request with the same key that stores its message right after this one looked the key up
    looked_up = store.get_idempotency_key

    def rival_wins(conversation_id_: str, key: str):
        found = looked_up(conversation_id_, key)
        service._start_turn(store.get_conversation(conversation_id_), "Same text", key)
        return found

    monkeypatch.setattr(store, "get_idempotency_key", rival_wins)

    # When this request tries to store its message
    with pytest.raises(ConflictError, match="still being processed"):
        service.send_message(ALICE, conversation_id, "Same text", idempotency_key="key-1")

    # Then only the rival's message is stored
    assert stored(service, conversation_id) == [(1, "user", "Same text")]
    assert service.get_conversation(ALICE, conversation_id)["message_count"] == 1


def test_clear_forgets_the_keys_and_an_old_key_is_a_new_message(service, store):
    conversation_id = service.create_conversation(ALICE, None, None)["id"]
    service.send_message(ALICE, conversation_id, "Before the clear", idempotency_key="key-1")
    assert len(key_items(store, conversation_id)) == 1

    # When the conversation is cleared
    service.clear_conversation(ALICE, conversation_id)

    # Then its key items are gone with its messages
    assert key_items(store, conversation_id) == []
    # And the old key answers a new message, not one that no longer exists
    exchange = service.send_message(ALICE, conversation_id, "Before the clear", idempotency_key="key-1")
    assert exchange["user_message"]["seq"] == 3
    assert [seq for seq, _, _ in stored(service, conversation_id)] == [3, 4]


def test_a_key_left_by_an_unfinished_clear_names_nothing(service, store, monkeypatch):
    conversation_id = service.create_conversation(ALICE, None, None)["id"]
    service.send_message(ALICE, conversation_id, "Old question", idempotency_key="key-1")
    # Given a clear that reset the conversation but stopped before deleting its items
    monkeypatch.setattr(store, "delete_cleared", lambda *_args, **_kwargs: 0)
    service.clear_conversation(ALICE, conversation_id)
    monkeypatch.undo()
    assert len(key_items(store, conversation_id)) == 1

    # When the old key is sent again
    exchange = service.send_message(ALICE, conversation_id, "Old question", idempotency_key="key-1")

    # Then it is a new turn of the cleared conversation, and the key now names that one
    assert exchange["user_message"]["seq"] == 3
    again = service.send_message(ALICE, conversation_id, "Old question", idempotency_key="key-1")
    assert again == exchange


def test_delete_and_expiry_remove_the_key_items(service, store):
    deleted_id = service.create_conversation(ALICE, None, None)["id"]
    expired_id = service.create_conversation(ALICE, None, None)["id"]
    for conversation_id in (deleted_id, expired_id):
        service.send_message(ALICE, conversation_id, "Hello", idempotency_key="key-1")

    # When one is deleted and the other's META item expires (TTL) and the clean-up runs
    service.delete_conversation(ALICE, deleted_id)
    store._client.delete_item(
        TableName=store.table_name, Key=serialize({"pk": conversation_pk(expired_id), "sk": "META"})
    )
    MessagePurger(store).purge(conversation_pk(expired_id))

    # Then no key item is left behind
    assert key_items(store, deleted_id) == []
    assert key_items(store, expired_id) == []


def test_keyed_turn_reads_do_not_grow_with_length(make_service, read_meter):
    service = make_service(chat_window_messages=6)
    reads = {}
    for length in (4, 30):
        conversation_id = service.create_conversation(ALICE, None, None)["id"]
        for turn in range(length):
            service.send_message(ALICE, conversation_id, f"turn {turn}", idempotency_key=f"key-{turn}")
        before = read_meter.total
        service.send_message(ALICE, conversation_id, "one more", idempotency_key="key-last")
        reads[length] = read_meter.total - before
    assert 0 < reads[30] <= reads[4] * 1.1


def test_a_new_key_on_the_unanswered_text_answers_it_and_then_names_it(service, inference):
    conversation_id = service.create_conversation(ALICE, None, None)["id"]
    # Given a message the model failed on, sent under one key
    inference.failures.append(ModelInvocationError("boom"))
    with pytest.raises(ModelInvocationError):
        service.send_message(ALICE, conversation_id, "Do you ship abroad?", idempotency_key="key-1")

    # When a client resends the same text under a new key (as today's text-based retry allows)
    answered = service.send_message(ALICE, conversation_id, "Do you ship abroad?", idempotency_key="key-2")
    # and then resends that request once more
    again = service.send_message(ALICE, conversation_id, "Do you ship abroad?", idempotency_key="key-2")

    # Then the original message was answered, the second resend replays it, and nothing is stored twice
    assert answered["user_message"]["seq"] == 1
    assert again == answered
    assert [seq for seq, _, _ in stored(service, conversation_id)] == [1, 2]
