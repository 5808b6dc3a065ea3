"""The batch job's logic against moto S3 + DynamoDB: summaries, failure records, idempotency, retries."""

from pathlib import Path

import boto3
import pytest
from chatbot.inference import ModelInvocationError, ModelUnavailableError
from chatbot.transcript_jobs.events import ObjectCreated
from chatbot.transcript_jobs.keys import failure_key, job_id_for_key, summary_key
from chatbot.transcript_jobs.pipeline import OutOfTimeError, Result, RetryLaterError
from chatbot.transcript_jobs.store import ClaimOutcome
from transcript_events import exists, notification_body, read_json

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "transcripts"
PLAIN_CALL = (FIXTURES / "plain_text.txt").read_bytes()


@pytest.mark.parametrize("name", sorted(path.name for path in FIXTURES.iterdir()))
def test_every_sample_transcript_gets_a_summary_document_and_a_succeeded_job(name, processor, upload, bucket, jobs):
    # Given a sample transcript uploaded under incoming/
    source = upload(f"incoming/samples/{name}", (FIXTURES / name).read_bytes())

    # When its notification is processed
    results = processor.process_message(notification_body(source))

    # Then summaries/<key>.json says what it came from and the job record agrees
    assert [result.result for result in results] == [Result.SUCCEEDED]
    document = read_json(bucket, f"summaries/samples/{name}.json")
    assert document["summary"]
    assert document["source"] == {
        "bucket": bucket,
        "key": source.key,
        "version_id": source.version_id,
        "etag": source.etag,
        "size_bytes": source.size,
    }
    assert document["turns"] >= 1 and document["chunk_count"] == 1 and document["rounds"] == 1
    assert document["speakers"] and document["format"]
    assert document["summarizer"] == {"endpoint": "local-endpoint", "component": "summarizer"}
    assert set(document["timings_ms"]) == {"download_ms", "parse_ms", "summarize_ms", "total_ms"}
    # And it holds every parsed turn (the job record does not: it must stay small)
    assert len(document["transcript"]) == document["turns"]
    assert {turn["speaker"] for turn in document["transcript"]} == set(document["speakers"])
    assert all(turn["text"] for turn in document["transcript"])
    job = jobs.get(job_id_for_key(source.key))
    assert "transcript" not in job
    assert job["status"] == "succeeded"
    assert job["summary"] == document["summary"]
    assert job["summary_key"] == f"summaries/samples/{name}.json"
    assert not exists(bucket, failure_key(source.key))


def test_url_encoded_keys_with_spaces_and_non_ascii_are_decoded(processor, upload, bucket):
    # Given a key S3 would send form-encoded ("+" for spaces, %XX for UTF-8)
    source = upload("incoming/Équipe B/appel du 3 mars + suivi.txt", PLAIN_CALL)

    # When
    body = notification_body(source)
    results = processor.process_message(body)

    # Then the real key was read and the summary sits at the mirrored key
    assert "%C3%89quipe+B" in body
    assert results[0].result == Result.SUCCEEDED
    assert exists(bucket, "summaries/Équipe B/appel du 3 mars + suivi.txt.json")


def test_the_same_version_delivered_twice_is_summarized_once(processor, upload, summarizer):
    # Given
    source = upload("incoming/dup.txt", PLAIN_CALL)
    processor.process_message(notification_body(source))
    calls_after_first = len(summarizer.calls)

    # When the same notification arrives again
    results = processor.process_message(notification_body(source))

    # Then
    assert results[0].result == Result.DUPLICATE
    assert len(summarizer.calls) == calls_after_first


def test_a_reupload_with_new_content_gets_a_new_summary(processor, upload, bucket):
    # Given a first version already summarized
    first = upload("incoming/call.txt", PLAIN_CALL)
    processor.process_message(notification_body(first))

    # When a second version with different content arrives
    second = upload("incoming/call.txt", b"Agent: Second call, about a late delivery.\nCustomer: It never came.\n")
    results = processor.process_message(notification_body(second))

    # Then the summary now describes the second version
    assert results[0].result == Result.SUCCEEDED
    document = read_json(bucket, "summaries/call.txt.json")
    assert document["source"]["version_id"] == second.version_id
    assert "late delivery" in document["summary"]


def test_a_late_notification_for_an_older_version_is_ignored(processor, upload, bucket):
    # Given two versions, the newer one processed first
    older = upload("incoming/order.txt", PLAIN_CALL)
    newer = upload("incoming/order.txt", b"Agent: Newer content.\n")
    processor.process_message(notification_body(newer))

    # When the older version's notification arrives late
    results = processor.process_message(notification_body(older))

    # Then it is stale and the summary still reflects the newer version
    assert results[0].result == Result.STALE
    assert read_json(bucket, "summaries/order.txt.json")["source"]["version_id"] == newer.version_id


