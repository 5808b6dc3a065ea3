"""The orphan sweeper deletes exactly the dead items: those of partitions without META, and those a clear left
(seq <= cleared_through, Idempotency-Key items of an older generation); nothing of a live conversation else."""

from __future__ import annotations

from typing import Any

import pytest
from chatbot.conversations.store import META, DeletionIncompleteError, conversation_pk, idempotency_key_sk, message_sk
from chatbot.conversations.sweep_store import SweepStore
from chatbot.conversations.sweeper import OrphanSweeper
from chatbot.dynamodb import deserialize, serialize

PLENTY_OF_TIME_MS = 900_000
RESERVE_MS = 60_000


def put_items(dynamodb, table: str, items: list[dict[str, Any]]) -> None:
    for item in items:
        dynamodb.put_item(TableName=table, Item=serialize(item))


def conversation_items(
    conversation_id: str,
    *,
    meta: dict[str, Any] | None,
    messages: range = range(0),
    idempotency_keys: dict[str, int] | None = None,
) -> list[dict[str, Any]]:
    """A conversation partition as the store writes it: META (unless None), messages, key items -> generation."""
    pk = conversation_pk(conversation_id)
    items = [{"pk": pk, "sk": META, "owner": "u", "generation": 0, **meta}] if meta is not None else []
    items += [{"pk": pk, "sk": message_sk(seq), "seq": seq, "content": "x"} for seq in messages]
    items += [
        {"pk": pk, "sk": idempotency_key_sk(key), "seq": 1, "generation": generation}
        for key, generation in (idempotency_keys or {}).items()
    ]
    return items


def sort_keys(dynamodb, table: str, conversation_id: str) -> set[str]:
    response = dynamodb.query(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues=serialize({":pk": conversation_pk(conversation_id)}),
        ConsistentRead=True,
    )
    return {deserialize(item)["sk"] for item in response["Items"]}


class Budget:
    """Remaining time as Lambda's context reports it: enough for `pages` pages, then below the reserve."""

    def __init__(self, pages: int):
        self.pages = pages

    def __call__(self) -> int:
        self.pages -= 1
        return PLENTY_OF_TIME_MS if self.pages >= 0 else RESERVE_MS - 1


@pytest.fixture
def sweep_store(moto_table, dynamodb) -> SweepStore:
    return SweepStore(moto_table, dynamodb, sleep=lambda _seconds: None)


def sweeper_on(store: SweepStore, page_size: int = 100) -> OrphanSweeper:
    return OrphanSweeper(store, page_size=page_size, reserve_ms=RESERVE_MS, now_iso=lambda: "2026-11-25T12:00:00.000Z")


def test_orphans_are_deleted_and_live_conversations_untouched(moto_table, dynamodb, sweep_store):
    # Given a partition whose META is gone (messages and a key left) and a live conversation, and a job record
    put_items(
        dynamodb, moto_table, conversation_items("gone", meta=None, messages=range(1, 4), idempotency_keys={"k": 0})
    )
    live = conversation_items("live", meta={"generation": 1}, messages=range(1, 4), idempotency_keys={"k": 1})
    put_items(dynamodb, moto_table, [*live, {"pk": "JOB#j1", "sk": "META", "owner": "u"}])

    # When the sweeper runs
    report = sweeper_on(sweep_store).sweep(lambda: PLENTY_OF_TIME_MS)

    # Then the orphans are gone, the live conversation and the job keep every item, and the sweep is complete
    assert sort_keys(dynamodb, moto_table, "gone") == set()
    assert sort_keys(dynamodb, moto_table, "live") == {item["sk"] for item in live}
    assert dynamodb.get_item(TableName=moto_table, Key=serialize({"pk": "JOB#j1", "sk": "META"})).get("Item")
    assert (report.orphan_messages, report.orphan_idempotency_keys, report.finished) == (3, 1, True)
    assert (report.cleared_messages, report.stale_idempotency_keys) == (0, 0)


