"""The transcripts REST function: upload requests with presigned URLs, the caller's jobs, one job with its summary."""

import base64
import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from chatbot.transcript_jobs.api import MAX_TURNS, TranscriptsService
from chatbot.transcript_jobs.keys import TRANSCRIPT_MAX_BYTES, failure_key, job_id_for_key, summary_key
from chatbot.wiring import transcripts_api_service

from local.events import cognito_claims, rest_proxy_event


def respond(api, lambda_context, method, path, *, user="alice", body=None, query=None, headers=None) -> dict:
    """The function's whole proxy response (status, headers, body) to one request."""
    resource = "/v1/transcripts/{job_id}" if path.count("/") == 3 else "/v1/transcripts"
    event = rest_proxy_event(
        method=method,
        path=path,
        resource=resource,
        path_parameters={"job_id": path.rsplit("/", 1)[-1]} if "{job_id}" in resource else None,
        query={name: [value] for name, value in (query or {}).items()},
        headers={"Content-Type": ["application/json"], **{name: [value] for name, value in (headers or {}).items()}},
        body=json.dumps(body).encode() if body is not None else None,
        claims=cognito_claims(user) if user else None,
    )
    return api.lambda_handler(event, lambda_context)


def call(api, lambda_context, method, path, **request):
    response = respond(api, lambda_context, method, path, **request)
    return response["statusCode"], json.loads(response["body"]) if response.get("body") else None


def test_requesting_an_upload_returns_a_queued_job_and_a_limited_presigned_post(api, lambda_context, bucket, jobs):
    # Given / When
    status, body = call(api, lambda_context, "POST", "/v1/transcripts", body={"filename": "  Appel n°3.vtt "})

    # Then the job is queued for this caller
    assert status == 201
    job, upload = body["job"], body["upload"]
    assert job["status"] == "queued" and job["filename"] == "Appel n°3.vtt"
    assert job["source_key"].startswith("incoming/uploads/") and job["source_key"].endswith("/Appel n°3.vtt")
    assert job["job_id"] == job_id_for_key(job["source_key"])
    assert jobs.get(job["job_id"])["owner"] == "alice"
    # And the upload is a presigned POST: its policy pins the key, the size range, the content type and a short expiry
    assert upload["method"] == "POST" and bucket in upload["url"]
    assert upload["max_bytes"] == TRANSCRIPT_MAX_BYTES and upload["content_type"] == "text/vtt"
    fields = upload["fields"]
    assert fields["key"] == job["source_key"] and fields["Content-Type"] == "text/vtt"
    policy = json.loads(base64.b64decode(fields["policy"]))
    assert ["content-length-range", 1, TRANSCRIPT_MAX_BYTES] in policy["conditions"]
    assert {"Content-Type": "text/vtt"} in policy["conditions"]
    assert {"key": job["source_key"]} in policy["conditions"]
    expires = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    assert expires - datetime.now(UTC) <= timedelta(minutes=5)


