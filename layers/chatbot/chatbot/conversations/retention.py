"""Retention: once a conversation's META item is gone (DynamoDB TTL after the idle days, or a delete),
its messages go too. TTL removes only the item that carries `expires_at`, so messages need no TTL of
their own and an active conversation never loses its history. After a clear (META's `cleared_through`
rose), what it cleared goes: this is the clear's authoritative deleter (the request only tries inline)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from chatbot.conversations.store import ConversationStore, conversation_id_of

logger = Logger(child=True)
metrics = Metrics()


class MessagePurger:
    def __init__(self, store: ConversationStore):
        self._store = store

    def purge(self, partition_key: str) -> int:
        """Delete every message of the conversation whose removed item had this partition key, unless the
        conversation still exists; returns the count (ValueError for a key that is not a conversation's)."""
        conversation_id = conversation_id_of(partition_key)
        if self._store.get_conversation(conversation_id) is not None:
            return 0  # recreated or never removed: nothing to clean
        deleted = self._store.delete_messages(conversation_id)
        metrics.add_metric(name="ExpiredMessagesDeleted", unit=MetricUnit.Count, value=deleted)
        logger.info("conversation messages purged", extra={"conversation_id": conversation_id, "deleted": deleted})
        return deleted

    def purge_cleared(self, partition_key: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> int:
        """Given a META item before and after a change: if `cleared_through` rose (a clear), delete the messages
        it cleared and the Idempotency-Key items of older generations; returns the count (0 for other changes)."""
        conversation_id = conversation_id_of(partition_key)
        cleared_through = int(after.get("cleared_through", 0))
        if cleared_through <= int(before.get("cleared_through", 0)):
            return 0
        deleted = self._store.delete_cleared(conversation_id, cleared_through, int(after["generation"]))
        metrics.add_metric(name="ClearedMessagesDeleted", unit=MetricUnit.Count, value=deleted)
        logger.info(
            "cleared messages purged",
            extra={"conversation_id": conversation_id, "cleared_through": cleared_through, "deleted": deleted},
        )
        return deleted