def test_a_summarizer_failure_that_retrying_cannot_fix_is_a_failure_record(processor, upload, summarizer, jobs):
    # Given
    summarizer.error = ModelInvocationError("summarizer: ModelError: CUDA error")
    source = upload("incoming/model-bug.txt", PLAIN_CALL)

    # When
    results = processor.process_message(notification_body(source))

    # Then
    assert results[0].result == Result.FAILED
    assert jobs.get(job_id_for_key(source.key))["failure_code"] == "summarizer_failed"


def test_a_throttled_model_fails_only_the_message_and_the_retry_succeeds(processor, upload, summarizer, bucket, jobs):
    # Given the model is throttling
    summarizer.error = ModelUnavailableError("summarizer: ThrottlingException", retry_after_s=5)
    source = upload("incoming/busy.txt", PLAIN_CALL)

    # When the message is processed it raises (so SQS redelivers it) and the job is handed back
    with pytest.raises(ModelUnavailableError):
        processor.process_message(notification_body(source))
    job = jobs.get(job_id_for_key(source.key))
    assert job["status"] == "queued"
    assert job["last_error_code"] == "summarizer_unavailable"
    assert not exists(bucket, failure_key(source.key))

    # When the model recovers and the message comes back
    summarizer.error = None
    results = processor.process_message(notification_body(source))

    # Then
    assert results[0].result == Result.SUCCEEDED
    job = jobs.get(job_id_for_key(source.key))
    assert job["status"] == "succeeded" and job["attempts"] == 2
    assert "last_error" not in job and "last_error_code" not in job


def test_a_job_held_by_another_worker_is_retried_later(processor, upload, jobs):
    # Given another worker claimed this version a moment ago
    source = upload("incoming/shared.txt", PLAIN_CALL)
    assert jobs.claim(job_id_for_key(source.key), source, lease_s=900).outcome == ClaimOutcome.CLAIMED

    # When / Then
    with pytest.raises(RetryLaterError):
        processor.process_message(notification_body(source))


def test_a_dead_workers_expired_claim_is_taken_over(processor, upload, jobs):
    # Given a claim whose lease ran out (the worker died)
    source = upload("incoming/orphan.txt", PLAIN_CALL)
    jobs.claim(job_id_for_key(source.key), source, lease_s=-1)

    # When
    results = processor.process_message(notification_body(source))

    # Then
    assert results[0].result == Result.SUCCEEDED


def test_an_object_deleted_before_it_was_read_is_a_failure_record(processor, upload, bucket, jobs):
    # Given
    source = upload("incoming/gone.txt", PLAIN_CALL)
    boto3.client("s3").delete_object(Bucket=bucket, Key=source.key, VersionId=source.version_id)

    # When
    results = processor.process_message(notification_body(source))

    # Then
    assert results[0].result == Result.FAILED
    assert jobs.get(job_id_for_key(source.key))["failure_code"] == "source_missing"


def test_without_versioning_an_object_replaced_before_it_was_read_is_left_to_the_newer_notification(
    processor, upload, bucket, jobs
):
    # Given a notification carrying only an ETag, for content that has since been overwritten
    first = upload("incoming/etag.txt", PLAIN_CALL)
    upload("incoming/etag.txt", b"Agent: replaced.\n")
    unversioned = ObjectCreated(bucket, first.key, first.size, first.etag, None, first.sequencer)

    # When
    results = processor.process_message(notification_body(unversioned))

    # Then nothing is written for the old content and the job waits for the newer notification
    assert results[0].result == Result.STALE
    assert not exists(bucket, summary_key(first.key))
    assert jobs.get(job_id_for_key(first.key))["status"] == "queued"


def test_a_success_after_a_failure_removes_the_old_failure_record(processor, upload, bucket):
    # Given a broken first upload
    processor.process_message(notification_body(upload("incoming/fixed.txt", b"")))
    assert exists(bucket, "failed/fixed.txt.json")

    # When a good version replaces it
    processor.process_message(notification_body(upload("incoming/fixed.txt", PLAIN_CALL)))

    # Then only the summary remains
    assert exists(bucket, "summaries/fixed.txt.json")
    assert not exists(bucket, "failed/fixed.txt.json")


def test_the_s3_test_event_and_objects_outside_incoming_are_ignored(processor, upload, summarizer):
    # Given
    test_event = '{"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b", "RequestId": "r"}'
    elsewhere = upload("summaries/not-a-transcript.json", b"{}")

    # When
    ignored_test_event = processor.process_message(test_event)
    ignored_key = processor.process_message(notification_body(elsewhere))

    # Then
    assert ignored_test_event == []
    assert [result.result for result in ignored_key] == [Result.IGNORED]
    assert summarizer.calls == []


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ModelUnavailableError("ThrottlingException: rate exceeded for secret"), "summarizer_unavailable"),
        (RuntimeError("KeyError at /var/task/chatbot/secret.py: token=abc123"), "internal_error"),
    ],
    ids=["throttled", "bug"],
)
def test_a_transient_error_shows_users_a_code_and_a_sentence_and_logs_the_details(
    error, code, processor, upload, summarizer, jobs, caplog
):
    # Given the summarizer raises an error whose text names internals
    summarizer.error = error
    source = upload("incoming/leaky.txt", PLAIN_CALL)

    # When the message is processed (and goes back to the queue)
    with pytest.raises(type(error)):
        processor.process_message(notification_body(source))

    # Then the job carries a stable code and a user-facing sentence, not the exception's text
    job = jobs.get(job_id_for_key(source.key))
    assert job["status"] == "queued"
    assert job["last_error_code"] == code
    assert "secret" not in job["last_error"] and type(error).__name__ not in job["last_error"]
    assert job["last_error"].endswith("retried.")
    # And the details are in the logs
    assert any("secret" in str(vars(record)) for record in caplog.records)


