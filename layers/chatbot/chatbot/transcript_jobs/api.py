"""The transcripts API: request an upload (presigned POST + job id), list the caller's jobs, read or delete one job."""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any, Literal

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from chatbot.clock import iso_utc
from chatbot.errors import NotFoundError
from chatbot.quotas import UserQuota
from chatbot.transcript_jobs.keys import UPLOADS_PREFIX, failure_key, job_id_for_key, summary_key
from chatbot.transcript_jobs.store import JobStore
from chatbot.transcript_jobs.summary_document import TurnsExcerpt, first_turns

logger = Logger(child=True)

# A file name becomes the last part of the object key: no path separators, no control characters.
FILENAME_PATTERN = r"^[^/\\\x00-\x1f\x7f]+$"
# GET of one job returns at most this many turns, read from at most this many bytes of the summary document:
# the response stays well under Lambda's 6 MB payload limit and the call is as quick for huge transcripts.
MAX_TURNS = 500
TURNS_READ_BYTES = 1024 * 1024


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    filename: str = Field(
        min_length=1,
        max_length=200,
        pattern=FILENAME_PATTERN,
        description="Name of the transcript file (its extension does not matter: the format is detected).",
    )

    @field_validator("filename")
    @classmethod
    def _not_a_relative_path(cls, filename: str) -> str:
        if filename in (".", ".."):
            raise ValueError("a file name cannot be '.' or '..'")
        return filename


class Upload(BaseModel):
    url: str = Field(description="S3 URL to POST the file to as multipart/form-data.")
    method: Literal["POST"] = "POST"
    fields: dict[str, str] = Field(
        description="Form fields to send, in this order, before the `file` field (the last one) that holds the bytes."
    )
    content_type: str = Field(description="The file's content type; already in `fields` (S3 checks it).")
    expires_at: str = Field(description="The form's policy stops working at this time (ISO 8601, UTC).")
    max_bytes: int = Field(description="S3 refuses larger files (the policy's content-length-range).")


# The content type S3 requires for an upload, by file extension; the format itself is detected from the content.
_CONTENT_TYPES = {".json": "application/json", ".vtt": "text/vtt", ".srt": "application/x-subrip"}
_DEFAULT_CONTENT_TYPE = "text/plain"


def upload_content_type(filename: str) -> str:
    extension = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return _CONTENT_TYPES.get(extension, _DEFAULT_CONTENT_TYPE)


class TranscriptTurn(BaseModel):
    speaker: str
    text: str
    start_s: float | None = Field(None, description="Seconds into the call the turn starts, where the format says.")
    end_s: float | None = Field(None, description="Seconds into the call the turn ends, where the format says.")


class Job(BaseModel):
    job_id: str
    status: Literal["queued", "processing", "succeeded", "failed"]
    filename: str | None = None
    source_key: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    finished_at: str | None = None
    attempts: int | None = Field(None, description="How many times a worker took the job.")
    format: str | None = Field(None, description="Detected transcript format.")
    speakers: list[str] | None = None
    turns: int | None = Field(None, description="Speaker turns after merging consecutive turns of one speaker.")
    duration_s: float | None = None
    chunk_count: int | None = Field(None, description="Chunks the transcript was split into for the summarizer.")
    summary: str | None = Field(None, description="Only on GET of one job.")
    summary_key: str | None = None
    transcript: list[TranscriptTurn] | None = Field(
        None,
        description="Only on GET of one succeeded job: the first turns as parsed (the summary covers them all).",
    )
    turns_truncated: bool | None = Field(None, description="True when `transcript` holds only the first turns.")
    failure_code: str | None = Field(
        None, description="empty, unparseable, unknown_format, too_large, no_speech, retries_exhausted, ..."
    )
    reason: str | None = Field(None, description="Why the job failed, in a sentence.")
    last_error_code: str | None = Field(
        None,
        description="summarizer_unavailable, storage_busy, storage_error, internal_error: the latest transient error",
    )
    last_error: str | None = Field(None, description="The latest transient error in a sentence (the job is retried).")


class UploadResponse(BaseModel):
    job: Job
    upload: Upload


class JobList(BaseModel):
    items: list[Job]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; absent on the last page.")


def _job(record: dict, *, with_summary: bool, excerpt: TurnsExcerpt | None = None) -> Job:
    fields = {name: record.get(name) for name in Job.model_fields}
    if not with_summary:
        fields["summary"] = None
    fields["transcript"] = excerpt.turns if excerpt else None
    fields["turns_truncated"] = excerpt.truncated if excerpt else None
    return Job.model_validate(fields)


