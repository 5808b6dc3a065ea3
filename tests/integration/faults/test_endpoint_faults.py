"""The endpoint fails, times out, has no capacity or restarts: the API answers 502/503 as specified, keeps
every message exactly once, and a resend answers it; the batch job retries until the endpoint is back."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
import requests
from fault_client import Caller, as_sent, new_caller, send_until_answered, wait_until

from bench.reconcile import Ledger, Report, UploadedTranscript, reconcile, reconcile_messages, wait_for_jobs
from local.template import DEFAULT_TEMPLATE_PATH, Template

pytestmark = pytest.mark.integration


def user_messages(messages: list[dict], content: str) -> list[dict]:
    return [message for message in messages if message["role"] == "user" and message["content"] == content]


def set_copies(endpoint_url: str, component: str, copies: int) -> None:
    sagemaker = boto3.client("sagemaker", endpoint_url=endpoint_url, region_name="us-east-1")
    sagemaker.update_inference_component_runtime_config(
        InferenceComponentName=component, DesiredRuntimeConfig={"CopyCount": copies}
    )


def test_a_failing_model_answers_502_keeps_the_message_and_a_resend_answers_it_once(stack):
    # Given a conversation and a chat model that fails
    caller = new_caller(stack.api, "fault-502")
    conversation_id = caller.start_conversation()
    stack.faults.chat = "error"

    # When a message is sent
    first = caller.send(conversation_id, "Is my order on its way?", key="k-502")

    # Then the API answers 502 and the message is stored once, marked unanswered
    assert first == 502
    stored = user_messages(caller.messages(conversation_id), "Is my order on its way?")
    assert [message["status"] for message in stored] == ["unanswered"]

    # When the model recovers and the client resends with the same Idempotency-Key
    stack.faults.chat = "ok"
    second = caller.send(conversation_id, "Is my order on its way?", key="k-502")

    # Then it is answered, and still stored once
    assert second == 201
    stored = user_messages(caller.messages(conversation_id), "Is my order on its way?")
    assert [message["status"] for message in stored] == ["answered"]


def test_a_model_timeout_answers_503_with_retry_after_and_the_retry_route_answers_it(stack):
    # Given a chat model slower than the component's invocation timeout
    caller = new_caller(stack.api, "fault-timeout")
    conversation_id = caller.start_conversation()
    stack.faults.chat = "slow"

    # When a message is sent
    response = caller.request(
        "POST", f"/v1/conversations/{conversation_id}/messages", json={"content": "Can I change my plan?"}
    )

    # Then 503 with a Retry-After in whole seconds, and the message is kept unanswered
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1
    assert [m["status"] for m in user_messages(caller.messages(conversation_id), "Can I change my plan?")] == [
        "unanswered"
    ]

    # When the model is fast again and the client uses the retry route
    stack.faults.chat = "ok"
    retried = caller.request("POST", f"/v1/conversations/{conversation_id}/messages/retry")

    # Then the same message is answered, not duplicated
    assert retried.status_code == 201
    assert [m["status"] for m in user_messages(caller.messages(conversation_id), "Can I change my plan?")] == [
        "answered"
    ]


def test_no_capacity_answers_503_until_the_component_scales_back(stack):
    # Given the chat component scaled to zero copies through the control plane
    caller = new_caller(stack.api, "fault-zero")
    conversation_id = caller.start_conversation()
    set_copies(stack.stack.urls["endpoint"], "chat", 0)
    try:
        # When a message is sent
        response = caller.request(
            "POST",
            f"/v1/conversations/{conversation_id}/messages",
            json={"content": "Do you ship abroad?"},
            headers={"Idempotency-Key": "k-zero"},
        )
        # Then 503 with Retry-After
        assert response.status_code == 503
        assert "Retry-After" in response.headers
    finally:
        set_copies(stack.stack.urls["endpoint"], "chat", 1)

    # When the component is back and the client resends
    statuses = send_until_answered(caller, conversation_id, "Do you ship abroad?")

    # Then it is answered once
    assert statuses[-1] == 201
    assert len(user_messages(caller.messages(conversation_id), "Do you ship abroad?")) == 1


def test_an_endpoint_restart_mid_load_loses_and_duplicates_nothing(stack):
    # Given three clients each sending eight messages, resending on 502/503 or a refused connection
    callers = [new_caller(stack.api, f"fault-restart-{index}") for index in range(3)]
    conversations = [caller.start_conversation() for caller in callers]
    endpoint_down, probe_answered = threading.Event(), threading.Event()
    probe_content, probe_key = "sent while it is down", uuid.uuid4().hex

    def client(index: int) -> list:
        sent = []
        for number in range(8):
            content = f"restart test {index}.{number}: when do you open?"
            sent.append(as_sent(callers[index], conversations[index], content, [0]))
            statuses = send_until_answered(callers[index], conversations[index], content)
            sent[-1] = as_sent(callers[index], conversations[index], content, statuses)
        return sent

    # When the endpoint server stops and comes back on the same port while they send,
    # and a keyed probe message is sent to the first client's busy conversation while it is down
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(client, index) for index in range(3)]
        time.sleep(0.5)
        restart = pool.submit(stack.endpoint.restart, endpoint_down.set, probe_answered)
        assert endpoint_down.wait(timeout=30)
        try:
            probe = callers[0].send(conversations[0], probe_content, probe_key)
        finally:
            probe_answered.set()
        restart.result(timeout=60)
        sent = [message for future in futures for message in future.result(timeout=120)]

    # and, after another message landed in that conversation, the probe is resent with its Idempotency-Key
    between = "sent after the probe"
    sent.append(
        as_sent(callers[0], conversations[0], between, send_until_answered(callers[0], conversations[0], between))
    )
    probe_statuses = send_until_answered(callers[0], conversations[0], probe_content, key=probe_key)
    sent.append(as_sent(callers[0], conversations[0], probe_content, probe_statuses))

    # Then the probe got 503 and its resend answered it, every message ended answered,
    # and reconciliation finds none lost, duplicated (the probe included) or unanswered
    assert probe == 503
    assert stack.endpoint.restarts == 1
    assert {message.status for message in sent} == {201}
    report = Report()
    reconcile_messages(stack.api, sent, report)
    assert report.messages_checked == 26
    assert report.ok, report.lines()


def test_the_batch_job_retries_while_the_summarizer_has_no_capacity_and_ends_summarized_once(stack, tmp_path: Path):
    # Given the summarizer at zero copies and three transcripts uploaded through the API
    endpoint_url = stack.stack.urls["endpoint"]
    caller = new_caller(stack.api, "fault-batch")
    ledger = Ledger(tmp_path / "ledger.jsonl")
    set_copies(endpoint_url, "summarizer", 0)
    try:
        uploads = []
        for index in range(3):
            response = caller.request("POST", "/v1/transcripts", json={"filename": f"call-{index}.txt"})
            assert response.status_code == 201, response.text
            body = response.json()
            text = f"Agent: Hello, how can I help?\nCustomer: My parcel {index} is late.\nAgent: I will check."
            posted = requests_post_form(body["upload"], text.encode())
            assert posted in (200, 201, 204)
            uploads.append(UploadedTranscript(caller.user, body["job"]["job_id"], body["job"]["source_key"]))
            ledger.transcript(uploads[-1])

        # When the jobs have been tried and failed transiently (bounded wait)
        retried = wait_until(lambda: all(job_attempts(caller, upload) >= 2 for upload in uploads), 60)
        assert retried
        jobs = wait_for_jobs(stack.api, uploads, timeout_s=0)
        assert all(job["status"] != "succeeded" for job in jobs.values())
    finally:
        # and the summarizer comes back (dead-lettered notifications are redriven, as an operator would)
        set_copies(endpoint_url, "summarizer", 1)
    # A notification still in flight at its last receive may reach the DLQ a little later: redrive until all end.
    wait_until(lambda: redrive_dead_letters() >= 0 and all_finished(stack.api, uploads), 90, poll_s=1)

    # Then every transcript is summarized exactly once and nothing is lost
    template = Template(DEFAULT_TEMPLATE_PATH)
    report = reconcile(
        stack.api,
        ledger,
        s3=boto3.client("s3"),
        bucket=template.physical_name("TranscriptsBucket"),
        transcripts_timeout_s=90,
    )
    assert report.transcripts_checked == 3
    assert report.job_states == {"succeeded": 3}
    assert report.ok, report.lines()


def requests_post_form(upload: dict, data: bytes) -> int:
    """The file through the presigned POST: the form's fields, then the file."""
    files = {"file": ("transcript", data, upload["content_type"])}
    return requests.post(upload["url"], data=upload["fields"], files=files, timeout=30).status_code