def test_a_job_and_its_objects_are_deleted_by_its_owner_only(api, lambda_context, bucket, upload, processor):
    # Given alice's summarized job (two versions of its upload) and one that failed
    _, done = call(api, lambda_context, "POST", "/v1/transcripts", body={"filename": "done.txt"})
    _, bad = call(api, lambda_context, "POST", "/v1/transcripts", body={"filename": "bad.txt"})
    done_key, bad_key = done["job"]["source_key"], bad["job"]["source_key"]
    upload(done_key, b"Agent: first version.\n")
    processor.process_object(upload(done_key, b"Agent: Your parcel left.\nCustomer: Thanks.\n"))
    processor.process_object(upload(bad_key, b""))
    s3 = boto3.client("s3")

    def versions(key):
        listing = s3.list_object_versions(Bucket=bucket, Prefix=key)
        return [v for v in listing.get("Versions", []) + listing.get("DeleteMarkers", []) if v["Key"] == key]

    assert versions(summary_key(done_key)) and versions(failure_key(bad_key))

    # When bob tries to delete alice's job
    status, _ = call(api, lambda_context, "DELETE", f"/v1/transcripts/{done['job']['job_id']}", user="bob")

    # Then it is not found for him, and nothing is gone
    assert status == 404 and len(versions(done_key)) == 2

    # When alice deletes both jobs
    statuses = [
        call(api, lambda_context, "DELETE", f"/v1/transcripts/{created['job']['job_id']}")[0] for created in (done, bad)
    ]

    # Then every version of the uploads, the summary and the failure record are gone, and so are the jobs
    assert statuses == [204, 204]
    for key in (done_key, bad_key, summary_key(done_key), failure_key(bad_key)):
        assert versions(key) == [], key
    assert call(api, lambda_context, "GET", f"/v1/transcripts/{done['job']['job_id']}")[0] == 404
    assert call(api, lambda_context, "DELETE", f"/v1/transcripts/{bad['job']['job_id']}")[0] == 404


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"filename": "../etc/passwd"}, 422),
        ({"filename": ".."}, 422),
        ({"filename": ""}, 422),
        ({"filename": "x" * 201}, 422),
        ({"filename": "ok.txt", "extra": 1}, 422),
        ({}, 422),
    ],
)
def test_bad_upload_requests_get_a_clear_4xx(api, lambda_context, body, status):
    # Given / When
    code, answer = call(api, lambda_context, "POST", "/v1/transcripts", body=body)

    # Then
    assert code == status
    assert answer["message"]


def test_malformed_json_is_a_400(api, lambda_context):
    # Given
    event = rest_proxy_event(
        method="POST", path="/v1/transcripts", resource="/v1/transcripts", body=b"{nope", claims=cognito_claims("a")
    )

    # When
    response = api.lambda_handler(event, lambda_context)

    # Then
    assert response["statusCode"] == 400


def test_listing_shows_only_the_callers_jobs_newest_first_in_pages(api, lambda_context):
    # Given three uploads by alice and one by bob
    for name in ("one.txt", "two.txt", "three.txt"):
        call(api, lambda_context, "POST", "/v1/transcripts", body={"filename": name})
    call(api, lambda_context, "POST", "/v1/transcripts", user="bob", body={"filename": "bob.txt"})

    # When alice pages through two at a time
    _, first = call(api, lambda_context, "GET", "/v1/transcripts", query={"limit": "2"})
    _, second = call(
        api, lambda_context, "GET", "/v1/transcripts", query={"limit": "2", "cursor": first["next_cursor"]}
    )

    # Then
    names = [item["filename"] for item in first["items"] + second["items"]]
    assert names == ["three.txt", "two.txt", "one.txt"]
    assert second.get("next_cursor") is None


def test_a_cursor_from_another_user_is_rejected(api, lambda_context):
    # Given
    for name in ("a.txt", "b.txt"):
        call(api, lambda_context, "POST", "/v1/transcripts", user="bob", body={"filename": name})
    _, bobs_page = call(api, lambda_context, "GET", "/v1/transcripts", user="bob", query={"limit": "1"})

    # When / Then
    status, body = call(api, lambda_context, "GET", "/v1/transcripts", query={"cursor": bobs_page["next_cursor"]})
    assert status == 400 and "cursor" in body["message"]


def _crafted_cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).decode().rstrip("=")


@pytest.mark.parametrize(
    "text",
    [
        "[" * 1500,
        '{"pk":"JOB#1","sk":"META","gsi1pk":"USER#alice#JOB","gsi1sk":{"S":"x"}}',
        '{"pk":"JOB#1","sk":"META","gsi1pk":"USER#alice#JOB","gsi1sk":"x","extra":"y"}',
        '{"pk":"JOB#1","sk":"META","gsi1pk":"USER#alice#JOB","gsi1sk":"\\ud800"}',
        '{"pk":"CONV#1","sk":"MSG#0000000001","gsi1pk":"USER#alice#JOB","gsi1sk":"x"}',
    ],
    ids=["recursion", "typed-value", "extra-attribute", "lone-surrogate", "not-a-job-key"],
)
def test_a_crafted_cursor_is_a_400(api, lambda_context, text):
    # Given alice has a job, and a cursor crafted to break the decoder or the query
    call(api, lambda_context, "POST", "/v1/transcripts", body={"filename": "a.txt"})

    # When she lists her jobs with it
    status, body = call(api, lambda_context, "GET", "/v1/transcripts", query={"cursor": _crafted_cursor(text)})

    # Then it is a bad request naming the cursor, not a 500
    assert status == 400, body
    assert "cursor" in body["message"]


