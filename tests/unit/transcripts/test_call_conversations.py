"""Conversations about a summarized call, through the conversations function's handler on moto: the route that
starts one, answers grounded in the call's most relevant turns, and the turns each answer records."""

from __future__ import annotations

import io
import json
from pathlib import Path

import boto3
import pytest
from chatbot.transcript_jobs.keys import job_id_for_key
from chatbot.wiring import conversations_service

from local.events import cognito_claims, rest_proxy_event

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "transcripts"
ALICE, BOB = "alice", "bob"


class RecordingEndpoint:
    """A sagemaker-runtime client that records each request body and answers every chat turn and summary."""

    def __init__(self) -> None:
        self.chats: list[list[dict]] = []

    def invoke_endpoint(self, **request) -> dict:
        payload = json.loads(request["Body"])
        if "messages" in payload:
            self.chats.append(payload["messages"])
            answer = {"choices": [{"message": {"role": "assistant", "content": "From the call: yes."}}]}
        else:
            answer = [{"summary_text": "A summary."} for _ in payload["inputs"]]
        return {"Body": io.BytesIO(json.dumps(answer).encode())}


@pytest.fixture
def endpoint() -> RecordingEndpoint:
    return RecordingEndpoint()


@pytest.fixture
def conversations(moto_table, bucket, load_handler, monkeypatch, endpoint):
    """The conversations function's module, as Lambda loads it, its service wired with the recording endpoint."""
    module = load_handler("ConversationsFunction")
    monkeypatch.setattr(module, "service", conversations_service(module.settings, sagemaker_runtime=endpoint))
    return module


@pytest.fixture
def summarized(jobs, upload, processor, bucket):
    """Summarize `data` as `owner`'s upload of `filename`, as the upload API and the batch job would; its job id."""

    def summarize(owner: str, filename: str, data: bytes) -> str:
        key = f"incoming/uploads/{owner}/{filename}"
        job_id = job_id_for_key(key)
        jobs.create_queued(job_id, owner=owner, source_key=key, filename=filename, bucket=bucket)
        processor.process_object(upload(key, data))
        return job_id

    return summarize


def request(module, lambda_context, method, path, resource, *, user=ALICE, body=None, **path_parameters):
    event = rest_proxy_event(
        method=method,
        path=path,
        resource=resource,
        path_parameters=path_parameters or None,
        query={},
        headers={"Content-Type": ["application/json"]},
        body=json.dumps(body).encode() if body is not None else None,
        claims=cognito_claims(user),
    )
    response = module.lambda_handler(event, lambda_context)
    return response["statusCode"], json.loads(response["body"]) if response.get("body") else None


def start(module, lambda_context, job_id, *, user=ALICE, body=None):
    return request(
        module,
        lambda_context,
        "POST",
        f"/v1/transcripts/{job_id}/conversations",
        "/v1/transcripts/{job_id}/conversations",
        user=user,
        body=body,
        job_id=job_id,
    )


def ask(module, lambda_context, conversation_id, question):
    return request(
        module,
        lambda_context,
        "POST",
        f"/v1/conversations/{conversation_id}/messages",
        "/v1/conversations/{conversation_id}/messages",
        body={"content": question},
        conversation_id=conversation_id,
    )


def test_a_question_about_a_call_is_answered_from_the_call_and_the_answer_names_its_turns(
    conversations, lambda_context, summarized, endpoint
):
    # Given Alice's summarized WebVTT call (cues have times)
    job_id = summarized(ALICE, "router.vtt", (FIXTURES / "webvtt_voices.vtt").read_bytes())

    # When she starts a conversation about it and asks a question
    status, conversation = start(conversations, lambda_context, job_id)
    assert status == 201, conversation
    status, exchange = ask(conversations, lambda_context, conversation["id"], "Which router model does Sam have?")

    # Then the conversation names its call, and the model saw the call's summary and its turns with their times
    assert conversation["call"] == {"job_id": job_id, "filename": "router.vtt"}
    assert conversation["title"] == "About router.vtt"
    assert status == 201, exchange
    system = endpoint.chats[0][0]
    assert system["role"] == "system"
    assert "Summary of the call:" in system["content"]
    assert "[turn 3, 0:17] Sam Lee: Sure, it's an AX1800." in system["content"]
    assert endpoint.chats[0][-1] == {"role": "user", "content": "Which router model does Sam have?"}
    # And the answer records every turn it was shown (the whole call fits: no selection), with speakers and times
    answer = exchange["assistant_message"]
    assert answer["call_selection"] is False
    assert [turn["index"] for turn in answer["call_turns"]] == list(range(8))
    assert answer["call_turns"][3] == {"index": 3, "speaker": "Sam Lee", "start_s": 17.6}
    # And the stored answer and the conversation list say the same
    status, page = request(
        conversations,
        lambda_context,
        "GET",
        f"/v1/conversations/{conversation['id']}/messages",
        "/v1/conversations/{conversation_id}/messages",
        conversation_id=conversation["id"],
    )
    assert page["items"][1]["call_turns"] == answer["call_turns"]
    _, listed = request(conversations, lambda_context, "GET", "/v1/conversations", "/v1/conversations")
    assert [item["call"] for item in listed["items"]] == [{"job_id": job_id, "filename": "router.vtt"}]


