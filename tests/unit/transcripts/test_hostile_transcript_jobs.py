"""Hostile transcripts through the batch job (moto S3 + DynamoDB): a failure record, never a retried message."""

import pytest
from chatbot.transcript_jobs.keys import job_id_for_key, summary_key
from chatbot.transcript_jobs.pipeline import Result
from transcript_events import exists, notification_body, read_json

from bench.hostile_corpus import CORPUS, SUMMARIZED, HostileCase, is_raw_exception_text


@pytest.mark.parametrize("case", [case for case in CORPUS if case.outcome != SUMMARIZED], ids=lambda case: case.name)
def test_hostile_files_get_a_failure_record_and_no_summary(
    case: HostileCase, processor, upload, bucket, jobs, summarizer
):
    # Given
    source = upload(f"incoming/hostile/{case.name}", case.data)

    # When (no exception: the message is done with, not retried)
    results = processor.process_message(notification_body(source))

    # Then the job failed for good with its reason written down in words, before the summarizer was paid for
    assert results[0].result == Result.FAILED
    document = read_json(bucket, f"failed/hostile/{case.name}.json")
    record = document["error"]
    job = jobs.get(job_id_for_key(source.key))
    assert document["source"]["key"] == source.key
    assert (job["status"], job["failure_code"], record["code"]) == ("failed", case.outcome, case.outcome)
    assert job["reason"] == record["message"]
    assert case.quoted in record["message"].lower()
    assert not is_raw_exception_text(record["message"]), record["message"]
    assert summarizer.calls == []
    assert not exists(bucket, summary_key(source.key))


@pytest.mark.parametrize("case", [case for case in CORPUS if case.outcome == SUMMARIZED], ids=lambda case: case.name)
def test_hostile_files_that_are_transcripts_are_summarized(case: HostileCase, processor, upload, bucket, jobs):
    # Given
    source = upload(f"incoming/hostile/{case.name}", case.data)

    # When
    results = processor.process_message(notification_body(source))

    # Then
    assert results[0].result == Result.SUCCEEDED
    assert jobs.get(job_id_for_key(source.key))["status"] == "succeeded"
    assert read_json(bucket, summary_key(source.key))["summary"]


def test_a_lone_surrogate_in_json_text_is_summarized(processor, upload, bucket):
    # Given a JSON transcript escaping half a surrogate pair
    source = upload("incoming/hostile/surrogate.json", b'[{"speaker": "Agent", "text": "Hello \\ud800 there"}]')

    # When
    results = processor.process_message(notification_body(source))

    # Then it is summarized, the half pair stored as U+FFFD
    assert results[0].result == Result.SUCCEEDED
    document = read_json(bucket, summary_key(source.key))
    assert document["transcript"] == [{"speaker": "Agent", "text": "Hello \ufffd there"}]
