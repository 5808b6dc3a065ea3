"""Retention: once a conversation's META item is gone (DynamoDB TTL after the idle days, or a delete),
its messages go too. TTL removes only the item that carries `expires_at`, so messages need no TTL of
their own and an active conversation never loses its history."""

from __future__ import annotations

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
