"""DynamoDB access for the orphan sweeper: a paginated Scan of the conversation partitions (keys and the few
attributes that decide whether an item is dead), a consistent read of one META item, deletes by key, and the
sweep's checkpoint item (pk=SWEEP#orphans sk=CHECKPOINT: where the next run's Scan starts)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from chatbot.conversations.store import (
    CONVERSATION_PREFIX,
    META,
    batch_delete,
    conversation_pk,
    delete_stale_idempotency_key,
)
from chatbot.dynamodb import deserialize, serialize

_CHECKPOINT_KEY = {"pk": "SWEEP#orphans", "sk": "CHECKPOINT"}


class SweepStore:
    """Reads the whole table a page at a time and deletes dead items; knows keys, not the rules of death."""

    def __init__(
        self,
        table_name: str,
        client: Any,
        *,
        max_attempts: int = 8,
        backoff_base_s: float = 0.05,
        backoff_cap_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[float, float], float] = random.uniform,
    ):
        self.table_name = table_name
        self._client = client
        self._max_attempts = max_attempts
        self._backoff_base_s = backoff_base_s
        self._backoff_cap_s = backoff_cap_s
        self._sleep = sleep
        self._jitter = jitter

    def scan_page(
        self, start_key: dict[str, Any] | None, limit: int
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """One Scan page of conversation items (pk, sk, generation, cleared_through) in table order, so a
        partition's items come together, possibly split across pages; and the key the next page starts from."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "ProjectionExpression": "pk, sk, #generation, #cleared_through",
            "FilterExpression": "begins_with(pk, :conversation)",
            "ExpressionAttributeNames": {"#generation": "generation", "#cleared_through": "cleared_through"},
            "ExpressionAttributeValues": serialize({":conversation": CONVERSATION_PREFIX}),
            "Limit": limit,
        }
        if start_key:
            request["ExclusiveStartKey"] = serialize(start_key)
        response = self._client.scan(**request)
        last_key = response.get("LastEvaluatedKey")
        return [deserialize(item) for item in response.get("Items", [])], deserialize(last_key) if last_key else None

    def get_meta(self, conversation_id: str) -> dict[str, Any] | None:
        """The conversation's META item as it is now (consistent read), or None when it does not exist."""
        response = self._client.get_item(
            TableName=self.table_name,
            Key=serialize({"pk": conversation_pk(conversation_id), "sk": META}),
            ProjectionExpression="#generation, #cleared_through",
            ExpressionAttributeNames={"#generation": "generation", "#cleared_through": "cleared_through"},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return deserialize(item) if item is not None else None

    def delete_stale_idempotency_key(self, key: dict[str, Any], generation: int) -> bool:
        """Delete an Idempotency-Key item only while it is older than `generation`; False when a send reused the
        key for the current generation meanwhile (it names a live message now and stays)."""
        return delete_stale_idempotency_key(self._client, self.table_name, key, generation)

    def delete(self, keys: list[dict[str, Any]]) -> None:
        """Delete the items with these keys, 25 per BatchWriteItem; unprocessed ones are retried with capped
        exponential backoff and full jitter (DeletionIncompleteError once the attempts run out)."""
        batch_delete(
            self._client,
            self.table_name,
            keys,
            attempts=self._max_attempts,
            base_s=self._backoff_base_s,
            cap_s=self._backoff_cap_s,
            sleep=self._sleep,
            uniform=self._jitter,
        )

    # -- checkpoint ---------------------------------------------------------------------------------

    def load_checkpoint(self) -> dict[str, Any] | None:
        """Where the last unfinished sweep stopped (a Scan key), or None to start from the beginning."""
        response = self._client.get_item(TableName=self.table_name, Key=serialize(_CHECKPOINT_KEY), ConsistentRead=True)
        item = response.get("Item")
        return deserialize(item)["start_key"] if item is not None else None

    def save_checkpoint(self, start_key: dict[str, Any], saved_at: str) -> None:
        item = {**_CHECKPOINT_KEY, "type": "sweep_checkpoint", "start_key": start_key, "saved_at": saved_at}
        self._client.put_item(TableName=self.table_name, Item=serialize(item))

    def clear_checkpoint(self) -> None:
        self._client.delete_item(TableName=self.table_name, Key=serialize(_CHECKPOINT_KEY))
