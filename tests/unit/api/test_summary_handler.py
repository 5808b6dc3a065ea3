"""POST/GET .../summary through the conversations handler (200, 202 + Location, 404), and the summary worker's
handler fed the queued message as Lambda's SQS event source delivers it."""

import json
from urllib.parse import urljoin

import boto3
import pytest
from api_event_helpers import call, model_answer, sample_event
from chatbot.conversations.policy import ChatPolicy
from chatbot.inference import ModelUnavailableError
from chatbot.wiring import conversation_summary_worker, conversations_service

ANSWER = {"choices": [{"message": {"role": "assistant", "content": "Noted."}}]}
# Chunks of ~390 tokens: five ~375-token messages plus answers plan more calls than fit the API's budget.
SMALL_SUMMARIZER = ChatPolicy(summarizer_max_input_tokens=400)


@pytest.fixture
def sqs(moto_table):
    return boto3.client("sqs", region_name="us-east-1")


@pytest.fixture
def summary_queue(sqs, template) -> str:
    """The template's summary requests queue, in moto (its URL is what SUMMARY_QUEUE_URL names locally)."""
    return sqs.create_queue(QueueName=template.physical_name("SummaryRequestsQueue"))["QueueUrl"]


@pytest.fixture
def api(handler_module, monkeypatch, sagemaker_runtime, summary_queue):
    """The conversations handler with a small summarizer input, so a few messages need the background."""
    service = conversations_service(
        handler_module.settings, policy=SMALL_SUMMARIZER, sagemaker_runtime=sagemaker_runtime
    )
    monkeypatch.setattr(handler_module, "service", service)
    return handler_module


@pytest.fixture
def worker_context(lambda_context):
    """The worker's invocation: its 900 s timeout ahead (a plan that needs longer fails as too long)."""
    lambda_context.remaining_ms = 900_000
    return lambda_context


@pytest.fixture
def worker(load_handler, monkeypatch, moto_table):
    module = load_handler("SummarizeConversationFunction")
    summarizer = FakeSummarizer()
    service = conversation_summary_worker(module.settings, policy=SMALL_SUMMARIZER)
    monkeypatch.setattr(service, "_inference", summarizer)
    monkeypatch.setattr(module, "service", service)
    module.summarizer = summarizer
    return module


class FakeSummarizer:
    """The summarizer component: a short summary per text, or an error while `error` is set."""

    def __init__(self) -> None:
        self.error: Exception | None = None

    def summarize(self, texts, **parameters):
        if self.error is not None:
            raise self.error
        return [f"summary of {len(text)} characters" for text in texts]


def long_conversation(api, endpoint, lambda_context, messages: int = 5) -> str:
    status, _, body = call(api, sample_event("create-conversation"), lambda_context)
    assert status == 201
    conversation_id = body["id"]
    for _ in range(messages):
        endpoint.add_response("invoke_endpoint", model_answer(ANSWER))
        event = sample_event("send-message", conversation_id, body={"content": "a" * 1500})
        del event["headers"]["Idempotency-Key"], event["multiValueHeaders"]["Idempotency-Key"]
        assert call(api, event, lambda_context)[0] == 201
    return conversation_id


def summary_message(sqs, queue_url: str, receive_count: int = 1) -> dict:
    """The queued request as Lambda's SQS event source delivers it to the worker."""
    (message,) = sqs.receive_message(QueueUrl=queue_url).get("Messages", [])
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": {"ApproximateReceiveCount": str(receive_count), "SentTimestamp": "1764000000000"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:genai-chatbot-dev-summary-requests",
                "awsRegion": "us-east-1",
            }
        ]
    }


def test_a_long_summary_is_accepted_then_polled_until_the_worker_made_it(
    api, worker, endpoint, sqs, summary_queue, lambda_context, worker_context
):
    conversation_id = long_conversation(api, endpoint, lambda_context)
    post = sample_event("summarize-conversation", conversation_id)
    # When the summary is requested
    status, headers, body = call(api, post, lambda_context)
    # Then it is accepted, with where and when to poll (the same resource, GET)
    assert status == 202, body
    assert body["status"] == "pending" and body["user_label"] == "Customer"
    location = urljoin(f"https://api.example.com{post['path']}", headers["Location"])
    assert location == f"https://api.example.com{post['path']}"
    assert int(headers["Retry-After"]) > 0
    # And polling says pending until the worker ran
    poll = sample_event("get-summary", conversation_id)
    assert call(api, poll, lambda_context)[:1] == (202,)
    # When the worker handles the queued message
    response = worker.lambda_handler(summary_message(sqs, summary_queue), worker_context)
    # Then it reports no failure, and the poll returns the summary
    assert response == {"batchItemFailures": []}
    status, _, summary = call(api, poll, lambda_context)
    assert status == 200, summary
    assert (summary["status"], summary["stale"], summary["message_count"]) == ("ready", False, 10)
    assert summary["user_label"] == "Customer"


def test_a_poll_with_no_summary_requested_is_a_json_404(api, endpoint, lambda_context):
    conversation_id = long_conversation(api, endpoint, lambda_context, messages=1)
    status, headers, body = call(api, sample_event("get-summary", conversation_id), lambda_context)
    assert status == 404
    assert headers["Content-Type"] == "application/json" and "POST" in body["message"]


def test_a_short_summary_is_still_answered_at_once(api, endpoint, lambda_context):
    conversation_id = long_conversation(api, endpoint, lambda_context, messages=1)
    # one exchange is one chunk: one summarizer call
    endpoint.add_response("invoke_endpoint", model_answer([{"summary_text": "Both."}]))
    status, _, body = call(api, sample_event("summarize-conversation", conversation_id), lambda_context)
    assert (status, body["status"], body["summary"]) == (200, "ready", "Both.")
    # And GET returns it too
    status, _, again = call(api, sample_event("get-summary", conversation_id), lambda_context)
    assert (status, again["summary"], again["stale"]) == (200, "Both.", False)


def test_the_workers_last_receive_marks_the_request_failed(
    api, worker, endpoint, sqs, summary_queue, lambda_context, worker_context
):
    conversation_id = long_conversation(api, endpoint, lambda_context)
    call(api, sample_event("summarize-conversation", conversation_id), lambda_context)
    worker.summarizer.error = ModelUnavailableError("ThrottlingException: rate exceeded for ic-summarizer-7")
    # When the message's last receive (the queue's maxReceiveCount, 3) fails
    event = summary_message(sqs, summary_queue, receive_count=worker.settings.queue_max_receive_count)
    response = worker.lambda_handler(event, worker_context)
    # Then the message fails (to the DLQ), and the poll says failed with a message for the user
    assert [failure["itemIdentifier"] for failure in response["batchItemFailures"]] == [
        event["Records"][0]["messageId"]
    ]
    status, _, body = call(api, sample_event("get-summary", conversation_id), lambda_context)
    assert (status, body["status"], body["error"]["code"]) == (200, "failed", "summarizer_unavailable")
    assert "ThrottlingException" not in json.dumps(body)
