"""Job records in the shared table: `pk=JOB#<id> sk=META`, listed per owner through gsi1 (`USER#<sub>#JOB`).

Every write after the first is conditional on the record's `revision`, so two deliveries of one S3 event
(or two versions of one key) can never both summarize, and a worker whose claim was taken over cannot
overwrite the newer result.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from chatbot.clock import iso_utc
from chatbot.cursor import decode_cursor, encode_cursor
from chatbot.dynamodb import deserialize, serialize
from chatbot.transcript_jobs.events import ObjectCreated

_MAX_CLAIM_ATTEMPTS = 3
_JOB_CURSOR = frozenset({"pk", "sk", "gsi1pk", "gsi1sk"})
# The failure code of a job given up after transient errors on every receive (FailureCode.RETRIES_EXHAUSTED).
_RETRIES_EXHAUSTED = "retries_exhausted"
# S3 sequencers are hex strings of varying length; compare them left-padded to one width.
_SEQUENCER_WIDTH = 64


class JobStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ClaimOutcome(StrEnum):
    CLAIMED = "claimed"  # this worker summarizes the object now
    DUPLICATE = "duplicate"  # this version already has its result
    STALE = "stale"  # a newer version of the key was handled already
    IN_PROGRESS = "in_progress"  # another worker holds the job: try again later


@dataclass(frozen=True, slots=True)
class Claim:
    outcome: ClaimOutcome
    revision: int = 0


def _padded(sequencer: str | None) -> str:
    return (sequencer or "").upper().rjust(_SEQUENCER_WIDTH, "0")


def decide_claim(job: dict | None, source: ObjectCreated, now: float) -> ClaimOutcome:
    """Whether a worker holding a notification for `source` may summarize it, given the job record."""
    if job is None or job.get("status") == JobStatus.QUEUED:
        return ClaimOutcome.CLAIMED
    same_source = job.get("source_identity") == source.identity
    lease_alive = job.get("status") == JobStatus.PROCESSING and float(job.get("lease_until", 0)) > now
    if same_source:
        if lease_alive:
            return ClaimOutcome.IN_PROGRESS
        if job.get("status") == JobStatus.PROCESSING or job.get("failure_code") == _RETRIES_EXHAUSTED:
            return ClaimOutcome.CLAIMED  # a dead worker's job, or one given up on transient errors (a redrive)
        return ClaimOutcome.DUPLICATE
    if job.get("sequencer") and source.sequencer and _padded(source.sequencer) < _padded(job["sequencer"]):
        return ClaimOutcome.STALE
    # A newer version waits for the one in progress, so results land in upload order.
    return ClaimOutcome.IN_PROGRESS if lease_alive else ClaimOutcome.CLAIMED


class JobStore:
    PK_PREFIX = "JOB#"
    META = "META"

    def __init__(self, table_name: str, client: Any, *, ttl_days: int = 90, clock=time.time):
        self.table_name = table_name
        self._client = client
        self._ttl_s = ttl_days * 86_400
        self._clock = clock

    @staticmethod
    def _key(job_id: str) -> dict[str, str]:
        return {"pk": f"{JobStore.PK_PREFIX}{job_id}", "sk": JobStore.META}

    @staticmethod
    def _owner_partition(owner: str) -> str:
        return f"USER#{owner}#JOB"

    def _read(self, job_id: str) -> dict | None:
        item = self._client.get_item(TableName=self.table_name, Key=serialize(self._key(job_id)), ConsistentRead=True)
        return deserialize(item["Item"]) if "Item" in item else None

    def get(self, job_id: str) -> dict | None:
        item = self._read(job_id)
        return _public(item) if item else None

    def delete(self, job_id: str) -> None:
        self._client.delete_item(TableName=self.table_name, Key=serialize(self._key(job_id)))

    def create_queued(self, job_id: str, *, owner: str, source_key: str, filename: str, bucket: str) -> dict:
        """A job announced before its file arrives (upload API, CLI); replaces nothing that exists."""
        now = self._clock()
        item = {
            **self._key(job_id),
            "job_id": job_id,
            "owner": owner,
            "gsi1pk": self._owner_partition(owner),
            # Microseconds keep jobs created in one burst in their creation order.
            "gsi1sk": f"{iso_utc(now, 'microseconds')}#{job_id}",
            "status": JobStatus.QUEUED.value,
            "bucket": bucket,
            "source_key": source_key,
            "filename": filename,
            "created_at": iso_utc(now),
            "updated_at": iso_utc(now),
            "expires_at": int(now) + self._ttl_s,
            "revision": 0,
        }
        self._client.put_item(
            TableName=self.table_name, Item=serialize(item), ConditionExpression="attribute_not_exists(pk)"
        )
        return _public(item)

    def list_for_owner(self, owner: str, *, limit: int, cursor: str | None = None) -> tuple[list[dict], str | None]:
        """The owner's jobs, newest first, from `cursor` on, and the cursor of the next page (None on the last)."""
        partition = self._owner_partition(owner)
        start_key = decode_cursor(
            cursor,
            attributes=_JOB_CURSOR,
            belongs=lambda key: (
                key["gsi1pk"] == partition and key["sk"] == JobStore.META and key["pk"].startswith(JobStore.PK_PREFIX)
            ),
        )
        query: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :owner",
            "ExpressionAttributeValues": serialize({":owner": self._owner_partition(owner)}),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if start_key:
            query["ExclusiveStartKey"] = serialize(start_key)
        page = self._client.query(**query)
        last = page.get("LastEvaluatedKey")
        return [_public(deserialize(item)) for item in page.get("Items", [])], encode_cursor(
            deserialize(last) if last else None
        )

    def claim(self, job_id: str, source: ObjectCreated, *, lease_s: int) -> Claim:
        """Take the job for `source` if nobody has summarized it or is summarizing it now."""
        for _ in range(_MAX_CLAIM_ATTEMPTS):
            item = self._read(job_id)
            now = self._clock()
            outcome = decide_claim(item, source, now)
            if outcome != ClaimOutcome.CLAIMED:
                return Claim(outcome)
            revision = int(item["revision"]) + 1 if item else 1
            same_source = bool(item) and item.get("source_identity") == source.identity
            assigned = {
                "status": JobStatus.PROCESSING.value,
                "job_id": job_id,
                "bucket": source.bucket,
                "source_key": source.key,
                "source_identity": source.identity,
                "source_etag": source.etag or "",
                "source_version_id": source.version_id or "",
                "sequencer": source.sequencer or "",
                "lease_until": int(now) + lease_s,
                "started_at": iso_utc(now),
                "updated_at": iso_utc(now),
                "expires_at": int(now) + self._ttl_s,
                "revision": revision,
                "attempts": int(item.get("attempts", 0)) + 1 if same_source else 1,
            }
            kept = {"created_at": iso_utc(now), "filename": source.key.rsplit("/", 1)[-1]}
            cleared = (
                "failure_code",
                "reason",
                "summary",
                "summary_key",
                "failed_key",
                "finished_at",
                "last_error",
                "last_error_code",
            )
            names = {f"#{name}": name for name in (*assigned, *kept, *cleared)}
            values = {f":{name}": value for name, value in (assigned | kept).items()}
            update = (
                "SET "
                + ", ".join(
                    [f"#{name} = :{name}" for name in assigned] + [f"#{n} = if_not_exists(#{n}, :{n})" for n in kept]
                )
                + " REMOVE "
                + ", ".join(f"#{name}" for name in cleared)
            )
            if item:
                condition = "#revision = :previous"
                values[":previous"] = int(item["revision"])
            else:
                condition = "attribute_not_exists(pk)"
            try:
                self._client.update_item(
                    TableName=self.table_name,
                    Key=serialize(self._key(job_id)),
                    UpdateExpression=update,
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=serialize(values),
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                continue  # someone else wrote in between: decide again on the fresh record
            return Claim(ClaimOutcome.CLAIMED, revision)
        return Claim(ClaimOutcome.IN_PROGRESS)

    def succeed(self, job_id: str, revision: int, result: dict[str, Any]) -> bool:
        return self._finish(job_id, revision, JobStatus.SUCCEEDED, result)

    def fail(self, job_id: str, revision: int, result: dict[str, Any]) -> bool:
        return self._finish(job_id, revision, JobStatus.FAILED, result)

    def release(self, job_id: str, revision: int, code: str, message: str) -> bool:
        """Hand a claimed job back (transient failure) so the retried message can claim it at once; `code` and
        `message` are what users see of the error (never the exception's own text)."""
        fields = {"last_error_code": code, "last_error": message[:1000]}
        return self._finish(job_id, revision, JobStatus.QUEUED, fields, finished=False)

    def give_up(self, job_id: str, failure_code: str, error_code: str, reason: str) -> bool:
        """Fail a job whose message had its last receive, unless it finished or a live worker holds it: True when
        the job was marked failed."""
        now = self._clock()
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key=serialize(self._key(job_id)),
                UpdateExpression=(
                    "SET #status = :failed, #failure_code = :failure_code, #last_error_code = :error_code, "
                    "#reason = :reason, #updated_at = :now_iso, #finished_at = :now_iso REMOVE #lease_until"
                ),
                ConditionExpression=(
                    "attribute_exists(pk) AND (#status = :queued OR (#status = :processing AND #lease_until < :now))"
                ),
                ExpressionAttributeNames={
                    "#status": "status",
                    "#failure_code": "failure_code",
                    "#last_error_code": "last_error_code",
                    "#reason": "reason",
                    "#updated_at": "updated_at",
                    "#finished_at": "finished_at",
                    "#lease_until": "lease_until",
                },
                ExpressionAttributeValues=serialize(
                    {
                        ":failed": JobStatus.FAILED.value,
                        ":queued": JobStatus.QUEUED.value,
                        ":processing": JobStatus.PROCESSING.value,
                        ":failure_code": failure_code,
                        ":error_code": error_code,
                        ":reason": reason[:1000],
                        ":now_iso": iso_utc(now),
                        ":now": int(now),
                    }
                ),
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def _finish(
        self, job_id: str, revision: int, status: JobStatus, fields: dict[str, Any], *, finished: bool = True
    ) -> bool:
        """Write the outcome if the claim is still ours; False when another worker took the job over."""
        now = self._clock()
        values = {**{k: v for k, v in fields.items() if v is not None}, "updated_at": iso_utc(now)}
        if finished:
            values["finished_at"] = iso_utc(now)
        names = {f"#f{index}": name for index, name in enumerate(values)}
        assignments = ", ".join(f"#f{index} = :f{index}" for index in range(len(values)))
        attribute_values = {f":f{index}": value for index, value in enumerate(values.values())}
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key=serialize(self._key(job_id)),
                UpdateExpression=f"SET {assignments}, #status = :status REMOVE #lease_until",
                ConditionExpression="#revision = :revision AND #status = :processing",
                ExpressionAttributeNames={
                    **names,
                    "#status": "status",
                    "#revision": "revision",
                    "#lease_until": "lease_until",
                },
                ExpressionAttributeValues=serialize(
                    {
                        **attribute_values,
                        ":status": status.value,
                        ":revision": revision,
                        ":processing": JobStatus.PROCESSING.value,
                    }
                ),
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return False
        return True


_INTERNAL_FIELDS = {"pk", "sk", "gsi1pk", "gsi1sk", "revision", "lease_until", "source_identity"}


def _public(item: dict) -> dict:
    return {key: value for key, value in item.items() if key not in _INTERNAL_FIELDS}
