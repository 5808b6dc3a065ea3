"""DynamoDB access for conversations: one META item per conversation and one item per message.

    conversation  pk=CONV#<id>  sk=META               gsi1pk=USER#<sub>#CONV  gsi1sk=<last active, ISO>
    message       pk=CONV#<id>  sk=MSG#<seq, 10 digits>
    sent key      pk=CONV#<id>  sk=IDEMKEY#<Idempotency-Key>  seq=<its user message>  generation=<when stored>

Turn t owns two sequence numbers: the user's message is 2t-1 and the answer 2t, so messages sort in
conversation order even when turns overlap, and a late answer lands in its own slot. New turns are
allocated by a transaction conditioned on the turn counter the writer read (optimistic locking).
A send's Idempotency-Key item is written in that same transaction, so a key always names exactly one
stored message; a key item from before a clear (older generation) names nothing and may be reused.

A clear records on META `cleared_through` (2 * turn_count at the reset; absent means 0) and bumps `generation`:
from then on messages with seq <= cleared_through and key items with generation < META.generation are dead.
Reads skip them and deletes remove only them, so a message a concurrent send stored after the reset survives
a clear, and a clear that stops half way leaves nothing readable (the stream clean-up finishes it).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypedDict, TypeVar

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from chatbot.backoff import full_jitter_delay
from chatbot.cursor import decode_cursor, encode_cursor
from chatbot.dynamodb import deserialize, serialize

META = "META"
MESSAGE_PREFIX = "MSG#"
IDEMPOTENCY_KEY_PREFIX = "IDEMKEY#"
_SEQ_DIGITS = 10
BATCH_WRITE_SIZE = 25
# BatchWriteItem hands back UnprocessedItems under throttling: bounded retries, waits growing to the cap.
BATCH_DELETE_ATTEMPTS = 8
BATCH_DELETE_BACKOFF_BASE_S = 0.05
BATCH_DELETE_BACKOFF_CAP_S = 2.0
# A write that met another transaction on the same item (TransactionConflict) is retried a few times, briefly:
# the other transaction finishes within milliseconds.
CONFLICT_ATTEMPTS = 4
CONFLICT_BACKOFF_BASE_S = 0.02
CONFLICT_BACKOFF_CAP_S = 0.2

logger = Logger(child=True)


class ConditionFailedError(Exception):
    """A conditional write lost: the item changed (or appeared/vanished) since it was read."""

    def __init__(self, reasons: list[str] | None = None):
        super().__init__(", ".join(reasons or ["ConditionalCheckFailed"]))
        self.reasons = reasons or []


class IdempotencyKeyTakenError(ConditionFailedError):
    """Another send with the same Idempotency-Key stored its message first."""


class TransactionConflictError(Exception):
    """A write kept meeting concurrent transactions on the same items; nothing was written (retry later)."""


class DeletionIncompleteError(RuntimeError):
    """Some deletions were still unprocessed (throttled) after the bounded retries."""


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _cancellation_reasons(exc: ClientError) -> list[str]:
    return [reason.get("Code", "None") for reason in exc.response.get("CancellationReasons", [])]


def _is_transaction_conflict(exc: ClientError) -> bool:
    """True when a write lost only to a concurrent transaction (no condition failed): trying again may work."""
    if _error_code(exc) == "TransactionConflictException":  # a single-item write on an item in a transaction
        return True
    reasons = _cancellation_reasons(exc)
    return (
        _error_code(exc) == "TransactionCanceledException"
        and "TransactionConflict" in reasons
        and "ConditionalCheckFailed" not in reasons
    )


CONVERSATION_PREFIX = "CONV#"


def conversation_pk(conversation_id: str) -> str:
    return f"{CONVERSATION_PREFIX}{conversation_id}"


def conversation_id_of(partition_key: str) -> str:
    """The conversation id in a table partition key (e.g. from a stream record); ValueError if it is not one."""
    if not partition_key.startswith(CONVERSATION_PREFIX):
        raise ValueError(f"not a conversation key: {partition_key!r}")
    return partition_key.removeprefix(CONVERSATION_PREFIX)


def owner_index_pk(owner: str) -> str:
    return f"USER#{owner}#CONV"


def message_sk(seq: int) -> str:
    return f"{MESSAGE_PREFIX}{seq:0{_SEQ_DIGITS}d}"


def is_message_sk(sk: str) -> bool:
    """True for a message sort key inside the range message queries read (MSG# and 10 ASCII digits, seq >= 1)."""
    digits = sk.removeprefix(MESSAGE_PREFIX)
    return (
        sk.startswith(MESSAGE_PREFIX)
        and len(digits) == _SEQ_DIGITS
        and digits.isascii()
        and digits.isdigit()
        and int(digits) >= 1
    )


def idempotency_key_sk(idempotency_key: str) -> str:
    return f"{IDEMPOTENCY_KEY_PREFIX}{idempotency_key}"


class ConversationRecord(TypedDict, total=False):
    """A conversation as the service sees it (its META item without the key attributes)."""

    conversation_id: str
    owner: str
    title: str | None
    system_prompt: str | None
    created_at: str
    last_active_at: str
    turn_count: int
    message_count: int
    version: int  # counts every change to the messages; a cached summary is valid for one version
    generation: int  # counts clears; an Idempotency-Key item of an older generation names nothing
    cleared_through: int  # messages up to this seq were cleared (dead even before they are deleted); absent: 0
    summarized_through: int  # the rolling summary covers messages up to this seq
    expires_at: int  # epoch seconds (the table's TTL attribute)
    rolling_summary: str
    cached_summary: dict[str, Any]
    summary_request: dict[str, Any]  # the newest background summary: pending, ready (with its result) or failed
    call: dict[str, Any] | None  # the summarized call a conversation is about: {"job_id", "filename"}


class MessageRecord(TypedDict, total=False):
    """A message (its item without the key attributes)."""

    seq: int
    role: str  # user | assistant
    content: str
    created_at: str
    status: str  # user messages: pending | answered | unanswered
    reply_to: int  # assistant messages: the seq of the question
    call_turns: list[dict[str, Any]]  # answers about a call: the turns used, {"index", "speaker", "start_s"}
    call_selection: bool  # answers about a call: only a selection of its turns fitted


class IdempotencyKeyRecord(TypedDict):
    seq: int  # the user message first sent with the key
    generation: int


_KEY_ATTRIBUTES = frozenset({"pk", "sk", "gsi1pk", "gsi1sk", "type"})
_CONVERSATION_CURSOR = frozenset({"pk", "sk", "gsi1pk", "gsi1sk"})
_MESSAGE_CURSOR = frozenset({"pk", "sk"})

R = TypeVar("R")


@dataclass
class Page(Generic[R]):
    items: list[R]
    next_cursor: str | None  # opaque: where the next page starts; None on the last page

    @property
    def has_more(self) -> bool:
        return self.next_cursor is not None


def _record(item: dict[str, Any]) -> Any:
    """An item without the attributes only the table's layout needs."""
    return {name: value for name, value in item.items() if name not in _KEY_ATTRIBUTES}


class ConversationStore:
    """Reads and writes conversation and message items; knows keys and conditions, not business rules."""

    def __init__(self, table_name: str, client: Any, *, sleep: Callable[[float], None] = time.sleep):
        self.table_name = table_name
        self._client = client
        self._sleep = sleep  # waits between retries (tests pass a recorder)

    # -- conversations ------------------------------------------------------------------------------

    def get_conversation(self, conversation_id: str) -> ConversationRecord | None:
        return self._get(conversation_id, META)

    def create_conversation(self, conversation: ConversationRecord) -> None:
        item = {
            "pk": conversation_pk(conversation["conversation_id"]),
            "sk": META,
            "type": "conversation",
            "gsi1pk": owner_index_pk(conversation["owner"]),
            "gsi1sk": conversation["last_active_at"],
            **conversation,
        }
        self._client.put_item(
            TableName=self.table_name,
            Item=serialize(item),
            ConditionExpression="attribute_not_exists(pk)",
        )

    def list_conversations(self, owner: str, limit: int, cursor: str | None) -> Page[ConversationRecord]:
        """The owner's conversations, most recently active first, from `cursor` (a page's next_cursor) on."""
        start_key = decode_cursor(
            cursor,
            attributes=_CONVERSATION_CURSOR,
            belongs=lambda key: key["gsi1pk"] == owner_index_pk(owner) and key["sk"] == META,
        )
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :owner",
            "ExpressionAttributeValues": serialize({":owner": owner_index_pk(owner)}),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if start_key:
            request["ExclusiveStartKey"] = serialize(start_key)
        return self._page(request, consistent=False)

    def touch(self, conversation_id: str, now_iso: str, expires_at: int, changes: dict[str, Any]) -> None:
        """Record activity (last active, TTL) plus `changes`, only if the conversation still exists."""
        values = {"last_active_at": now_iso, "gsi1sk": now_iso, "expires_at": expires_at, **changes}
        names = {f"#{key}": key for key in values}
        self._client.update_item(
            TableName=self.table_name,
            Key=serialize({"pk": conversation_pk(conversation_id), "sk": META}),
            UpdateExpression="SET " + ", ".join(f"#{key} = :{key}" for key in values),
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=serialize({f":{key}": value for key, value in values.items()}),
        )

    def update_details(self, conversation_id: str, owner: str, changes: dict[str, str | None]) -> ConversationRecord:
        """Set (or, for None, remove) descriptive attributes of the owner's conversation in one conditional
        write; returns the updated conversation. Raises ConditionFailedError if it is gone or someone else's."""
        to_set = {name: value for name, value in changes.items() if value is not None}
        to_remove = [name for name, value in changes.items() if value is None]
        clauses = []
        if to_set:
            clauses.append("SET " + ", ".join(f"#{name} = :{name}" for name in to_set))
        if to_remove:
            clauses.append("REMOVE " + ", ".join(f"#{name}" for name in to_remove))
        try:
            response = self._client.update_item(
                TableName=self.table_name,
                Key=serialize({"pk": conversation_pk(conversation_id), "sk": META}),
                UpdateExpression=" ".join(clauses),
                ConditionExpression="attribute_exists(pk) AND #owner = :owner",
                ExpressionAttributeNames={"#owner": "owner", **{f"#{name}": name for name in changes}},
                ExpressionAttributeValues=serialize(
                    {":owner": owner, **{f":{name}": value for name, value in to_set.items()}}
                ),
                ReturnValues="ALL_NEW",
            )
        except self._client.exceptions.ConditionalCheckFailedException as exc:
            raise ConditionFailedError() from exc
        return _record(deserialize(response["Attributes"]))

    def save_rolling_summary(self, conversation_id: str, summary: str, through_seq: int, expected_through: int) -> bool:
        """Store the rolling summary unless another turn already moved it on; True when stored."""
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key=serialize({"pk": conversation_pk(conversation_id), "sk": META}),
                UpdateExpression="SET rolling_summary = :summary, summarized_through = :through",
                ConditionExpression="attribute_exists(pk) AND summarized_through = :expected",
                ExpressionAttributeValues=serialize(
                    {":summary": summary, ":through": through_seq, ":expected": expected_through}
                ),
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        except ClientError as exc:
            return _best_effort_conflict(exc, "rolling summary", conversation_id)
        return True

    def save_cached_summary(self, conversation_id: str, cached: dict[str, Any], expected_version: int) -> bool:
        """Cache a whole-conversation summary if the conversation has not changed since it was read."""
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key=serialize({"pk": conversation_pk(conversation_id), "sk": META}),
                UpdateExpression="SET cached_summary = :cached",
                ConditionExpression="attribute_exists(pk) AND version = :version",
                ExpressionAttributeValues=serialize({":cached": cached, ":version": expected_version}),
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        except ClientError as exc:
            return _best_effort_conflict(exc, "cached summary", conversation_id)
        return True

    # -- background summary requests ------------------------------------------------------------------

    def save_summary_request(self, conversation_id: str, request: dict[str, Any]) -> None:
        """Record a background summary request on the conversation, replacing any earlier one."""
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key=serialize({"pk": conversation_pk(conversation_id), "sk": META}),
                UpdateExpression="SET summary_request = :request",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues=serialize({":request": request}),
            )
        except self._client.exceptions.ConditionalCheckFailedException as exc:
            raise ConditionFailedError() from exc

    def finish_summary_request(self, conversation_id: str, request_id: str, outcome: dict[str, Any]) -> bool:
        """Merge `outcome` (its status: ready or failed) into the request if it is still the pending one named;
        False when it was replaced, already finished, or the conversation is gone."""
        names = {"#status": "status", **{f"#{name}": name for name in outcome}}
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key=serialize({"pk": conversation_pk(conversation_id), "sk": META}),
                UpdateExpression="SET " + ", ".join(f"summary_request.#{name} = :{name}" for name in outcome),
                ConditionExpression="summary_request.request_id = :request_id AND summary_request.#status = :pending",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=serialize(
                    {":request_id": request_id, ":pending": "pending", **{f":{k}": v for k, v in outcome.items()}}
                ),
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def reset_conversation(self, conversation: ConversationRecord, now_iso: str, expires_at: int) -> None:
        """Forget messages and summaries: everything up to `cleared_through` (2 * turn_count) is dead from
        here on and deleted next (delete_cleared); turn numbers keep counting up, and the generation changes
        so answers still in flight cannot land in the cleared conversation."""
        conversation_id, owner = conversation["conversation_id"], conversation["owner"]
        try:
            self._with_conflict_retries(
                self._client.update_item,
                TableName=self.table_name,
                Key=serialize({"pk": conversation_pk(conversation_id), "sk": META}),
                UpdateExpression=(
                    "SET message_count = :zero, summarized_through = :through, cleared_through = :through, "
                    "generation = generation + :one, version = version + :one, "
                    "last_active_at = :now, gsi1sk = :now, expires_at = :expires "
                    "REMOVE rolling_summary, cached_summary"
                ),
                ConditionExpression="attribute_exists(pk) AND #owner = :owner AND turn_count = :turns",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues=serialize(
                    {
                        ":zero": 0,
                        ":one": 1,
                        ":through": 2 * conversation["turn_count"],
                        ":turns": conversation["turn_count"],
                        ":now": now_iso,
                        ":expires": expires_at,
                        ":owner": owner,
                    }
                ),
            )
        except self._client.exceptions.ConditionalCheckFailedException as exc:
            raise ConditionFailedError() from exc
        except ClientError as exc:
            if _is_transaction_conflict(exc):
                raise TransactionConflictError(str(exc)) from exc
            raise

    def delete_conversation(self, conversation_id: str, owner: str) -> None:
        """Delete the META item: the conversation is gone from here on, and its messages are dead (delete_messages;
        the stream clean-up deletes them too, on this item's REMOVE record)."""
        try:
            self._client.delete_item(
                TableName=self.table_name,
                Key=serialize({"pk": conversation_pk(conversation_id), "sk": META}),
                ConditionExpression="attribute_exists(pk) AND #owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues=serialize({":owner": owner}),
            )
        except self._client.exceptions.ConditionalCheckFailedException as exc:
            raise ConditionFailedError() from exc

    # -- messages -----------------------------------------------------------------------------------

    def message_page(
        self, conversation_id: str, *, limit: int, cursor: str | None, newest_first: bool, after_seq: int = 0
    ) -> Page[MessageRecord]:
        """A page of the messages with seq > after_seq (the live ones: after_seq is cleared_through)."""
        start_key = decode_cursor(
            cursor,
            attributes=_MESSAGE_CURSOR,
            belongs=lambda key: key["pk"] == conversation_pk(conversation_id) and is_message_sk(key["sk"]),
        )
        request = self._message_query(conversation_id, limit=limit, newest_first=newest_first, after_seq=after_seq)
        # A cursor from before a clear may point into the cleared range, which the key condition leaves out:
        # oldest first the page starts after the cleared range, newest first nothing live is left.
        if start_key and _seq_of(start_key["sk"]) <= after_seq + (1 if newest_first else 0):
            if newest_first:
                return Page([], None)
            start_key = None
        if start_key:
            request["ExclusiveStartKey"] = serialize(start_key)
        return self._page(request, consistent=False)

    def newest_messages(self, conversation_id: str, *, after_seq: int, limit: int) -> Page[MessageRecord]:
        """Up to `limit` messages with seq > after_seq, newest first (bounded work per turn)."""
        request = self._message_query(conversation_id, limit=limit, newest_first=True, after_seq=after_seq)
        return self._page(request, consistent=True)

    def messages_between(self, conversation_id: str, first_seq: int, last_seq: int, limit: int) -> Page[MessageRecord]:
        request = self._message_query(conversation_id, limit=limit, newest_first=False, after_seq=first_seq - 1)
        request["KeyConditionExpression"] = "pk = :pk AND sk BETWEEN :low AND :high"
        request["ExpressionAttributeValues"] = serialize(
            {":pk": conversation_pk(conversation_id), ":low": message_sk(first_seq), ":high": message_sk(last_seq)}
        )
        return self._page(request, consistent=True)

    def all_messages(self, conversation_id: str, page_size: int = 500, after_seq: int = 0) -> Iterator[MessageRecord]:
        """Every message with seq > after_seq, oldest first (one Query page at a time)."""
        start_key = None
        while True:
            request = self._message_query(conversation_id, limit=page_size, newest_first=False, after_seq=after_seq)
            if start_key:
                request["ExclusiveStartKey"] = serialize(start_key)
            items, start_key = self._query(request, consistent=True)
            yield from (_record(item) for item in items)
            if not start_key:
                return

    def get_message(self, conversation_id: str, seq: int) -> MessageRecord | None:
        return self._get(conversation_id, message_sk(seq))

    def get_idempotency_key(self, conversation_id: str, idempotency_key: str) -> IdempotencyKeyRecord | None:
        """The key item (`seq` of the message it was sent with, `generation`), or None (one GetItem)."""
        return self._get(conversation_id, idempotency_key_sk(idempotency_key))

    def start_turn(
        self,
        conversation: ConversationRecord,
        message: MessageRecord,
        now_iso: str,
        expires_at: int,
        idempotency_key: str | None = None,
    ) -> None:
        """Store the user's message as turn `turn_count + 1`, if no one else took that turn first, and with it
        the Idempotency-Key item unless the key already names a message of this generation
        (IdempotencyKeyTakenError)."""
        conversation_id = conversation["conversation_id"]
        expected_turns = conversation["turn_count"]
        operations = [
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": serialize({"pk": conversation_pk(conversation_id), "sk": META}),
                    "UpdateExpression": (
                        "SET turn_count = :next, message_count = message_count + :one, version = version + :one, "
                        "last_active_at = :now, gsi1sk = :now, expires_at = :expires"
                    ),
                    "ConditionExpression": (
                        "attribute_exists(pk) AND turn_count = :expected AND generation = :generation"
                    ),
                    "ExpressionAttributeValues": serialize(
                        {
                            ":next": expected_turns + 1,
                            ":expected": expected_turns,
                            ":generation": conversation["generation"],
                            ":one": 1,
                            ":now": now_iso,
                            ":expires": expires_at,
                        }
                    ),
                }
            },
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": serialize(
                        {
                            "pk": conversation_pk(conversation_id),
                            "sk": message_sk(message["seq"]),
                            "type": "message",
                            **message,
                        }
                    ),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ]
        if idempotency_key is not None:
            operations.append(self._key_put(conversation, idempotency_key, message["seq"]))
        try:
            self._transact(operations)
        except ConditionFailedError as exc:
            if idempotency_key is not None and exc.reasons[2:3] == ["ConditionalCheckFailed"]:
                raise IdempotencyKeyTakenError(exc.reasons) from exc
            raise

    def add_idempotency_key(self, conversation: ConversationRecord, idempotency_key: str, seq: int) -> None:
        """Let a new key name an already stored message (IdempotencyKeyTakenError if it names another)."""
        try:
            self._client.put_item(**self._key_put(conversation, idempotency_key, seq)["Put"])
        except self._client.exceptions.ConditionalCheckFailedException as exc:
            raise IdempotencyKeyTakenError() from exc

    def _key_put(self, conversation: dict[str, Any], idempotency_key: str, seq: int) -> dict[str, Any]:
        generation = conversation["generation"]
        item = {
            "pk": conversation_pk(conversation["conversation_id"]),
            "sk": idempotency_key_sk(idempotency_key),
            "type": "idempotency_key",
            "seq": seq,
            "generation": generation,
        }
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": serialize(item),
                # A key left from before a clear (older generation) names no message: it may be reused.
                "ConditionExpression": "attribute_not_exists(pk) OR generation < :generation",
                "ExpressionAttributeValues": serialize({":generation": generation}),
            }
        }

    def finish_turn(
        self,
        conversation_id: str,
        generation: int,
        user_seq: int,
        answer: MessageRecord,
        now_iso: str,
        expires_at: int,
    ) -> None:
        """Store the answer in its slot and mark the question answered, unless the conversation was
        cleared or deleted meanwhile or the slot is already taken (a concurrent retry answered it)."""
        key = {"pk": conversation_pk(conversation_id)}
        self._transact(
            [
                {
                    "Put": {
                        "TableName": self.table_name,
                        "Item": serialize({**key, "sk": message_sk(answer["seq"]), "type": "message", **answer}),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {
                    "Update": {
                        "TableName": self.table_name,
                        "Key": serialize({**key, "sk": message_sk(user_seq)}),
                        "UpdateExpression": "SET #status = :answered",
                        "ConditionExpression": "attribute_exists(pk)",
                        "ExpressionAttributeNames": {"#status": "status"},
                        "ExpressionAttributeValues": serialize({":answered": "answered"}),
                    }
                },
                {
                    "Update": {
                        "TableName": self.table_name,
                        "Key": serialize({**key, "sk": META}),
                        "UpdateExpression": (
                            "SET message_count = message_count + :one, version = version + :one, "
                            "last_active_at = :now, gsi1sk = :now, expires_at = :expires"
                        ),
                        "ConditionExpression": "attribute_exists(pk) AND generation = :generation",
                        "ExpressionAttributeValues": serialize(
                            {":one": 1, ":now": now_iso, ":expires": expires_at, ":generation": generation}
                        ),
                    }
                },
            ]
        )

    def set_message_status(self, conversation_id: str, seq: int, status: str) -> None:
        """Best effort: a message left `pending` reads as unanswered once it is older than any model call."""
        # A failed condition means a concurrent retry already answered it, or it was cleared: nothing to mark.
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key=serialize({"pk": conversation_pk(conversation_id), "sk": message_sk(seq)}),
                UpdateExpression="SET #status = :status",
                ConditionExpression="attribute_exists(pk) AND #status <> :answered",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=serialize({":status": status, ":answered": "answered"}),
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return
        except ClientError as exc:
            _best_effort_conflict(exc, "message status", conversation_id)

    def delete_messages(self, conversation_id: str) -> int:
        """Delete every message item of the conversation and the Idempotency-Key items naming them (by key,
        25 per BatchWriteItem); returns the number of messages deleted."""
        deleted = self._delete_items(self._message_query(conversation_id, limit=500, newest_first=False))
        keys_query = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": serialize(
                {":pk": conversation_pk(conversation_id), ":prefix": IDEMPOTENCY_KEY_PREFIX}
            ),
            "Limit": 500,
        }
        self._delete_items(keys_query)
        return deleted

    def delete_cleared(
        self,
        conversation_id: str,
        cleared_through: int,
        generation: int,
        keep_going: Callable[[], bool] = lambda: True,
    ) -> int:
        """Delete what a clear made dead: messages with seq <= cleared_through (nothing writes them again) and
        Idempotency-Key items of a generation older than `generation` (each deleted on that condition, since a
        resend may reuse the key meanwhile). Stops early once `keep_going()` is false; returns the number of
        messages deleted. Safe to run more than once, and alongside sends."""
        if cleared_through < 1:
            return 0
        messages = self._message_query(conversation_id, limit=500, newest_first=False)
        messages["ExpressionAttributeValues"] = serialize(
            {":pk": conversation_pk(conversation_id), ":low": message_sk(1), ":high": message_sk(cleared_through)}
        )
        deleted = self._delete_items(messages, keep_going)
        old_keys = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "FilterExpression": "generation < :generation",
            "ExpressionAttributeValues": serialize(
                {
                    ":pk": conversation_pk(conversation_id),
                    ":prefix": IDEMPOTENCY_KEY_PREFIX,
                    ":generation": generation,
                }
            ),
            "Limit": 500,
        }
        for keys in self._key_pages(old_keys, keep_going):
            for key in keys:
                delete_stale_idempotency_key(self._client, self.table_name, key, generation)
        return deleted

    def _delete_items(self, query: dict[str, Any], keep_going: Callable[[], bool] = lambda: True) -> int:
        deleted = 0
        for keys in self._key_pages(query, keep_going):
            for offset in range(0, len(keys), BATCH_WRITE_SIZE):
                if not keep_going():
                    return deleted
                batch = keys[offset : offset + BATCH_WRITE_SIZE]
                self._batch_delete(batch)
                deleted += len(batch)
        return deleted

    def _key_pages(self, query: dict[str, Any], keep_going: Callable[[], bool]) -> Iterator[list[dict[str, Any]]]:
        """The keys of the items the query finds, a page at a time, until the last page or keep_going() is false."""
        start_key = None
        while keep_going():
            request = {**query, "ProjectionExpression": "pk, sk"}
            if start_key:
                request["ExclusiveStartKey"] = serialize(start_key)
            items, start_key = self._query(request, consistent=True)
            yield [{"pk": item["pk"], "sk": item["sk"]} for item in items]
            if not start_key:
                return

    # -- plumbing -----------------------------------------------------------------------------------

    def _message_query(
        self, conversation_id: str, *, limit: int, newest_first: bool, after_seq: int = 0
    ) -> dict[str, Any]:
        return {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
            "ExpressionAttributeValues": serialize(
                {
                    ":pk": conversation_pk(conversation_id),
                    ":low": message_sk(after_seq + 1),
                    ":high": message_sk(10**_SEQ_DIGITS - 1),
                }
            ),
            "ScanIndexForward": not newest_first,
            "Limit": limit,
        }

    def _get(self, conversation_id: str, sk: str) -> Any:
        response = self._client.get_item(
            TableName=self.table_name,
            Key=serialize({"pk": conversation_pk(conversation_id), "sk": sk}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return _record(deserialize(item)) if item else None

    def _query(
        self, request: dict[str, Any], *, consistent: bool
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """The items of one Query page (as stored) and the key to continue from (None on the last page)."""
        if consistent:
            request["ConsistentRead"] = True
        response = self._client.query(**request)
        last_key = response.get("LastEvaluatedKey")
        return [deserialize(item) for item in response.get("Items", [])], deserialize(last_key) if last_key else None

    def _page(self, request: dict[str, Any], *, consistent: bool) -> Page[Any]:
        items, last_key = self._query(request, consistent=consistent)
        return Page([_record(item) for item in items], encode_cursor(last_key))

    def _transact(self, operations: list[dict[str, Any]]) -> None:
        """One transaction; a lost condition is ConditionFailedError (with each item's reason), a transaction
        that kept conflicting with others (after bounded retries) TransactionConflictError."""
        try:
            self._with_conflict_retries(self._client.transact_write_items, TransactItems=operations)
        except ClientError as exc:
            if _error_code(exc) != "TransactionCanceledException":
                raise
            if _is_transaction_conflict(exc):
                raise TransactionConflictError(str(exc)) from exc
            raise ConditionFailedError(_cancellation_reasons(exc)) from exc

    def _with_conflict_retries(self, write: Callable[..., Any], **request: Any) -> Any:
        """`write(**request)`, again after a short jittered wait when it lost only to a concurrent transaction
        (botocore does not retry those); the last attempt's error is raised."""
        for attempt in range(CONFLICT_ATTEMPTS - 1):
            try:
                return write(**request)
            except ClientError as exc:
                if not _is_transaction_conflict(exc):
                    raise
            self._sleep(full_jitter_delay(attempt, base_s=CONFLICT_BACKOFF_BASE_S, cap_s=CONFLICT_BACKOFF_CAP_S))
        return write(**request)

    def _batch_delete(self, keys: list[dict[str, Any]]) -> None:
        batch_delete(
            self._client,
            self.table_name,
            keys,
            attempts=BATCH_DELETE_ATTEMPTS,
            base_s=BATCH_DELETE_BACKOFF_BASE_S,
            cap_s=BATCH_DELETE_BACKOFF_CAP_S,
            sleep=self._sleep,
        )


def batch_delete(
    client: Any,
    table_name: str,
    keys: list[dict[str, Any]],
    *,
    attempts: int,
    base_s: float,
    cap_s: float,
    sleep: Callable[[float], None],
    uniform: Callable[[float, float], float] = random.uniform,
) -> None:
    """Delete the items with these keys, 25 per BatchWriteItem; items handed back unprocessed (throttling) are
    retried after capped exponential backoff with full jitter, `attempts` times in all (DeletionIncompleteError)."""
    for offset in range(0, len(keys), BATCH_WRITE_SIZE):
        requests = [{"DeleteRequest": {"Key": serialize(key)}} for key in keys[offset : offset + BATCH_WRITE_SIZE]]
        for attempt in range(attempts):
            if attempt:
                sleep(full_jitter_delay(attempt - 1, base_s=base_s, cap_s=cap_s, uniform=uniform))
            response = client.batch_write_item(RequestItems={table_name: requests})
            requests = response.get("UnprocessedItems", {}).get(table_name, [])
            if not requests:
                break
        else:
            raise DeletionIncompleteError(f"{len(requests)} deletions still unprocessed after {attempts} attempts")


def delete_stale_idempotency_key(client: Any, table_name: str, key: dict[str, Any], generation: int) -> bool:
    """Delete an Idempotency-Key item only while its generation is older than `generation`; False when a resend
    reused the key in the current generation meanwhile (it names a live message now, and stays)."""
    try:
        client.delete_item(
            TableName=table_name,
            Key=serialize(key),
            ConditionExpression="#generation < :generation",
            ExpressionAttributeNames={"#generation": "generation"},
            ExpressionAttributeValues=serialize({":generation": generation}),
        )
    except client.exceptions.ConditionalCheckFailedException:
        return False
    return True


def _seq_of(sk: str) -> int:
    return int(sk.removeprefix(MESSAGE_PREFIX))


def _best_effort_conflict(exc: ClientError, what: str, conversation_id: str) -> bool:
    """A best-effort write that met a concurrent transaction on its item is skipped (logged), not an error:
    the turn it belongs to already succeeded. Other errors are raised. Returns False (nothing stored)."""
    if _error_code(exc) != "TransactionConflictException":
        raise exc
    logger.warning(
        f"{what} not updated: the item was in a concurrent transaction", extra={"conversation_id": conversation_id}
    )
    return False