def test_one_job_includes_its_summary_and_is_hidden_from_other_users(api, lambda_context, jobs, upload, processor):
    # Given an uploaded and summarized job
    _, created = call(api, lambda_context, "POST", "/v1/transcripts", body={"filename": "call.txt"})
    job_id, key = created["job"]["job_id"], created["job"]["source_key"]
    source = upload(key, b"Agent: Your parcel left the depot today.\nCustomer: Great, thanks.\n")
    processor.process_object(source)

    # When
    status, job = call(api, lambda_context, "GET", f"/v1/transcripts/{job_id}")
    other_status, _ = call(api, lambda_context, "GET", f"/v1/transcripts/{job_id}", user="bob")
    unknown_status, _ = call(api, lambda_context, "GET", "/v1/transcripts/not-a-uuid")

    # Then
    assert status == 200
    assert job["status"] == "succeeded" and job["summary"] and job["format"] == "plain-text"
    assert job["speakers"] == ["Agent", "Customer"] and job["turns"] == 2
    assert job["transcript"] == [
        {"speaker": "Agent", "text": "Your parcel left the depot today.", "start_s": None, "end_s": None},
        {"speaker": "Customer", "text": "Great, thanks.", "start_s": None, "end_s": None},
    ]
    assert job["turns_truncated"] is False
    assert other_status == 404 and unknown_status == 404


def test_the_turns_of_a_timed_transcript_carry_their_times(api, lambda_context, upload, processor):
    # Given a summarized WebVTT transcript (its cues have times)
    _, created = call(api, lambda_context, "POST", "/v1/transcripts", body={"filename": "call.vtt"})
    job_id, key = created["job"]["job_id"], created["job"]["source_key"]
    vtt = (
        b"WEBVTT\n\n00:00:01.500 --> 00:00:04.000\n<v Agent>Your parcel left the depot today.\n\n"
        b"00:01:05.000 --> 00:01:07.250\n<v Customer>Great, thanks.\n"
    )
    processor.process_object(upload(key, vtt))

    # When the job is read
    status, job = call(api, lambda_context, "GET", f"/v1/transcripts/{job_id}")

    # Then every turn says where it is in the call, in seconds
    assert status == 200 and job["format"] == "webvtt", job
    assert [(turn["speaker"], turn["start_s"], turn["end_s"]) for turn in job["transcript"]] == [
        ("Agent", 1.5, 4.0),
        ("Customer", 65.0, 67.25),
    ]


def test_a_long_transcript_returns_its_first_turns_and_says_so(api, lambda_context, upload, processor):
    # Given a summarized transcript with more turns than one job response carries
    _, created = call(api, lambda_context, "POST", "/v1/transcripts", body={"filename": "long.txt"})
    lines = [f"{'Agent' if n % 2 else 'Customer'}: Line {n} of the call, über wichtig." for n in range(1200)]
    processor.process_object(upload(created["job"]["source_key"], "\n".join(lines).encode()))

    # When the job is read
    status, job = call(api, lambda_context, "GET", f"/v1/transcripts/{created['job']['job_id']}")

    # Then it carries the first 500 turns in order, flagged as cut; the summary and counts cover all of them
    assert status == 200 and job["turns"] == 1200 and job["summary"]
    assert len(job["transcript"]) == MAX_TURNS and job["turns_truncated"] is True
    assert [turn["text"] for turn in job["transcript"]] == [line.split(": ", 1)[1] for line in lines[:MAX_TURNS]]


