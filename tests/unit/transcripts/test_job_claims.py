"""Who may summarize a notification, given the job record: the rules behind idempotency and ordering."""

import pytest
from chatbot.transcript_jobs.events import ObjectCreated
from chatbot.transcript_jobs.store import ClaimOutcome, decide_claim

NOW = 1_000_000.0
SOURCE = ObjectCreated("bucket", "incoming/a.txt", 10, "etag-2", "version-2", "00000000000000B0")


def job(status, identity="version-2", sequencer="00000000000000B0", lease_until=None):
    record = {"status": status, "source_identity": identity, "sequencer": sequencer}
    if lease_until is not None:
        record["lease_until"] = lease_until
    return record


@pytest.mark.parametrize(
    ("record", "outcome"),
    [
        (None, ClaimOutcome.CLAIMED),
        ({"status": "queued"}, ClaimOutcome.CLAIMED),
        (job("succeeded"), ClaimOutcome.DUPLICATE),
        (job("failed"), ClaimOutcome.DUPLICATE),
        (job("processing", lease_until=NOW + 60), ClaimOutcome.IN_PROGRESS),
        (job("processing", lease_until=NOW - 1), ClaimOutcome.CLAIMED),
        (job("succeeded", identity="version-1", sequencer="00000000000000A0"), ClaimOutcome.CLAIMED),
        (job("succeeded", identity="version-3", sequencer="0000000000000C00"), ClaimOutcome.STALE),
        (job("processing", "version-1", "00000000000000A0", lease_until=NOW + 60), ClaimOutcome.IN_PROGRESS),
        (job("processing", "version-1", "00000000000000A0", lease_until=NOW - 1), ClaimOutcome.CLAIMED),
        (job("succeeded", identity="version-1", sequencer=""), ClaimOutcome.CLAIMED),
    ],
    ids=[
        "no-record",
        "queued-by-upload-api",
        "same-version-succeeded",
        "same-version-failed",
        "same-version-in-progress",
        "same-version-lease-expired",
        "newer-version",
        "older-version-after-newer",
        "newer-version-waits-for-older-in-progress",
        "newer-version-takes-over-dead-worker",
        "unknown-order-new-content",
    ],
)
def test_claim_decisions(record, outcome):
    # Given a job record and a notification for version-2 / etag-2
    # When / Then
    assert decide_claim(record, SOURCE, NOW) == outcome


def test_sequencers_of_different_lengths_compare_as_numbers():
    # Given a stored short sequencer and a longer (later) incoming one
    later = ObjectCreated("bucket", "incoming/a.txt", 10, "etag-9", None, "1000")

    # When / Then
    assert decide_claim(job("succeeded", identity="etag-1", sequencer="FFF"), later, NOW) == ClaimOutcome.CLAIMED