class TranscriptsService:
    def __init__(
        self,
        *,
        jobs: JobStore,
        s3: Any,
        bucket: str,
        url_expires_s: int,
        max_bytes: int,
        max_turns: int = MAX_TURNS,
        turns_read_bytes: int = TURNS_READ_BYTES,
        clock=time.time,
        quota: UserQuota | None = None,
    ):
        self._jobs = jobs
        self._s3 = s3
        self._bucket = bucket
        self._url_expires_s = url_expires_s
        self._max_bytes = max_bytes
        self._max_turns = max_turns
        self._turns_read_bytes = turns_read_bytes
        self._clock = clock
        self._quota = quota

    def request_upload(self, owner: str, filename: str) -> UploadResponse:
        """A queued job and a presigned POST for its file: one key, 1 byte to `max_bytes`, one content type, a
        short expiry. The job starts when the file lands. Each form counts against the caller's upload quota:
        every upload becomes summarizer work."""
        if self._quota:
            self._quota.take(owner)
        key = f"{UPLOADS_PREFIX}{uuid.uuid4().hex}/{filename}"
        record = self._jobs.create_queued(
            job_id_for_key(key), owner=owner, source_key=key, filename=filename, bucket=self._bucket
        )
        content_type = upload_content_type(filename)
        post = self._s3.generate_presigned_post(
            Bucket=self._bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, self._max_bytes]],
            ExpiresIn=self._url_expires_s,
        )
        upload = Upload(
            url=post["url"],
            fields={name: str(value) for name, value in post["fields"].items()},
            content_type=content_type,
            expires_at=iso_utc(self._clock() + self._url_expires_s, "seconds"),
            max_bytes=self._max_bytes,
        )
        return UploadResponse(job=_job(record, with_summary=False), upload=upload)

    def list_jobs(self, owner: str, limit: int, cursor: str | None) -> JobList:
        records, next_cursor = self._jobs.list_for_owner(owner, limit=limit, cursor=cursor)
        return JobList(items=[_job(record, with_summary=False) for record in records], next_cursor=next_cursor)

    def get_job(self, owner: str, job_id: str) -> Job:
        record = self._owned(owner, job_id)
        excerpt = None
        if record.get("status") == "succeeded" and record.get("summary_key"):
            excerpt = self._first_turns(record.get("bucket") or self._bucket, record["summary_key"], job_id)
        return _job(record, with_summary=True, excerpt=excerpt)

    def delete_job(self, owner: str, job_id: str) -> None:
        """Delete the job's objects (the upload, every version of it, its summary and failure record), then the
        job record. Objects first: a failure leaves the job visible, so the call can be repeated."""
        record = self._owned(owner, job_id)
        bucket = record.get("bucket") or self._bucket
        source_key = record.get("source_key")
        if source_key:
            self._delete_all_versions(bucket, source_key)
            for key in (summary_key(source_key), failure_key(source_key)):
                self._delete_all_versions(bucket, key)
        self._jobs.delete(job_id)
        logger.info("transcript job deleted", extra={"job_id": job_id})

    def _delete_all_versions(self, bucket: str, key: str) -> None:
        """Every version and delete marker of exactly `key` (the bucket is versioned)."""
        paginator = self._s3.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=bucket, Prefix=key):
            versions = [
                {"Key": item["Key"], "VersionId": item["VersionId"]}
                for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
                if item["Key"] == key
            ]
            if versions:
                self._s3.delete_objects(Bucket=bucket, Delete={"Objects": versions, "Quiet": True})

    def _owned(self, owner: str, job_id: str) -> dict:
        record = self._jobs.get(job_id) if _is_uuid(job_id) else None
        if record is None or record.get("owner") != owner:
            raise NotFoundError(f"No transcript job {job_id}.")
        return record

    def _first_turns(self, bucket: str, key: str, job_id: str) -> TurnsExcerpt | None:
        """The first turns from the summary document, reading at most `turns_read_bytes` of it. Without them
        the job is still worth returning (the summary is in the job record), so failures only leave them out."""
        try:
            response = self._s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{self._turns_read_bytes - 1}")
            with contextlib.closing(response["Body"]) as body:
                head = body.read(self._turns_read_bytes)
            total = int(response.get("ContentRange", "").rpartition("/")[2] or response["ContentLength"])
            return first_turns(head, complete=len(head) >= total, max_turns=self._max_turns)
        except (ClientError, ValueError) as exc:  # missing object, no access, not JSON in our shape
            logger.warning("transcript turns not read", extra={"job_id": job_id, "key": key, "error": str(exc)})
            return None


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