def job_attempts(caller: Caller, upload: UploadedTranscript) -> int:
    response = caller.request("GET", f"/v1/transcripts/{upload.job_id}")
    return (response.json().get("attempts") or 0) if response.status_code == 200 else 0


def all_finished(api: str, uploads: list[UploadedTranscript]) -> bool:
    jobs = wait_for_jobs(api, uploads, timeout_s=0)
    # A job failed as retries_exhausted (its notification's last receive) waits for the redrive to finish it.
    return len(jobs) == len(uploads) and all(
        job["status"] == "succeeded" or (job["status"] == "failed" and job.get("failure_code") != "retries_exhausted")
        for job in jobs.values()
    )


def redrive_dead_letters() -> int:
    """Move every dead-lettered notification back to the transcripts queue (bounded)."""
    template = Template(DEFAULT_TEMPLATE_PATH)
    sqs = boto3.client("sqs")
    dlq = sqs.get_queue_url(QueueName=template.physical_name("TranscriptsDeadLetterQueue"))["QueueUrl"]
    queue = sqs.get_queue_url(QueueName=template.physical_name("TranscriptsQueue"))["QueueUrl"]
    moved = 0
    for _batch in range(20):
        messages = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            break
        for message in messages:
            sqs.send_message(QueueUrl=queue, MessageBody=message["Body"])
            sqs.delete_message(QueueUrl=dlq, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
    return moved
