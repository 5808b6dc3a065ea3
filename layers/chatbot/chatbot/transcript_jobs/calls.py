"""A summarized call as a conversation reads it: the caller's succeeded job, its summary and its numbered turns.

The job record holds the summary; the summary document (`summaries/<key>.json`) holds every turn with its times.
Both are read again for each question, so a job deleted or expired since the conversation began is noticed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chatbot.call_context import CallTurn, call_turns
from chatbot.errors import ConflictError, NotFoundError
from chatbot.transcript_jobs.store import JobStatus, JobStore
from chatbot.transcript_jobs.summary_document import all_turns


@dataclass(frozen=True, slots=True)
class Call:
    job_id: str
    filename: str | None
    summary: str
    turns: list[CallTurn]  # numbered in transcript order, every one with text


class CallNotFoundError(NotFoundError):
    """No such job, or someone else's."""


class CallTranscripts:
    def __init__(self, jobs: JobStore, s3: Any, default_bucket: str):
        self._jobs = jobs
        self._s3 = s3
        self._default_bucket = default_bucket

    def load(self, owner: str, job_id: str) -> Call:
        """The owner's summarized call; CallNotFoundError, or ConflictError when it cannot be asked about."""
        job = self._jobs.get(job_id)
        if job is None or job.get("owner") != owner:
            raise CallNotFoundError("Transcript job not found.")
        if job.get("status") != JobStatus.SUCCEEDED or not job.get("summary_key"):
            raise ConflictError(
                f"The transcript job is {job.get('status')}: only a summarized call can be asked about.",
                retry_after_s=5 if job.get("status") in (JobStatus.QUEUED, JobStatus.PROCESSING) else None,
            )
        turns = self._turns(job.get("bucket") or self._default_bucket, job["summary_key"])
        if not turns:
            raise ConflictError(
                "This call's summary has no transcript turns stored (it was summarized before turns were kept): "
                "upload the transcript again to ask about it."
            )
        return Call(job_id, job.get("filename"), str(job.get("summary") or ""), turns)

    def _turns(self, bucket: str, key: str) -> list[CallTurn]:
        try:
            body = self._s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except self._s3.exceptions.NoSuchKey:
            raise ConflictError("This call's transcript is no longer stored: it cannot be asked about.") from None
        return [turn for turn in call_turns(all_turns(body) or []) if turn.text.strip()]
