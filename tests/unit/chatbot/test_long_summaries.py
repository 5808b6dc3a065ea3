"""Whole-conversation summaries too long for the API's time budget: planned, queued (202), made by the worker."""

import json

import boto3
import pytest
from chatbot.conversations.policy import ChatPolicy
from chatbot.conversations.service import ConversationService
from chatbot.conversations.summary_requests import SummaryQueue
from chatbot.errors import NotFoundError
from chatbot.inference import InputTooLongError, ModelInvocationError, ModelUnavailableError
from chatbot.summarization import PLANNED_SUMMARY_TOKENS, Turn, plan_summary, summarize_turns
from chatbot.tokens import estimate_tokens

ALICE = "alice-sub"
# Chunks of ~390 tokens: ten messages of ~375 tokens make ten chunks, a plan of four summarizer calls.
SMALL_SUMMARIZER = ChatPolicy(summarizer_max_input_tokens=400)
LONG_MESSAGE = "a" * 1500  # ~375 estimated tokens


@pytest.fixture
def sqs(moto_table):
    return boto3.client("sqs", region_name="us-east-1")


@pytest.fixture
def queue_url(sqs) -> str:
    return sqs.create_queue(QueueName="summary-requests")["QueueUrl"]


@pytest.fixture
def make(store, inference, clock, sqs, queue_url):
    def build(policy: ChatPolicy = SMALL_SUMMARIZER) -> ConversationService:
        queue = SummaryQueue(queue_url, lambda: sqs)
        return ConversationService(store, inference, policy, summary_queue=queue, clock=clock)

    return build


@pytest.fixture
def api(make) -> ConversationService:
    return make()


@pytest.fixture
def worker(store, inference, clock) -> ConversationService:
    """The worker's service: no queue of its own (SummarizeConversationFunction's wiring)."""
    return ConversationService(store, inference, SMALL_SUMMARIZER, clock=clock)


def queued(sqs, queue_url) -> list[str]:
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [message["Body"] for message in messages]


def long_conversation(service: ConversationService, messages: int = 5) -> str:
    conversation_id = service.create_conversation(ALICE, None, None)["id"]
    for _ in range(messages):
        service.send_message(ALICE, conversation_id, LONG_MESSAGE)
    return conversation_id


@pytest.mark.parametrize("turn_count", [1, 9, 40, 300])
def test_the_plan_counts_the_calls_the_run_makes(turn_count):
    # Given turns, and a summarizer whose every summary is as long as the plan assumes
    turns = [Turn("User" if index % 2 else "AI", f"turn {index} " + "words " * 120) for index in range(turn_count)]
    longest = " ".join(["word"] * PLANNED_SUMMARY_TOKENS)
    assert estimate_tokens(longest) == PLANNED_SUMMARY_TOKENS
    calls = []

    def summarize(texts):
        calls.append(texts)
        return [longest] * len(texts)

    # When planned and then run, Then the plan names the calls, chunks and rounds the run makes
    result = summarize_turns(turns, summarize)
    plan = plan_summary(turns)
    assert (plan.calls, plan.chunk_count, plan.rounds) == (len(calls), result.chunk_count, result.rounds)
    # And shorter summaries only take fewer calls
    shorter = []
    summarize_turns(turns, lambda texts: shorter.append(texts) or ["short"] * len(texts))
    assert len(shorter) <= plan.calls


def test_the_plan_decides_between_an_answer_now_and_a_background_summary(api, inference, sqs, queue_url):
    # Given a short conversation, planned within the synchronous calls
    short = api.create_conversation(ALICE, None, None)["id"]
    api.send_message(ALICE, short, "Hello")
    # When summarized, Then the summary comes now and nothing is queued
    assert api.summarize_conversation(ALICE, short)["status"] == "ready"
    assert queued(sqs, queue_url) == []
    # Given a long one (five exchanges of ~375-token messages and short answers)
    long = long_conversation(api)
    summarizer_calls = len(inference.summarize_calls)
    turns = [Turn("User", LONG_MESSAGE)] * 5
    assert plan_summary(turns, max_input_tokens=400).calls > SMALL_SUMMARIZER.summary_sync_max_calls
    # When summarized
    answer = api.summarize_conversation(ALICE, long, "Customer", "Agent")
    # Then it is pending, the summarizer was not called, and one request is queued
    assert answer["status"] == "pending"
    assert (answer["user_label"], answer["assistant_label"]) == ("Customer", "Agent")
    assert len(inference.summarize_calls) == summarizer_calls
    (body,) = queued(sqs, queue_url)
    assert json.loads(body)["conversation_id"] == long


def test_posting_again_while_pending_queues_nothing_new(api, sqs, queue_url):
    conversation_id = long_conversation(api)
    first = api.summarize_conversation(ALICE, conversation_id)
    again = api.summarize_conversation(ALICE, conversation_id)
    assert first == again
    assert len(queued(sqs, queue_url)) == 1