def test_turns_come_from_a_bounded_read_of_the_summary_document(jobs, bucket, upload, processor):
    # Given a service that reads only the first 2 KB of a summary document
    service = TranscriptsService(
        jobs=jobs, s3=boto3.client("s3"), bucket=bucket, url_expires_s=900, max_bytes=1024, turns_read_bytes=2048
    )
    created = service.request_upload("alice", "call.txt")
    lines = [f"Speaker {n % 3}: Sentence number {n} — ça va? 🙂" for n in range(300)]
    processor.process_object(upload(created.job.source_key, "\n".join(lines).encode()))

    # When the job is read
    job = service.get_job("alice", created.job.job_id)

    # Then the turns that fit in those bytes come back, in order, flagged as not all
    assert 0 < len(job.transcript) < 300 and job.turns_truncated is True
    assert [turn.text for turn in job.transcript] == [line.split(": ", 1)[1] for line in lines[: len(job.transcript)]]


def test_a_job_whose_summary_document_is_gone_is_still_returned(api, lambda_context, upload, processor, bucket):
    # Given a summarized job whose summary document was deleted from the bucket
    _, created = call(api, lambda_context, "POST", "/v1/transcripts", body={"filename": "gone.txt"})
    processor.process_object(upload(created["job"]["source_key"], b"Agent: Hello.\nCustomer: Bye.\n"))
    _, before = call(api, lambda_context, "GET", f"/v1/transcripts/{created['job']['job_id']}")
    boto3.client("s3").delete_object(Bucket=bucket, Key=before["summary_key"])

    # When it is read
    status, job = call(api, lambda_context, "GET", f"/v1/transcripts/{created['job']['job_id']}")

    # Then the job and its summary come back, without turns
    assert status == 200 and job["summary"] == before["summary"]
    assert job["transcript"] is None and job["turns_truncated"] is None


def test_failed_and_unfinished_jobs_have_no_turns(api, lambda_context, upload, processor):
    _, failed = call(api, lambda_context, "POST", "/v1/transcripts", body={"filename": "empty.txt"})
    processor.process_object(upload(failed["job"]["source_key"], b""))
    _, queued = call(api, lambda_context, "POST", "/v1/transcripts", body={"filename": "later.txt"})
    for created, status in [(failed, "failed"), (queued, "queued")]:
        _, job = call(api, lambda_context, "GET", f"/v1/transcripts/{created['job']['job_id']}")
        assert (job["status"], job["transcript"], job["turns_truncated"]) == (status, None, None)


def test_requests_without_a_caller_are_401(api, lambda_context):
    # Given / When
    status, body = call(api, lambda_context, "GET", "/v1/transcripts", user=None)

    # Then
    assert status == 401 and body["message"]


def test_upload_forms_over_the_callers_hourly_quota_are_429_with_retry_after(api, lambda_context, jobs, monkeypatch):
    # Given a quota of 2 uploads per hour, 10 minutes into the hour, and alice's 2 uploads
    limited = api.settings.model_copy(update={"user_transcript_uploads_per_hour": 2})
    hour = datetime(2026, 12, 1, 12, tzinfo=UTC).timestamp()
    monkeypatch.setattr(api, "service", transcripts_api_service(limited, clock=lambda: hour + 600))
    for name in ("one.txt", "two.txt"):
        assert call(api, lambda_context, "POST", "/v1/transcripts", body={"filename": name})[0] == 201
    # When she asks for a third, from a browser
    response = respond(
        api, lambda_context, "POST", "/v1/transcripts", body={"filename": "three.txt"}, headers={"Origin": "https://ui"}
    )
    # Then it is refused, naming the limit, until the next hour (50 minutes), and no job is queued for it
    assert response["statusCode"] == 429
    assert response["multiValueHeaders"]["Retry-After"] == ["3000"]
    assert response["multiValueHeaders"]["Access-Control-Expose-Headers"] == ["Retry-After"]  # a browser may read it
    assert "2 transcript uploads per hour" in json.loads(response["body"])["message"]
    _, listed = call(api, lambda_context, "GET", "/v1/transcripts")
    assert sorted(job["filename"] for job in listed["items"]) == ["one.txt", "two.txt"]
    # And bob's upload in the same hour is served
    assert call(api, lambda_context, "POST", "/v1/transcripts", user="bob", body={"filename": "b.txt"})[0] == 201
