"""The sample events in events/transcripts/ are real inputs of the two functions."""

import json
from pathlib import Path

from chatbot.transcript_jobs.events import parse_notification
from chatbot.transcript_jobs.keys import job_id_for_key

EVENTS = Path(__file__).resolve().parents[3] / "events" / "transcripts"


def load(name: str) -> dict:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def test_the_sample_notification_names_a_form_encoded_incoming_key():
    # Given
    body = json.dumps(load("s3-notification.json"))

    # When
    (created,) = parse_notification(body)

    # Then
    assert created.key == "incoming/team B/appel du 3 mars é.vtt"
    assert created.version_id and created.etag and created.sequencer


def test_the_sample_sqs_events_go_through_the_batch_handler(handler_module, lambda_context, bucket, jobs):
    # Given the notification sample (its object was never uploaded here) and the S3 test event sample
    notification, test_event = load("sqs-s3-notification.json"), load("sqs-s3-test-event.json")

    # When
    responses = [handler_module.lambda_handler(event, lambda_context) for event in (notification, test_event)]

    # Then both messages are handled: the missing object is a written failure, the test event is ignored
    assert responses == [{"batchItemFailures": []}, {"batchItemFailures": []}]
    (created,) = parse_notification(notification["Records"][0]["body"])
    assert jobs.get(job_id_for_key(created.key))["failure_code"] == "source_missing"


def test_the_sample_api_events_are_answered(api, lambda_context):
    # Given / When
    statuses = [
        api.lambda_handler(load(name), lambda_context)["statusCode"]
        for name in ("api-request-upload.json", "api-list-jobs.json", "api-get-job.json", "api-delete-job.json")
    ]

    # Then (the sample job id belongs to no one here)
    assert statuses == [201, 200, 404, 404]