def test_the_worker_stores_the_summary_and_the_poll_returns_it(api, worker, store, sqs, queue_url):
    # Given a queued summary request
    conversation_id = long_conversation(api)
    api.summarize_conversation(ALICE, conversation_id)
    assert api.summary_status(ALICE, conversation_id)["status"] == "pending"
    (body,) = queued(sqs, queue_url)
    # When the worker handles its message
    assert worker.complete_summary_request(body) == "ready"
    # Then the poll returns the summary of every message, current
    summary = api.summary_status(ALICE, conversation_id)
    assert (summary["status"], summary["stale"], summary["message_count"]) == ("ready", False, 10)
    assert summary["chunk_count"] > 1 and summary["summary"]
    # And it is cached: POST answers it at once, queueing nothing
    assert store.get_conversation(conversation_id)["cached_summary"]["summary"] == summary["summary"]
    assert api.summarize_conversation(ALICE, conversation_id)["cached"] is True
    assert queued(sqs, queue_url) == []
    # And the same message delivered again does no work
    assert worker.complete_summary_request(body) == "superseded"


def test_a_summary_finished_after_the_conversation_moved_on_is_returned_as_stale(api, worker, sqs, queue_url):
    conversation_id = long_conversation(api)
    api.summarize_conversation(ALICE, conversation_id)
    (body,) = queued(sqs, queue_url)
    worker.complete_summary_request(body)
    # When a message arrives after the summary was made
    api.send_message(ALICE, conversation_id, "One more thing")
    # Then the poll still returns it, flagged stale
    summary = api.summary_status(ALICE, conversation_id)
    assert (summary["status"], summary["stale"]) == ("ready", True)


def test_a_permanent_failure_is_reported_without_the_exception_and_can_be_requested_again(
    api, worker, inference, sqs, queue_url, monkeypatch
):
    conversation_id = long_conversation(api)
    api.summarize_conversation(ALICE, conversation_id)
    (body,) = queued(sqs, queue_url)
    # Given a summarizer that fails with internal details
    monkeypatch.setattr(inference, "summarize", _raises(ModelInvocationError("CUDA error at 0x7f: secret detail")))
    # When the worker handles the request
    assert worker.complete_summary_request(body) == "failed"
    # Then the poll reports it failed with a message for the user, without the exception's text
    failed = api.summary_status(ALICE, conversation_id)
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "summarizer_failed"
    assert "CUDA" not in json.dumps(failed) and failed["error"]["message"]
    # And a POST requests it again
    assert api.summarize_conversation(ALICE, conversation_id)["status"] == "pending"
    assert len(queued(sqs, queue_url)) == 1


def test_a_transient_failure_is_retried_and_marked_failed_on_the_last_receive(
    api, worker, inference, sqs, queue_url, monkeypatch
):
    conversation_id = long_conversation(api)
    api.summarize_conversation(ALICE, conversation_id)
    (body,) = queued(sqs, queue_url)
    monkeypatch.setattr(inference, "summarize", _raises(ModelUnavailableError("throttled")))
    # When a receive before the last fails, Then it is raised for the queue to retry and the request stays pending
    with pytest.raises(ModelUnavailableError):
        worker.complete_summary_request(body, final_attempt=False)
    assert api.summary_status(ALICE, conversation_id)["status"] == "pending"
    # When the last receive fails too, Then the request ends failed (never pending forever), and it is still raised
    with pytest.raises(ModelUnavailableError):
        worker.complete_summary_request(body, final_attempt=True)
    failed = api.summary_status(ALICE, conversation_id)
    assert (failed["status"], failed["error"]["code"]) == ("failed", "summarizer_unavailable")


def test_a_plan_longer_than_the_workers_time_fails_up_front(api, worker, inference, sqs, queue_url):
    conversation_id = long_conversation(api)
    api.summarize_conversation(ALICE, conversation_id)
    (body,) = queued(sqs, queue_url)
    calls = len(inference.summarize_calls)
    # When the worker has 10 s left for a plan of four calls of up to 8 s
    assert worker.complete_summary_request(body, remaining_ms=lambda: 10_000) == "failed"
    # Then no summarizer call is paid for, and the user is told why
    assert len(inference.summarize_calls) == calls
    assert api.summary_status(ALICE, conversation_id)["error"]["code"] == "too_long"


def test_the_synchronous_summary_stops_at_its_planned_calls(make, inference, sqs, queue_url, monkeypatch):
    # Given a conversation planned at two calls, and a summarizer whose tokenizer finds every chunk too long
    api = make(ChatPolicy(summarizer_max_input_tokens=400))
    conversation_id = long_conversation(api, messages=1)
    summarizer_calls = []

    def too_long(texts, **parameters):
        summarizer_calls.append(texts)
        raise InputTooLongError("input exceeds the model's 1024 tokens")

    monkeypatch.setattr(inference, "summarize", too_long)
    # When summarized, Then it continues in the background after at most the planned calls
    assert api.summarize_conversation(ALICE, conversation_id)["status"] == "pending"
    assert len(summarizer_calls) <= SMALL_SUMMARIZER.summary_sync_max_calls
    assert len(queued(sqs, queue_url)) == 1


def test_a_poll_without_a_request_is_not_found_and_a_clear_forgets_the_request(api, sqs, queue_url):
    conversation_id = long_conversation(api)
    with pytest.raises(NotFoundError, match="No summary was requested"):
        api.summary_status(ALICE, conversation_id)
    api.summarize_conversation(ALICE, conversation_id)
    api.clear_conversation(ALICE, conversation_id)
    with pytest.raises(NotFoundError):
        api.summary_status(ALICE, conversation_id)


def _raises(error: Exception):
    def summarize(texts, **parameters):
        raise error

    return summarize