def test_only_the_callers_summarized_calls_with_turns_can_be_asked_about(
    conversations, lambda_context, summarized, jobs, bucket
):
    # Given Alice's summarized call, a job of hers still queued, and a summary stored before turns were kept
    job_id = summarized(ALICE, "call.txt", b"Agent: Hello.\nCustomer: My parcel is late.\n")
    jobs.create_queued("queued-job", owner=ALICE, source_key="incoming/uploads/q.txt", filename="q.txt", bucket=bucket)
    old_id = summarized(ALICE, "old.txt", b"Agent: Hi.\nCustomer: Bye.\n")
    old_key = jobs.get(old_id)["summary_key"]
    boto3.client("s3").put_object(Bucket=bucket, Key=old_key, Body=json.dumps({"summary": "Greetings."}).encode())

    # When / Then: Bob cannot see Alice's job, nor anyone an unknown one
    assert start(conversations, lambda_context, job_id, user=BOB)[0] == 404
    assert start(conversations, lambda_context, "no-such-job")[0] == 404
    # And an unfinished job is a conflict, as is a call with no turns to answer from, each said plainly
    status, body = start(conversations, lambda_context, "queued-job")
    assert status == 409 and "queued" in body["message"]
    status, body = start(conversations, lambda_context, old_id)
    assert status == 409 and "no transcript turns" in body["message"]
    # And none of them created a conversation
    _, listed = request(conversations, lambda_context, "GET", "/v1/conversations", "/v1/conversations")
    assert listed["items"] == []


def test_a_call_longer_than_the_budget_is_answered_from_a_selection_that_says_so(
    conversations, lambda_context, summarized, endpoint
):
    # Given a 2,000-turn call in which one turn promises a refund
    lines = [f"{'Agent' if n % 2 else 'Customer'}: Line {n} about the weather and the queue." for n in range(2000)]
    lines[1201] = "Agent: I promise a full refund of the second charge by Friday."
    job_id = summarized(ALICE, "long.txt", "\n".join(lines).encode())
    _, conversation = start(conversations, lambda_context, job_id)

    # When Alice asks about it
    status, exchange = ask(conversations, lambda_context, conversation["id"], "Was a refund promised?")

    # Then the answer says it used a selection, which holds the refund turn, far fewer than all turns
    assert status == 201, exchange
    answer = exchange["assistant_message"]
    assert answer["call_selection"] is True
    indices = [turn["index"] for turn in answer["call_turns"]]
    assert 1201 in indices and len(indices) < 200
    assert "I promise a full refund" in endpoint.chats[0][0]["content"]


def test_it_is_still_a_conversation_and_outlives_its_job(conversations, lambda_context, summarized, jobs, moto_table):
    # Given a conversation about a call, with one answered question
    job_id = summarized(ALICE, "call.txt", b"Agent: Your parcel left the depot.\nCustomer: Thanks.\n")
    _, conversation = start(conversations, lambda_context, job_id)
    conversation_id = conversation["id"]
    assert ask(conversations, lambda_context, conversation_id, "Where is the parcel?")[0] == 201

    # When it is summarized and cleared, like any conversation
    summary_path = f"/v1/conversations/{conversation_id}/summary"
    status, _ = request(
        conversations,
        lambda_context,
        "POST",
        summary_path,
        "/v1/conversations/{conversation_id}/summary",
        conversation_id=conversation_id,
    )
    assert status == 200
    messages_path = f"/v1/conversations/{conversation_id}/messages"
    messages_resource = "/v1/conversations/{conversation_id}/messages"
    args = (conversations, lambda_context)
    assert request(*args, "DELETE", messages_path, messages_resource, conversation_id=conversation_id)[0] == 204

    # Then it still answers about the call after the clear
    assert ask(conversations, lambda_context, conversation_id, "Where is the parcel?")[0] == 201

    # When the job record goes (deleted, or expired by its TTL)
    boto3.client("dynamodb").delete_item(TableName=moto_table, Key={"pk": {"S": f"JOB#{job_id}"}, "sk": {"S": "META"}})

    # Then the conversation stays, a new question is a clear 409, and that question is kept, unanswered
    status, body = ask(conversations, lambda_context, conversation_id, "And when?")
    assert status == 409 and "deleted" in body["message"]
    _, page = request(*args, "GET", messages_path, messages_resource, conversation_id=conversation_id)
    assert [(item["content"], item.get("status")) for item in page["items"]][-1] == ("And when?", "unanswered")
    # And it can be deleted like any other
    conversation_path = f"/v1/conversations/{conversation_id}"
    resource = "/v1/conversations/{conversation_id}"
    assert request(*args, "DELETE", conversation_path, resource, conversation_id=conversation_id)[0] == 204
