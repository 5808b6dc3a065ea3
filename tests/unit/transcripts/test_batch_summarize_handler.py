"""The batch-summarize Lambda handler: partial batch responses, poison messages, and any file thrown at it."""

import json
import uuid
from pathlib import Path

from chatbot.inference import ModelUnavailableError
from chatbot.transcript_jobs.keys import failure_key, job_id_for_key, summary_key
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transcript_events import exists, notification_body, sqs_event

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "transcripts"
FIXTURE_BYTES = [path.read_bytes() for path in sorted(FIXTURES.iterdir())]


def failed_ids(response: dict) -> list[str]:
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


def test_a_batch_with_one_poison_message_fails_only_that_message(handler_module, upload, bucket, lambda_context):
    # Given two good notifications around a body that is not an S3 event at all
    good = [upload(f"incoming/batch/{index}.txt", FIXTURE_BYTES[8]) for index in range(2)]
    event = sqs_event(notification_body(good[0]), "this is not json {", notification_body(good[1]))

    # When
    response = handler_module.lambda_handler(event, lambda_context)

    # Then only the poison message goes back to the queue (and, after three receives, to the DLQ)
    assert failed_ids(response) == ["message-1"]
    assert all(exists(bucket, summary_key(source.key)) for source in good)


def test_a_transient_model_error_fails_only_its_message(handler_module, upload, summarizer, bucket, lambda_context):
    # Given a summarizer that is throttled for one transcript only
    fine = upload("incoming/t/fine.txt", b"Agent: all good here.\n")
    busy = upload("incoming/t/busy.txt", b"Agent: THROTTLE me please.\n")
    summarizer.error = ModelUnavailableError("ThrottlingException", retry_after_s=2)
    summarizer.error_only_for = "THROTTLE"

    # When
    response = handler_module.lambda_handler(
        sqs_event(notification_body(fine), notification_body(busy)), lambda_context
    )

    # Then
    assert failed_ids(response) == ["message-1"]
    assert exists(bucket, summary_key(fine.key))
    assert not exists(bucket, failure_key(busy.key))


def test_the_last_receive_of_a_failing_message_fails_its_job(handler_module, upload, summarizer, jobs, lambda_context):
    # Given a model that stays throttled and a message on the queue's last receive (maxReceiveCount 3)
    source = upload("incoming/t/last.txt", b"Agent: THROTTLE me please.\n")
    summarizer.error = ModelUnavailableError("ThrottlingException", retry_after_s=2)
    event = sqs_event(notification_body(source))
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = "3"

    # When
    response = handler_module.lambda_handler(event, lambda_context)

    # Then the message still fails (to the DLQ, where a redrive can retry it), and its job is failed, not queued
    assert failed_ids(response) == ["message-0"]
    job = jobs.get(job_id_for_key(source.key))
    assert (job["status"], job["failure_code"]) == ("failed", "retries_exhausted")


def test_a_batch_where_every_message_fails_is_still_a_partial_response(handler_module, lambda_context):
    # Given / When
    response = handler_module.lambda_handler(sqs_event("[]", "{}", "null"), lambda_context)

    # Then no exception escapes; every message is listed for retry
    assert failed_ids(response) == ["message-0", "message-1", "message-2"]


def test_duplicate_delivery_in_one_batch_summarizes_once(handler_module, upload, summarizer, lambda_context):
    # Given the same notification twice in one batch
    source = upload("incoming/twice.txt", FIXTURE_BYTES[8])
    body = notification_body(source)

    # When
    response = handler_module.lambda_handler(sqs_event(body, body), lambda_context)

    # Then both messages are done and the model ran for one of them only
    assert failed_ids(response) == []
    assert len(summarizer.calls) == 1


def _mutated(data: bytes, edits: list[tuple[int, int]], cut: int) -> bytes:
    mutable = bytearray(data[: max(1, len(data) * cut // 100)])
    for position, value in edits:
        mutable[position % len(mutable)] = value
    return bytes(mutable)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
transcript_like_json = st.one_of(
    st.fixed_dictionaries(
        {
            "results": st.dictionaries(
                st.sampled_from(["items", "transcripts", "speaker_labels", "channel_labels", "audio_segments"]),
                json_values,
            )
        }
    ),
    st.fixed_dictionaries(
        {
            "Transcript": st.lists(
                st.dictionaries(
                    st.sampled_from(["Content", "ParticipantRole", "ParticipantId", "BeginOffsetMillis"]), json_values
                ),
                max_size=5,
            ),
            "Participants": json_values,
        }
    ),
    st.lists(st.dictionaries(st.sampled_from(["speaker", "text", "role", "content", "end"]), json_values), max_size=5),
).map(lambda document: json.dumps(document).encode())
transcript_files = st.one_of(
    st.binary(max_size=3000),
    st.text(max_size=2000).map(lambda text: text.encode("utf-8")),
    st.text(max_size=500).map(lambda text: ("Agent: " + text).encode("utf-16")),
    transcript_like_json,
    st.builds(
        _mutated,
        st.sampled_from(FIXTURE_BYTES),
        st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8),
        st.integers(1, 100),
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.lists(transcript_files, min_size=1, max_size=3))
def test_any_file_ends_as_a_summary_or_a_failure_record_never_an_exception_or_a_lost_message(
    files, handler_module, upload, bucket, jobs, lambda_context
):
    # Given random, corrupted and transcript-shaped files uploaded in one batch
    batch = uuid.uuid4().hex
    sources = [upload(f"incoming/fuzz/{batch}/{index}", data) for index, data in enumerate(files)]

    # When
    response = handler_module.lambda_handler(sqs_event(*map(notification_body, sources)), lambda_context)

    # Then every message is handled, and every file has exactly one written outcome
    assert failed_ids(response) == []
    for source in sources:
        outcomes = exists(bucket, summary_key(source.key)), exists(bucket, failure_key(source.key))
        assert sorted(outcomes) == [False, True]
        assert jobs.get(job_id_for_key(source.key))["status"] == ("succeeded" if outcomes[0] else "failed")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bodies=st.lists(st.text(max_size=300) | json_values.map(json.dumps), min_size=1, max_size=4))
def test_any_message_body_is_either_handled_or_returned_for_retry(bodies, handler_module, lambda_context):
    # Given arbitrary SQS message bodies
    event = sqs_event(*bodies)

    # When
    response = handler_module.lambda_handler(event, lambda_context)

    # Then the response only names messages of this batch, and nothing escaped the handler
    assert set(failed_ids(response)) <= {record["messageId"] for record in event["Records"]}
