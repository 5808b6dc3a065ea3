"""Hostile transcripts through the batch job (moto S3 + DynamoDB): a failure record, never a retried message."""

import json

import pytest
from chatbot.transcript_jobs.keys import job_id_for_key, summary_key
from chatbot.transcript_jobs.pipeline import Result
from transcript_events import exists, notification_body, read_json

TOO_MANY_SPEAKERS = json.dumps([{"speaker": f"Person {index}", "text": "hello"} for index in range(101)]).encode()


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"WEBVTT\n\n00:00.000 --> " + b"9" * 400 + b":00:01.000\nhello\n", "unparseable"),
        (b'{"results": {"items": [{"alternatives": [{"content": "hi"}], "end_time": "NaN"}]}}', "unparseable"),
        (b'{"results": {"items": [{"alternatives": [{"content": "hi"}], "end_time": 1e999}]}}', "unparseable"),
        (TOO_MANY_SPEAKERS, "too_many_speakers"),
    ],
    ids=["webvtt-overflowing-hours", "transcribe-nan-end", "transcribe-infinite-end", "101-speakers"],
)
def test_hostile_files_get_a_failure_record_and_no_summary(data, code, processor, upload, bucket, jobs, summarizer):
    # Given
    source = upload("incoming/hostile/file", data)

    # When (no exception: the message is done with, not retried)
    results = processor.process_message(notification_body(source))

    # Then the job failed for good with its reason written down, before the summarizer was paid for
    assert results[0].result == Result.FAILED
    assert read_json(bucket, "failed/hostile/file.json")["error"]["code"] == code
    job = jobs.get(job_id_for_key(source.key))
    assert (job["status"], job["failure_code"]) == ("failed", code)
    assert summarizer.calls == []
    assert not exists(bucket, summary_key(source.key))


def test_a_lone_surrogate_in_json_text_is_summarized(processor, upload, bucket):
    # Given a JSON transcript escaping half a surrogate pair
    source = upload("incoming/hostile/surrogate.json", b'[{"speaker": "Agent", "text": "Hello \\ud800 there"}]')

    # When
    results = processor.process_message(notification_body(source))

    # Then it is summarized, the half pair stored as U+FFFD
    assert results[0].result == Result.SUCCEEDED
    document = read_json(bucket, summary_key(source.key))
    assert document["transcript"] == [{"speaker": "Agent", "text": "Hello \ufffd there"}]
