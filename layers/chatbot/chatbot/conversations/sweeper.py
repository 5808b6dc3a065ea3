"""The orphan sweeper: a scheduled pass over the table that deletes what the stream clean-up
(chatbot.conversations.retention) or a clear left behind.

Dead items, and only these, are deleted:
- orphans: the messages and Idempotency-Key items of a partition that has no META item (the conversation
  expired or was deleted, and its clean-up failed or stopped half way);
- leftovers of a clear: messages with seq <= META.cleared_through (absent = 0) and Idempotency-Key items
  whose generation is older than META.generation.

A per-message TTL cannot do this: a conversation's expiry moves with every turn, and each of its messages
would have to be rewritten with it.

The Scan's view of a partition may be stale or cut by a page boundary, so it only nominates candidates: a
consistent read of the META item just before the delete decides, and items of a live conversation that are
not dead by its current META are never deleted. The run stops with time to spare and leaves a checkpoint
(the Scan's next key), so a table bigger than one run is swept over several; a finished sweep removes it
and the next run starts from the beginning.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from chatbot.conversations.store import IDEMPOTENCY_KEY_PREFIX, META, conversation_id_of, is_message_sk
from chatbot.conversations.sweep_store import SweepStore

logger = Logger(child=True)
metrics = Metrics()

_METRIC_OF_KIND = {
    "orphan_messages": "OrphanMessagesDeleted",
    "orphan_idempotency_keys": "OrphanIdempotencyKeysDeleted",
    "cleared_messages": "SweptClearedMessagesDeleted",
    "stale_idempotency_keys": "StaleIdempotencyKeysDeleted",
}


@dataclass
class SweepReport:
    """What one run did: items deleted per kind, items scanned, and whether the whole table was covered."""

    orphan_messages: int = 0
    orphan_idempotency_keys: int = 0
    cleared_messages: int = 0
    stale_idempotency_keys: int = 0
    scanned: int = 0
    pages: int = 0
    finished: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _key(item: dict[str, Any]) -> dict[str, Any]:
    return {"pk": item["pk"], "sk": item["sk"]}


def _seq(sk: str) -> int:
    return int(sk.removeprefix("MSG#"))


def dead_items(items: list[dict[str, Any]], meta: dict[str, Any] | None) -> dict[str, list[dict[str, Any]]]:
    """The items of one partition that are dead given its META item (None: there is none), by kind.
    Items that are neither messages nor Idempotency-Key items are never dead here."""
    kinds: dict[str, list[dict[str, Any]]] = {kind: [] for kind in _METRIC_OF_KIND}
    cleared_through = int(meta.get("cleared_through", 0)) if meta is not None else 0
    generation = int(meta.get("generation", 0)) if meta is not None else 0
    for item in items:
        sk = item["sk"]
        if is_message_sk(sk):
            if meta is None:
                kinds["orphan_messages"].append(item)
            elif _seq(sk) <= cleared_through:
                kinds["cleared_messages"].append(item)
        elif sk.startswith(IDEMPOTENCY_KEY_PREFIX):
            if meta is None:
                kinds["orphan_idempotency_keys"].append(item)
            elif "generation" in item and int(item["generation"]) < generation:
                kinds["stale_idempotency_keys"].append(item)
    return kinds


class OrphanSweeper:
    def __init__(
        self,
        store: SweepStore,
        *,
        page_size: int,
        reserve_ms: int,
        now_iso: Callable[[], str],
    ):
        self._store = store
        self._page_size = page_size
        self._reserve_ms = reserve_ms  # time one more page (Scan, reads, deletes) needs at most
        self._now_iso = now_iso

    def sweep(self, remaining_ms: Callable[[], int]) -> SweepReport:
        """Sweep from the checkpoint (or the beginning) on, a page at a time, while more than the reserve of
        time remains; returns what was deleted."""
        report = SweepReport()
        start_key = self._store.load_checkpoint()
        logger.info("sweep started", extra={"resumed": start_key is not None})
        while remaining_ms() > self._reserve_ms:
            items, start_key = self._store.scan_page(start_key, self._page_size)
            report.pages += 1
            report.scanned += len(items)
            self._sweep_page(items, report)
            if start_key is None:
                self._store.clear_checkpoint()
                report.finished = True
                break
            self._store.save_checkpoint(start_key, self._now_iso())
        for kind, metric in _METRIC_OF_KIND.items():
            metrics.add_metric(name=metric, unit=MetricUnit.Count, value=getattr(report, kind))
        logger.info("sweep stopped", extra=report.as_dict())
        return report

    def _sweep_page(self, items: list[dict[str, Any]], report: SweepReport) -> None:
        partitions: dict[str, list[dict[str, Any]]] = {}
        for item in items:
            partitions.setdefault(item["pk"], []).append(item)
        for partition_key, partition_items in partitions.items():
            seen_meta = next((item for item in partition_items if item["sk"] == META), None)
            # META on another page looks like no META here: the consistent read below settles it.
            if not any(dead_items(partition_items, seen_meta).values()):
                continue
            conversation_id = conversation_id_of(partition_key)
            meta = self._store.get_meta(conversation_id)
            dead = dead_items(partition_items, meta)
            # A stale key may be reused by a send at any moment: each goes only while still stale. The other dead
            # items cannot come back to life (seqs only grow; conversation ids are fresh UUIDs), so they go in batches.
            stale_keys = dead.pop("stale_idempotency_keys")
            self._store.delete([_key(item) for kind in dead.values() for item in kind])
            generation = int(meta.get("generation", 0)) if meta is not None else 0
            dead["stale_idempotency_keys"] = [
                item for item in stale_keys if self._store.delete_stale_idempotency_key(_key(item), generation)
            ]
            counts = {kind: len(kind_items) for kind, kind_items in dead.items() if kind_items}
            for kind, count in counts.items():
                setattr(report, kind, getattr(report, kind) + count)
            if counts:
                logger.info("dead items deleted", extra={"conversation_id": conversation_id, **counts})
