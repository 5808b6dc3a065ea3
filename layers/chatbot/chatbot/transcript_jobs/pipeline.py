"""The batch job: one S3 notification in, a summary or a written failure record out, the job record updated.

Permanent problems (the file can never be summarized as it is) end as `failed/<key>.json` plus a failed job
and the message counts as handled. Transient ones (model throttled or unreachable, AWS throttling, another
worker holding the job) raise, so only that message goes back to the queue and, in the end, to the DLQ.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from chatbot.clock import iso_utc
from chatbot.inference import InputTooLongError, ModelInvocationError, ModelUnavailableError
from chatbot.summarization import SummarizationError, summarize_turns
from chatbot.tokens import estimate_tokens
from chatbot.transcript_jobs.events import ObjectCreated, parse_notification
from chatbot.transcript_jobs.keys import failure_key, is_incoming, job_id_for_key, summary_key
from chatbot.transcript_jobs.store import Claim, ClaimOutcome, JobStore
from chatbot.transcript_jobs.summary_document import render_summary_document
from chatbot.transcript_parsing import FailureCode, ParsedTranscript, TranscriptError, parse_transcript

logger = Logger(child=True)

_MISSING_SOURCE_CODES = {"NoSuchKey", "NoSuchVersion", "404"}
_REPLACED_SOURCE_CODES = {"PreconditionFailed", "412"}


SUMMARIZER_FAILED_MESSAGE = "The summarizer could not summarize this transcript."


@dataclass(frozen=True, slots=True)
class JobError:
    """What users see of a transient error: a stable code and a sentence, never the exception's text."""

    code: str
    cause: str

    @property
    def message(self) -> str:
        """While the job is retried."""
        return f"{self.cause} The job will be retried."

    def final_message(self, attempts: int) -> str:
        """Once the last attempt failed too."""
        return f"{self.cause} The job failed {attempts} times and will not be retried (an operator may redrive it)."


_AWS_BUSY_CODES = {
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "SlowDown",
    "ServiceUnavailable",
    "InternalError",
    "InternalServerError",
}


def retry_error(exc: BaseException) -> JobError:
    """The user-facing code and sentence for a transient error (the API's `last_error_code` and `last_error`)."""
    if isinstance(exc, ModelUnavailableError):
        return JobError("summarizer_unavailable", "The summarizer was busy or unavailable.")
    if isinstance(exc, OutOfTimeError):
        return JobError("out_of_time", "The transcript could not be summarized within one run of the function.")
    if isinstance(exc, RetryLaterError):
        return JobError("in_progress", "Another worker was summarizing this file.")
    if isinstance(exc, ClientError):
        if str(exc.response.get("Error", {}).get("Code", "")) in _AWS_BUSY_CODES:
            return JobError("storage_busy", "Storage was busy.")
        return JobError("storage_error", "The transcript or its results could not be read or written.")
    return JobError("internal_error", "The job hit an unexpected error.")


class OutOfTimeError(Exception):
    """Too little of the invocation is left to start another summarizer call: fail this message now (it is
    retried) rather than be killed by the function's timeout with the job left processing."""


class RetryLaterError(Exception):
    """Another worker holds this job; the message should come back after its visibility timeout."""