def test_leftovers_of_a_clear_are_deleted_by_cleared_through_and_generation(moto_table, dynamodb, sweep_store):
    # Given a conversation cleared through seq 4 (now generation 2) whose clear stopped before deleting
    items = conversation_items(
        "cleared",
        meta={"generation": 2, "cleared_through": 4},
        messages=range(1, 7),
        idempotency_keys={"old-a": 0, "old-b": 1, "current": 2},
    )
    put_items(dynamodb, moto_table, items)

    # When the sweeper runs
    report = sweeper_on(sweep_store).sweep(lambda: PLENTY_OF_TIME_MS)

    # Then messages up to seq 4 and the keys of older generations are gone; the rest stays
    expected = {META, message_sk(5), message_sk(6), idempotency_key_sk("current")}
    assert sort_keys(dynamodb, moto_table, "cleared") == expected
    assert (report.cleared_messages, report.stale_idempotency_keys) == (4, 2)
    assert (report.orphan_messages, report.orphan_idempotency_keys) == (0, 0)


def test_a_conversation_without_cleared_through_keeps_every_message(moto_table, dynamodb, sweep_store):
    # Given a conversation never cleared (no cleared_through: nothing is dead), generation 0 keys
    items = conversation_items("fresh", meta={}, messages=range(1, 5), idempotency_keys={"k": 0})
    put_items(dynamodb, moto_table, items)
    # When the sweeper runs
    report = sweeper_on(sweep_store).sweep(lambda: PLENTY_OF_TIME_MS)
    # Then nothing is deleted
    assert sort_keys(dynamodb, moto_table, "fresh") == {item["sk"] for item in items}
    assert report.scanned == len(items) and report.cleared_messages == 0


def test_partitions_spanning_scan_pages_are_judged_by_their_meta(moto_table, dynamodb, sweep_store):
    # Given partitions larger than a Scan page: an orphan, and a live conversation cleared through seq 2
    put_items(dynamodb, moto_table, conversation_items("gone", meta=None, messages=range(1, 8)))
    put_items(dynamodb, moto_table, conversation_items("live", meta={"cleared_through": 2}, messages=range(1, 7)))

    # When the sweeper reads three items per page
    report = sweeper_on(sweep_store, page_size=3).sweep(lambda: PLENTY_OF_TIME_MS)

    # Then pages that hold the live conversation's messages without its META do not make them orphans
    assert report.pages >= 5
    assert sort_keys(dynamodb, moto_table, "gone") == set()
    assert sort_keys(dynamodb, moto_table, "live") == {META, *(message_sk(seq) for seq in range(3, 7))}
    assert (report.orphan_messages, report.cleared_messages, report.finished) == (7, 2, True)