def test_a_permanent_summarizer_failure_gives_users_a_sentence_and_logs_the_details(
    processor, upload, summarizer, bucket, jobs, caplog
):
    # Given the model fails for good with an error naming internals
    summarizer.error = ModelInvocationError("summarizer: ModelError: CUDA error at /opt/ml/model/secret.py")
    source = upload("incoming/model-bug-2.txt", PLAIN_CALL)

    # When
    processor.process_message(notification_body(source))

    # Then the job and its failure record say what happened in a sentence; the logs hold the details
    job = jobs.get(job_id_for_key(source.key))
    assert job["failure_code"] == "summarizer_failed"
    assert "secret" not in job["reason"] and "CUDA" not in job["reason"]
    assert read_json(bucket, failure_key(source.key))["error"]["message"] == job["reason"]
    assert any("secret" in str(vars(record)) for record in caplog.records)


def test_a_transient_error_on_the_last_receive_fails_the_job_with_the_reason(
    processor, upload, summarizer, bucket, jobs
):
    # Given a model that stays throttled, and a message on its second of three receives
    summarizer.error = ModelUnavailableError("ThrottlingException", retry_after_s=5)
    source = upload("incoming/limbo.txt", PLAIN_CALL)
    with pytest.raises(ModelUnavailableError):
        processor.process_message(notification_body(source), receive_count=2, max_receive_count=3)
    assert jobs.get(job_id_for_key(source.key))["status"] == "queued"  # another receive will come

    # When its last receive fails too
    with pytest.raises(ModelUnavailableError):
        processor.process_message(notification_body(source), receive_count=3, max_receive_count=3)

    # Then the job is failed with the reason and a failure record, not left queued while the message sits in the DLQ
    job = jobs.get(job_id_for_key(source.key))
    assert job["status"] == "failed" and job["failure_code"] == "retries_exhausted"
    assert job["last_error_code"] == "summarizer_unavailable" and "3 times" in job["reason"]
    assert read_json(bucket, failure_key(source.key))["error"]["code"] == "retries_exhausted"

    # And a redrive from the DLQ, once the model recovers, summarizes it
    summarizer.error = None
    (result,) = processor.process_message(notification_body(source), receive_count=1, max_receive_count=3)
    assert result.result == Result.SUCCEEDED
    job = jobs.get(job_id_for_key(source.key))
    assert job["status"] == "succeeded" and "failure_code" not in job and "last_error_code" not in job
    assert not exists(bucket, failure_key(source.key))


def test_a_job_store_error_on_the_last_receive_still_fails_the_queued_job(processor, upload, jobs, monkeypatch):
    # Given a job announced by the upload API, and a claim that keeps failing (DynamoDB error)
    source = upload("incoming/uploads/claim-fails.txt", PLAIN_CALL)
    job_id = job_id_for_key(source.key)
    jobs.create_queued(job_id, owner="alice", source_key=source.key, filename="claim-fails.txt", bucket=source.bucket)
    boom = RuntimeError("claim exploded")
    monkeypatch.setattr(jobs, "claim", lambda *args, **kwargs: (_ for _ in ()).throw(boom))

    # When the message's last receive fails
    with pytest.raises(RuntimeError):
        processor.process_message(notification_body(source), receive_count=3, max_receive_count=3)

    # Then the job is failed, with a code and no exception text
    job = jobs.get(job_id)
    assert (job["status"], job["failure_code"], job["last_error_code"]) == (
        "failed",
        "retries_exhausted",
        "internal_error",
    )
    assert "exploded" not in job["reason"]


def test_no_summarizer_call_starts_without_the_time_to_finish_it(processor, upload, summarizer, jobs):
    # Given a processor that keeps 135 s per summarizer call, and an invocation with 100 s left
    processor._call_reserve_ms = 135_000
    source = upload("incoming/late.txt", PLAIN_CALL)

    # When the message is processed
    with pytest.raises(OutOfTimeError):
        processor.process_message(notification_body(source), remaining_ms=lambda: 100_000)

    # Then no call was started, and the job is handed back for the retry with a code, before the timeout kills it
    assert summarizer.calls == []
    job = jobs.get(job_id_for_key(source.key))
    assert (job["status"], job["last_error_code"]) == ("queued", "out_of_time")

    # And with time left, the retry summarizes it
    (result,) = processor.process_message(notification_body(source), remaining_ms=lambda: 500_000)
    assert result.result == Result.SUCCEEDED
