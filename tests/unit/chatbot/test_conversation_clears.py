"""A clear deletes only what existed at its reset, nothing it cleared is readable before the deletion ends,
and writes that meet concurrent transactions (TransactionConflict) are retried or, when best effort, skipped."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from chatbot.conversations import store as store_module
from chatbot.conversations.policy import ChatPolicy
from chatbot.conversations.retention import MessagePurger
from chatbot.conversations.service import ConversationService
from chatbot.conversations.store import (
    IDEMPOTENCY_KEY_PREFIX,
    ConversationStore,
    DeletionIncompleteError,
    conversation_pk,
    message_sk,
)
from chatbot.dynamodb import serialize
from chatbot.errors import ConflictError, NotFoundError
from chatbot.inference import ModelInvocationError

ALICE = "alice-sub"


class FaultyClient:
    """The real (moto) DynamoDB client, except that calls of an operation fail as DynamoDB fails them (moto never
    reports TransactionConflict): `fail(operation, error, times, after)` lets `after` calls through, then fails
    `times` calls with `error` (a ClientError in DynamoDB's shape)."""

    def __init__(self, inner: Any):
        self._inner = inner
        self._script: dict[str, list[ClientError | None]] = {}

    def fail(self, operation: str, error: ClientError, times: int = 1, after: int = 0) -> None:
        self._script.setdefault(operation, []).extend([None] * after + [error] * times)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name == "exceptions" or not callable(attribute):
            return attribute

        def call(**request: Any) -> Any:
            error = self._script[name].pop(0) if self._script.get(name) else None
            if error is not None:
                raise error
            return attribute(**request)

        return call


def transaction_conflict(items: int, conflicting: int) -> ClientError:
    """TransactWriteItems cancelled because item `conflicting` is in another transaction (no condition failed)."""
    reasons = [{"Code": "None"}] * items
    reasons[conflicting] = {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
    response = {
        "Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
        "CancellationReasons": reasons,
    }
    return ClientError(response, "TransactWriteItems")


def single_item_conflict(operation: str) -> ClientError:
    """A single-item write on an item that a transaction is writing."""
    message = "Transaction is ongoing for the item"
    return ClientError({"Error": {"Code": "TransactionConflictException", "Message": message}}, operation)


@pytest.fixture
def faulty(dynamodb) -> FaultyClient:
    return FaultyClient(dynamodb)


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def faulty_store(moto_table, faulty, waits) -> ConversationStore:
    return ConversationStore(moto_table, faulty, sleep=waits.append)


@pytest.fixture
def faulty_service(faulty_store, inference, clock) -> ConversationService:
    return ConversationService(faulty_store, inference, ChatPolicy(), clock=clock)


def seqs(service, conversation_id: str) -> list[int]:
    items = service.list_messages(ALICE, conversation_id, 100, None, newest_first=False)["items"]
    return [message["seq"] for message in items]


def stored_sort_keys(store: ConversationStore, conversation_id: str) -> list[str]:
    """Every item of the conversation but META, read from the table (deleted or not, whatever reads show)."""
    response = store._client.query(
        TableName=store.table_name,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues=serialize({":pk": conversation_pk(conversation_id)}),
        ConsistentRead=True,
    )
    return sorted(item["sk"]["S"] for item in response["Items"] if item["sk"]["S"] != "META")


def two_turns(service) -> str:
    conversation_id = service.create_conversation(ALICE, None, None)["id"]
    service.send_message(ALICE, conversation_id, "Old question one", idempotency_key="old-1")
    service.send_message(ALICE, conversation_id, "Old question two", idempotency_key="old-2")
    return conversation_id


# -- a clear racing a send ------------------------------------------------------------------------------------


def test_a_message_sent_between_the_reset_and_the_deletion_survives_the_clear(service, store, monkeypatch):
    conversation_id = two_turns(service)
    real_reset = store.reset_conversation

    def reset_then_a_send_arrives(*args: Any, **kwargs: Any) -> None:
        real_reset(*args, **kwargs)
        service.send_message(ALICE, conversation_id, "New question", idempotency_key="new-1")

    # Given a send that lands after the clear's reset but before its deletion
    monkeypatch.setattr(store, "reset_conversation", reset_then_a_send_arrives)

    # When the clear finishes
    service.clear_conversation(ALICE, conversation_id)

    # Then only what existed at the reset is gone: the new exchange and its key are kept
    assert seqs(service, conversation_id) == [5, 6]
    assert stored_sort_keys(store, conversation_id) == [
        f"{IDEMPOTENCY_KEY_PREFIX}new-1",
        message_sk(5),
        message_sk(6),
    ]
    assert service.get_conversation(ALICE, conversation_id)["message_count"] == 2
    # And the kept key still replays its exchange
    again = service.send_message(ALICE, conversation_id, "New question", idempotency_key="new-1")
    assert again["user_message"]["seq"] == 5


def test_a_key_reused_after_the_reset_is_not_deleted_by_the_clear(service, store, monkeypatch):
    conversation_id = two_turns(service)
    real_reset = store.reset_conversation

    def reset_then_the_old_key_is_reused(*args: Any, **kwargs: Any) -> None:
        real_reset(*args, **kwargs)
        service.send_message(ALICE, conversation_id, "Old question one", idempotency_key="old-1")

    # Given an old key sent again between the clear's reset and its deletion (it now names the new message)
    monkeypatch.setattr(store, "reset_conversation", reset_then_the_old_key_is_reused)
    service.clear_conversation(ALICE, conversation_id)

    # Then the key item survives, so a resend replays the exchange instead of storing the message twice
    assert f"{IDEMPOTENCY_KEY_PREFIX}old-1" in stored_sort_keys(store, conversation_id)
    again = service.send_message(ALICE, conversation_id, "Old question one", idempotency_key="old-1")
    assert again["user_message"]["seq"] == 5
    assert seqs(service, conversation_id) == [5, 6]


# -- a clear that stops half way ------------------------------------------------------------------------------


def throttled_batch() -> ClientError:
    message = "The level of configured provisioned throughput for the table was exceeded."
    return ClientError(
        {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": message}}, "BatchWriteItem"
    )


def test_a_clear_whose_deletion_fails_answers_and_leaves_nothing_readable(
    faulty_service, faulty, faulty_store, inference
):
    service = faulty_service
    conversation_id = two_turns(service)
    ascending_cursor = service.list_messages(ALICE, conversation_id, 1, None, newest_first=False)["next_cursor"]
    descending_cursor = service.list_messages(ALICE, conversation_id, 1, None, newest_first=True)["next_cursor"]
    faulty.fail("batch_write_item", throttled_batch())

    # When a clear resets the conversation but its deletion fails
    service.clear_conversation(ALICE, conversation_id)

    # Then the old messages are still in the table, yet no read shows them
    assert message_sk(1) in stored_sort_keys(faulty_store, conversation_id)
    assert seqs(service, conversation_id) == []
    assert service.list_messages(ALICE, conversation_id, 10, ascending_cursor, newest_first=False)["items"] == []
    assert service.list_messages(ALICE, conversation_id, 10, descending_cursor, newest_first=True)["items"] == []
    with pytest.raises(ConflictError, match="no messages to summarize"):
        service.summarize_conversation(ALICE, conversation_id)
    with pytest.raises(ConflictError, match="no unanswered message"):
        service.retry_last_message(ALICE, conversation_id)
    # And an old key names nothing: the resend is a new turn, whose prompt holds no cleared message
    exchange = service.send_message(ALICE, conversation_id, "Old question two", idempotency_key="old-2")
    assert exchange["user_message"]["seq"] == 5
    prompt = " ".join(message["content"] for message in inference.chat_calls[-1])
    assert "Old question one" not in prompt
    assert seqs(service, conversation_id) == [5, 6]


def test_a_delete_whose_message_deletion_fails_still_deletes_the_conversation(faulty_service, faulty, faulty_store):
    # Given a conversation with two exchanges, and a table that throttles the message deletion
    service = faulty_service
    conversation_id = two_turns(service)
    faulty.fail("batch_write_item", throttled_batch())

    # When it is deleted
    service.delete_conversation(ALICE, conversation_id)

    # Then the delete succeeds (the META item's removal is the delete): the conversation is gone for its owner,
    # and the messages left behind are the stream clean-up's to delete
    with pytest.raises(NotFoundError):
        service.get_conversation(ALICE, conversation_id)
    assert message_sk(1) in stored_sort_keys(faulty_store, conversation_id)
    assert MessagePurger(faulty_store).purge(conversation_pk(conversation_id)) == 4
    assert stored_sort_keys(faulty_store, conversation_id) == []


def test_the_stream_clean_up_finishes_a_clear_that_stopped_half_way(faulty_service, faulty, faulty_store):
    service = faulty_service
    conversation_id = two_turns(service)
    before = faulty_store.get_conversation(conversation_id)
    faulty.fail("batch_write_item", throttled_batch())
    service.clear_conversation(ALICE, conversation_id)
    service.send_message(ALICE, conversation_id, "After the clear", idempotency_key="new-1")
    after = faulty_store.get_conversation(conversation_id)

    # When the stream delivers the clear's META change to the clean-up
    deleted = MessagePurger(faulty_store).purge_cleared(conversation_pk(conversation_id), before, after)

    # Then what the clear covered is deleted, and the message sent after it is kept
    assert deleted == 4
    assert stored_sort_keys(faulty_store, conversation_id) == [
        f"{IDEMPOTENCY_KEY_PREFIX}new-1",
        message_sk(5),
        message_sk(6),
    ]


def test_the_stream_clean_up_ignores_changes_that_clear_nothing(service, store):
    conversation_id = two_turns(service)
    meta = store.get_conversation(conversation_id)
    deleted = MessagePurger(store).purge_cleared(conversation_pk(conversation_id), meta, {**meta, "title": "renamed"})
    assert deleted == 0
    assert len(stored_sort_keys(store, conversation_id)) == 6


# -- unprocessed batch deletions ------------------------------------------------------------------------------


class UnprocessedBatches:
    """A BatchWriteItem that hands every request back unprocessed the first `times` calls, then processes it."""

    def __init__(self, inner: Any, times: int):
        self._inner = inner
        self.left = times
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        if self.left:
            self.left -= 1
            return {"UnprocessedItems": RequestItems}
        return self._inner.batch_write_item(RequestItems=RequestItems)


def test_unprocessed_deletions_are_retried_after_capped_jittered_backoff(service, store, moto_table, waits):
    conversation_id = two_turns(service)
    client = UnprocessedBatches(store._client, times=store_module.BATCH_DELETE_ATTEMPTS - 1)
    backing_off = ConversationStore(moto_table, client, sleep=waits.append)

    # When every message deletion comes back unprocessed until the last allowed attempt
    deleted = backing_off.delete_messages(conversation_id)

    # Then each retry waited first, within the growing (and capped) bound of its attempt, and all were deleted
    assert deleted == 4
    assert client.calls == store_module.BATCH_DELETE_ATTEMPTS + 1  # messages (all tries) + key items (one)
    assert len(waits) == store_module.BATCH_DELETE_ATTEMPTS - 1
    for attempt, wait in enumerate(waits):
        bound = min(store_module.BATCH_DELETE_BACKOFF_CAP_S, store_module.BATCH_DELETE_BACKOFF_BASE_S * 2**attempt)
        assert 0 <= wait <= bound
    assert stored_sort_keys(store, conversation_id) == []


def test_deletions_left_unprocessed_after_every_attempt_are_an_error(service, store, moto_table, waits):
    conversation_id = two_turns(service)
    client = UnprocessedBatches(store._client, times=store_module.BATCH_DELETE_ATTEMPTS)
    with pytest.raises(DeletionIncompleteError):
        ConversationStore(moto_table, client, sleep=waits.append).delete_messages(conversation_id)
    assert client.calls == store_module.BATCH_DELETE_ATTEMPTS


# -- TransactionConflict --------------------------------------------------------------------------------------


def test_an_answer_whose_transaction_conflicts_is_retried_and_stored(faulty_service, faulty, waits):
    conversation_id = faulty_service.create_conversation(ALICE, None, None)["id"]
    # Given the answer's transaction (after the question's) meeting a concurrent transaction on the question twice
    faulty.fail("transact_write_items", transaction_conflict(3, 1), times=2, after=1)

    # When a message is sent
    exchange = faulty_service.send_message(ALICE, conversation_id, "Is it raining?")

    # Then the answer is stored (not reported as "cleared"), after two short waits
    assert exchange["assistant_message"]["content"] == "answer to: Is it raining?"
    assert seqs(faulty_service, conversation_id) == [1, 2]
    assert len(waits) == 2


def test_an_answer_that_keeps_conflicting_is_a_409_to_retry_and_the_question_waits_for_it(
    faulty_service, faulty, inference
):
    conversation_id = faulty_service.create_conversation(ALICE, None, None)["id"]
    faulty.fail("transact_write_items", transaction_conflict(3, 2), times=store_module.CONFLICT_ATTEMPTS, after=1)

    # When every try to store the answer conflicts
    with pytest.raises(ConflictError, match="too busy") as raised:
        faulty_service.send_message(ALICE, conversation_id, "Is it raining?")

    # Then the caller is told to retry, and the question is kept, unanswered, for messages/retry
    assert raised.value.retry_after_s == 1
    [question] = faulty_service.list_messages(ALICE, conversation_id, 10, None, newest_first=False)["items"]
    assert question["status"] == "unanswered"


def test_a_turn_whose_transaction_conflicts_once_is_stored_by_the_store_itself(faulty_store, faulty, service, waits):
    conversation_id = service.create_conversation(ALICE, None, None)["id"]
    conversation = faulty_store.get_conversation(conversation_id)
    faulty.fail("transact_write_items", transaction_conflict(2, 0))
    question = {"seq": 1, "role": "user", "content": "Hi", "status": "pending", "created_at": "2026-11-25T12:00:00Z"}

    faulty_store.start_turn(conversation, question, "2026-11-25T12:00:00Z", 1795608000)

    assert faulty_store.get_message(conversation_id, 1)["content"] == "Hi"
    assert len(waits) == 1


def test_a_clear_whose_reset_conflicts_once_still_clears(faulty_service, faulty, waits):
    conversation_id = two_turns(faulty_service)
    faulty.fail("update_item", single_item_conflict("UpdateItem"))

    faulty_service.clear_conversation(ALICE, conversation_id)

    assert seqs(faulty_service, conversation_id) == []
    assert len(waits) == 1


def test_a_status_update_that_conflicts_after_a_model_failure_is_skipped(faulty_service, faulty, inference):
    conversation_id = faulty_service.create_conversation(ALICE, None, None)["id"]
    # Given the model failing, and the best-effort "unanswered" mark meeting a concurrent transaction
    inference.failures.append(ModelInvocationError("model failed"))
    faulty.fail("update_item", single_item_conflict("UpdateItem"))

    # Then the caller sees the model's failure (a 502 with the message saved), not a storage error
    with pytest.raises(ModelInvocationError):
        faulty_service.send_message(ALICE, conversation_id, "Hello?")
    assert seqs(faulty_service, conversation_id) == [1]


def test_a_summary_cache_write_that_conflicts_still_returns_the_summary(faulty_service, faulty):
    conversation_id = two_turns(faulty_service)
    faulty.fail("update_item", single_item_conflict("UpdateItem"))

    summary = faulty_service.summarize_conversation(ALICE, conversation_id)

    assert summary["cached"] is False
    assert summary["message_count"] == 4


def test_a_rolling_summary_write_that_conflicts_is_skipped(faulty_store, faulty):
    conversation_id = "c-1"
    faulty.fail("update_item", single_item_conflict("UpdateItem"))
    assert faulty_store.save_rolling_summary(conversation_id, "summary", through_seq=4, expected_through=0) is False


def test_a_clear_near_the_request_deadline_leaves_the_deletion_to_the_stream_clean_up(service, store):
    conversation_id = two_turns(service)

    # When a clear runs with less time left than the inline deletion may use
    service.clear_conversation(ALICE, conversation_id, remaining_ms=lambda: 1000)

    # Then it clears (nothing readable) without deleting anything itself
    assert seqs(service, conversation_id) == []
    assert len(stored_sort_keys(store, conversation_id)) == 6