class RecreatingStore(SweepStore):
    """Creates the conversation `conversation_id` again right after the Scan page that saw it without META."""

    def __init__(self, *args: Any, conversation_id: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.conversation_id = conversation_id

    def scan_page(self, start_key, limit):
        page = super().scan_page(start_key, limit)
        put_items(self._client, self.table_name, conversation_items(self.conversation_id, meta={"generation": 0}))
        return page


def test_a_conversation_recreated_after_the_scan_is_not_harmed(moto_table, dynamodb):
    # Given messages without META when the Scan reads them, whose conversation is created again before the delete
    put_items(
        dynamodb, moto_table, conversation_items("again", meta=None, messages=range(1, 4), idempotency_keys={"k": 0})
    )
    store = RecreatingStore(moto_table, dynamodb, conversation_id="again")

    # When the sweeper runs
    report = sweeper_on(store).sweep(lambda: PLENTY_OF_TIME_MS)

    # Then the consistent read of META saw the new conversation: its items are not dead and stay
    assert sort_keys(dynamodb, moto_table, "again") == {META, *(message_sk(seq) for seq in range(1, 4)), "IDEMKEY#k"}
    assert report.orphan_messages == report.orphan_idempotency_keys == 0


class ReusingStore(SweepStore):
    """A send reuses the stale Idempotency-Key `key` for the current generation right after META is read."""

    def __init__(self, *args: Any, key: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.key = key

    def get_meta(self, conversation_id):
        meta = super().get_meta(conversation_id)
        item = {"pk": conversation_pk(conversation_id), "sk": idempotency_key_sk(self.key), "seq": 7, "generation": 2}
        put_items(self._client, self.table_name, [item])
        return meta


def test_a_stale_key_reused_before_its_delete_stays(moto_table, dynamodb):
    # Given two keys of generation 1 in a conversation now in generation 2, one of which a send is reusing
    put_items(dynamodb, moto_table, conversation_items("c", meta={"generation": 2}, idempotency_keys={"a": 1, "b": 1}))
    store = ReusingStore(moto_table, dynamodb, key="a")

    # When the sweeper deletes the stale keys
    report = sweeper_on(store).sweep(lambda: PLENTY_OF_TIME_MS)

    # Then the reused key (it names a live message now) stays, the other goes
    assert sort_keys(dynamodb, moto_table, "c") == {META, idempotency_key_sk("a")}
    assert report.stale_idempotency_keys == 1


def test_a_run_out_of_time_stops_and_the_next_run_resumes_where_it_stopped(moto_table, dynamodb, sweep_store):
    # Given 12 orphaned messages in three partitions
    for name in ("a", "b", "c"):
        put_items(dynamodb, moto_table, conversation_items(name, meta=None, messages=range(1, 5)))
    sweeper = sweeper_on(sweep_store, page_size=5)

    # When a run has time for one page only
    first = sweeper.sweep(Budget(pages=1))

    # Then it stops unfinished after that page and leaves a checkpoint
    assert (first.pages, first.finished) == (1, False)
    assert 0 < first.orphan_messages < 12
    assert sweep_store.load_checkpoint() is not None

    # When the next run has time enough
    second = sweeper.sweep(lambda: PLENTY_OF_TIME_MS)

    # Then it scans only what the first left, finishes, and removes the checkpoint
    assert second.finished
    assert first.scanned + second.scanned == 12
    assert first.orphan_messages + second.orphan_messages == 12
    assert all(sort_keys(dynamodb, moto_table, name) == set() for name in ("a", "b", "c"))
    assert sweep_store.load_checkpoint() is None


def test_a_run_with_no_time_left_scans_nothing(moto_table, dynamodb, sweep_store):
    put_items(dynamodb, moto_table, conversation_items("gone", meta=None, messages=range(1, 3)))
    report = sweeper_on(sweep_store).sweep(lambda: RESERVE_MS)
    assert (report.pages, report.finished) == (0, False)
    assert sort_keys(dynamodb, moto_table, "gone") == {message_sk(1), message_sk(2)}


class ThrottlingClient:
    """The DynamoDB client, except that the first `throttled` BatchWriteItem requests leave their last item
    unprocessed."""

    def __init__(self, client: Any, throttled: int):
        self._client = client
        self.throttled = throttled
        self.batch_sizes: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def batch_write_item(self, RequestItems):
        ((table, requests),) = RequestItems.items()
        self.batch_sizes.append(len(requests))
        if self.throttled:
            self.throttled -= 1
            if len(requests) > 1:
                self._client.batch_write_item(RequestItems={table: requests[:-1]})
            return {"UnprocessedItems": {table: requests[-1:]}}
        return self._client.batch_write_item(RequestItems=RequestItems)


def test_unprocessed_deletes_are_retried_in_batches_of_25_with_capped_jittered_backoff(moto_table, dynamodb):
    # Given 30 orphaned messages and a table that throttles the first three requests
    put_items(dynamodb, moto_table, conversation_items("gone", meta=None, messages=range(1, 31)))
    client, sleeps, ceilings = ThrottlingClient(dynamodb, throttled=3), [], []

    def jitter(low: float, high: float) -> float:
        ceilings.append((low, high))
        return high / 2

    store = SweepStore(moto_table, client, backoff_base_s=0.1, backoff_cap_s=0.3, sleep=sleeps.append, jitter=jitter)

    # When the sweeper deletes them
    report = sweeper_on(store).sweep(lambda: PLENTY_OF_TIME_MS)

    # Then every delete is done, at most 25 per request, after waits drawn from [0, min(cap, base * 2^retry)]
    assert report.orphan_messages == 30 and sort_keys(dynamodb, moto_table, "gone") == set()
    assert client.batch_sizes == [25, 1, 1, 1, 5]
    assert ceilings == [(0, 0.1), (0, 0.2), (0, 0.3)]
    assert sleeps == [0.05, 0.1, 0.15]


def test_deletes_that_stay_unprocessed_fail_the_run_before_its_checkpoint_moves(moto_table, dynamodb):
    # Given orphans on a table that never processes a whole batch
    put_items(dynamodb, moto_table, conversation_items("gone", meta=None, messages=range(1, 4)))
    store = SweepStore(moto_table, ThrottlingClient(dynamodb, throttled=100), max_attempts=3, sleep=lambda _s: None)
    # When the sweeper runs, Then it fails naming the unprocessed deletes, and no checkpoint skips that page
    with pytest.raises(DeletionIncompleteError, match="after 3 attempts"):
        sweeper_on(store).sweep(lambda: PLENTY_OF_TIME_MS)
    assert store.load_checkpoint() is None