class Result(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DUPLICATE = "duplicate"
    STALE = "stale"
    IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class ObjectResult:
    key: str
    result: Result
    job_id: str | None = None
    detail: str = ""


class TranscriptJobProcessor:
    """Summarizes the transcripts named by S3 notifications; AWS clients and the summarizer are injected."""

    def __init__(
        self,
        *,
        s3: Any,
        jobs: JobStore,
        summarize: Callable[[list[str]], list[str]],
        summarizer_label: dict[str, str],
        max_bytes: int,
        max_tokens: int,
        max_input_tokens: int,
        lease_s: int,
        call_reserve_ms: int = 0,
        clock: Callable[[], float] = time.time,
    ):
        self._s3 = s3
        self._jobs = jobs
        self._summarize = summarize
        self._summarizer_label = summarizer_label
        self._max_bytes = max_bytes
        # Longer transcripts (estimated) fail as too long before the summarizer is paid for.
        self._max_tokens = max_tokens
        self._max_input_tokens = max_input_tokens
        self._lease_s = lease_s
        # A summarizer call is only started while at least this much of the invocation remains.
        self._call_reserve_ms = call_reserve_ms
        self._clock = clock

    def process_message(
        self,
        body: str,
        *,
        receive_count: int = 1,
        max_receive_count: int = 0,
        remaining_ms: Callable[[], int] | None = None,
    ) -> list[ObjectResult]:
        """Handle every object in one SQS message body; raises when the message must be retried.

        On the message's last receive (`receive_count` >= `max_receive_count`, the queue's redrive policy) a
        transient error fails the job with its reason instead of leaving it queued while the message sits in
        the DLQ; the error is still raised, so the message lands in the DLQ and a redrive retries the job.
        With `remaining_ms` (the Lambda context's), no summarizer call starts with less than the call reserve
        left: the message fails with OutOfTimeError instead of the invocation timing out."""
        final_attempt = receive_count if 0 < max_receive_count <= receive_count else 0
        return [
            self.process_object(created, final_attempt=final_attempt, remaining_ms=remaining_ms)
            for created in parse_notification(body)
        ]

    def process_object(
        self, source: ObjectCreated, *, final_attempt: int = 0, remaining_ms: Callable[[], int] | None = None
    ) -> ObjectResult:
        if not is_incoming(source.key):
            return ObjectResult(source.key, Result.IGNORED, detail="not a transcript under incoming/")
        job_id = job_id_for_key(source.key)
        try:
            return self._process_incoming(source, job_id, remaining_ms)
        except RetryLaterError:
            raise  # a live worker holds the job and will finish it
        except Exception as exc:
            if final_attempt:
                self._give_up(source, job_id, retry_error(exc), final_attempt)
            raise

    def _give_up(self, source: ObjectCreated, job_id: str, error: JobError, attempts: int) -> None:
        """The message's last receive failed: the job ends failed with the reason, and a failure record is
        written, rather than staying queued (best effort: a failure here is logged, the message still fails)."""
        reason = error.final_message(attempts)
        extra = {"key": source.key, "job_id": job_id, "code": error.code}
        try:
            if not self._jobs.give_up(job_id, FailureCode.RETRIES_EXHAUSTED.value, error.code, reason):
                return  # finished or taken over meanwhile: nothing left in limbo
            document = {
                "error": {
                    "code": FailureCode.RETRIES_EXHAUSTED.value,
                    "message": reason,
                    "last_error_code": error.code,
                },
                "job_id": job_id,
                "source": _source_fields(source),
                "failed_at": iso_utc(self._clock(), "seconds"),
            }
            body = json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8")
            self._put_document(source.bucket, failure_key(source.key), body)
            logger.error("transcript job failed on its last receive", extra=extra)
        except Exception:
            logger.exception("transcript job could not be marked failed", extra=extra)

    def _process_incoming(
        self, source: ObjectCreated, job_id: str, remaining_ms: Callable[[], int] | None
    ) -> ObjectResult:
        claim = self._jobs.claim(job_id, source, lease_s=self._lease_s)
        if claim.outcome == ClaimOutcome.IN_PROGRESS:
            raise RetryLaterError(f"job {job_id} for {source.key} is being processed by another worker")
        if claim.outcome != ClaimOutcome.CLAIMED:
            logger.info("skipping notification", extra={"key": source.key, "outcome": claim.outcome.value})
            return ObjectResult(source.key, Result(claim.outcome.value), job_id)
        try:
            return self._summarize_claimed(source, job_id, claim, self._timed(remaining_ms))
        except Exception as exc:
            # Hand the job back so the retried message can take it at once, then let the message fail. Users
            # see a code and a sentence; the exception itself goes to the logs only.
            error = retry_error(exc)
            logger.exception(
                "transcript job will be retried",
                extra={"key": source.key, "job_id": job_id, "code": error.code, "error_type": type(exc).__name__},
            )
            self._jobs.release(job_id, claim.revision, error.code, error.message)
            raise

    def _timed(self, remaining_ms: Callable[[], int] | None) -> Callable[[list[str]], list[str]]:
        """The summarizer, refusing to start a call with less than the call reserve left of the invocation."""
        if remaining_ms is None:
            return self._summarize

        def summarize(texts: list[str]) -> list[str]:
            left = remaining_ms()
            if left < self._call_reserve_ms:
                raise OutOfTimeError(f"{left} ms left, {self._call_reserve_ms} ms needed for a summarizer call")
            return self._summarize(texts)

        return summarize

    def _summarize_claimed(
        self, source: ObjectCreated, job_id: str, claim: Claim, summarize: Callable[[list[str]], list[str]]
    ) -> ObjectResult:
        started = time.perf_counter()
        timings: dict[str, float] = {}
        parsed: ParsedTranscript | None = None
        try:
            data = self._download(source)
            timings["download_ms"] = _elapsed_ms(started)
            parsed = parse_transcript(data)
            timings["parse_ms"] = _elapsed_ms(started) - timings["download_ms"]
            self._check_length(parsed)
            summary = summarize_turns(parsed.turns, summarize, max_input_tokens=self._max_input_tokens)
            timings["summarize_ms"] = _elapsed_ms(started) - timings["download_ms"] - timings["parse_ms"]
        except _SourceReplacedError:
            self._jobs.release(
                job_id, claim.revision, "source_replaced", "A newer upload replaced this file before it was read."
            )
            return ObjectResult(source.key, Result.STALE, job_id, "a newer upload replaced this version")
        except TranscriptError as exc:
            if exc.__cause__ is not None:  # the parser's own exception: for operators, never in the record
                logger.warning("malformed transcript", extra={"key": source.key, "error": repr(exc.__cause__)})
            return self._record_failure(source, job_id, claim, exc.code, exc.message, parsed)
        except (InputTooLongError, ModelInvocationError, SummarizationError) as exc:
            logger.warning(
                "summarizer failed for good",
                extra={"key": source.key, "job_id": job_id, "error_type": type(exc).__name__, "error": str(exc)},
            )
            return self._record_failure(
                source, job_id, claim, FailureCode.SUMMARIZER_FAILED, SUMMARIZER_FAILED_MESSAGE, parsed
            )
        timings["total_ms"] = _elapsed_ms(started)
        document = {
            "summary": summary.summary,
            "job_id": job_id,
            "source": _source_fields(source),
            "format": parsed.format.value,
            "speakers": parsed.speakers,
            "turns": len(parsed.turns),
            "duration_s": parsed.duration_s,
            "chunk_count": summary.chunk_count,
            "rounds": summary.rounds,
            "summarizer": self._summarizer_label,
            "timings_ms": {name: round(value, 1) for name, value in timings.items()},
            "created_at": iso_utc(self._clock(), "seconds"),
        }
        output_key = summary_key(source.key)
        self._put_document(source.bucket, output_key, render_summary_document(document, parsed.turns))
        self._s3.delete_object(Bucket=source.bucket, Key=failure_key(source.key))
        fields = {key: document[key] for key in ("summary", "format", "speakers", "turns", "duration_s")}
        fields |= {"chunk_count": summary.chunk_count, "summary_key": output_key, "timings_ms": document["timings_ms"]}
        if not self._jobs.succeed(job_id, claim.revision, fields):
            logger.warning("job taken over before it finished", extra={"job_id": job_id, "key": source.key})
        logger.info("transcript summarized", extra={"key": source.key, "job_id": job_id, **document["timings_ms"]})
        return ObjectResult(source.key, Result.SUCCEEDED, job_id)

    def _check_length(self, parsed: ParsedTranscript) -> None:
        tokens = sum(estimate_tokens(f"{turn.speaker}: {turn.text}") for turn in parsed.turns)
        if tokens > self._max_tokens:
            raise TranscriptError(
                FailureCode.TOO_LONG,
                f"the transcript is about {tokens:,} tokens long; at most {self._max_tokens:,} can be summarized",
            )

    def _download(self, source: ObjectCreated) -> bytes:
        """The object as notified; too large, missing or replaced objects never reach the parser."""
        request: dict[str, Any] = {"Bucket": source.bucket, "Key": source.key}
        if source.version_id:
            request["VersionId"] = source.version_id
        elif source.etag:
            request["IfMatch"] = f'"{source.etag}"'
        try:
            response = self._s3.get_object(**request)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _MISSING_SOURCE_CODES:
                raise TranscriptError(
                    FailureCode.SOURCE_MISSING, "the object was deleted before it could be read"
                ) from None
            if code in _REPLACED_SOURCE_CODES:
                raise _SourceReplacedError from None
            raise
        body = response["Body"]
        try:
            size = int(response.get("ContentLength", 0))
            if size > self._max_bytes:
                raise TranscriptError(FailureCode.TOO_LARGE, _too_large(size, self._max_bytes))
            data = body.read(self._max_bytes + 1)
            if len(data) > self._max_bytes:
                raise TranscriptError(FailureCode.TOO_LARGE, _too_large(len(data), self._max_bytes))
            return data
        finally:
            body.close()

    def _record_failure(
        self,
        source: ObjectCreated,
        job_id: str,
        claim: Claim,
        code: FailureCode,
        message: str,
        parsed: ParsedTranscript | None,
    ) -> ObjectResult:
        output_key = failure_key(source.key)
        document = {
            "error": {"code": code.value, "message": message},
            "job_id": job_id,
            "source": _source_fields(source),
            "format": parsed.format.value if parsed else None,
            "failed_at": iso_utc(self._clock(), "seconds"),
        }
        self._put_document(
            source.bucket, output_key, json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8")
        )
        self._s3.delete_object(Bucket=source.bucket, Key=summary_key(source.key))
        fields = {"failure_code": code.value, "reason": message, "failed_key": output_key}
        if parsed:
            fields["format"] = parsed.format.value
        self._jobs.fail(job_id, claim.revision, fields)
        logger.warning("transcript failed", extra={"key": source.key, "job_id": job_id, "code": code.value})
        return ObjectResult(source.key, Result.FAILED, job_id, message)

    def _put_document(self, bucket: str, key: str, body: bytes) -> None:
        self._s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json; charset=utf-8")


class _SourceReplacedError(Exception):
    """The object changed between the notification and the read; the newer upload has its own notification."""


def _source_fields(source: ObjectCreated) -> dict[str, Any]:
    return {
        "bucket": source.bucket,
        "key": source.key,
        "version_id": source.version_id,
        "etag": source.etag,
        "size_bytes": source.size,
    }


def _too_large(size: int, limit: int) -> str:
    return f"the file is {size:,} bytes; the limit is {limit:,} bytes"


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
