"""Per-user quotas on model requests: fixed-window counters in the template's table (moto)."""

import boto3
import pytest
from botocore.stub import Stubber
from chatbot.conversations.policy import ChatPolicy
from chatbot.conversations.service import ConversationService
from chatbot.dynamodb import deserialize
from chatbot.errors import QuotaExceededError
from chatbot.inference import ModelInvocationError
from chatbot.quotas import QuotaLimit, UserQuota, chat_requests_per_minute, quota_pk

WINDOW_START = 1_764_590_400  # a whole minute (and hour)


class FixedClock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def quota_clock() -> FixedClock:
    return FixedClock(WINDOW_START + 15.5)


@pytest.fixture
def make_quota(moto_table, dynamodb, quota_clock):
    def build(limit: QuotaLimit) -> UserQuota:
        return UserQuota(moto_table, dynamodb, limit, clock=quota_clock)

    return build


def _counters(dynamodb, table: str, user: str) -> list[dict]:
    response = dynamodb.query(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": quota_pk(user)}},
    )
    return [deserialize(item) for item in response["Items"]]


def test_requests_under_the_limit_pass_and_are_counted_until_the_window_ends(make_quota, dynamodb, moto_table):
    # Given a quota of 3 chat requests per minute
    quota = make_quota(chat_requests_per_minute(3))
    # When alice makes 3 requests in one minute
    for _ in range(3):
        quota.take("alice")
    # Then all pass, and one counter holds them, expiring (TTL) when its minute ends
    assert _counters(dynamodb, moto_table, "alice") == [
        {"pk": "QUOTA#alice", "sk": f"CHAT#{WINDOW_START}", "count": 3, "expires_at": WINDOW_START + 60}
    ]


def test_the_request_over_the_limit_is_refused_until_the_next_window(make_quota, quota_clock):
    # Given alice used her 3 requests 15.5 s into the minute
    quota = make_quota(chat_requests_per_minute(3))
    for _ in range(3):
        quota.take("alice")
    # When she makes a 4th
    with pytest.raises(QuotaExceededError) as refused:
        quota.take("alice")
    # Then it is refused, naming the limit, with the seconds left in the minute (44.5, rounded up)
    assert refused.value.retry_after_s == 45
    assert "3 chat requests per minute" in refused.value.message
    # And a refused request is not counted: 20 s later, still refused, with 25 s to go
    quota_clock.now += 20
    with pytest.raises(QuotaExceededError) as again:
        quota.take("alice")
    assert again.value.retry_after_s == 25


def test_a_new_window_resets_the_count(make_quota, quota_clock, dynamodb, moto_table):
    # Given alice used her 2 requests in one minute
    quota = make_quota(chat_requests_per_minute(2))
    quota.take("alice")
    quota.take("alice")
    # When the next minute starts
    quota_clock.now = WINDOW_START + 60
    # Then she has 2 requests again
    quota.take("alice")
    quota.take("alice")
    with pytest.raises(QuotaExceededError):
        quota.take("alice")
    assert sorted(item["sk"] for item in _counters(dynamodb, moto_table, "alice")) == [
        f"CHAT#{WINDOW_START}",
        f"CHAT#{WINDOW_START + 60}",
    ]


def test_another_user_is_unaffected(make_quota):
    # Given alice used up her quota
    quota = make_quota(chat_requests_per_minute(1))
    quota.take("alice")
    with pytest.raises(QuotaExceededError):
        quota.take("alice")
    # When bob makes a request in the same minute, Then it passes
    quota.take("bob")


def test_a_limit_of_zero_sets_no_quota(make_quota, dynamodb, moto_table):
    # Given a quota configured as 0
    quota = make_quota(chat_requests_per_minute(0))
    # When alice makes many requests, Then all pass and nothing is written
    for _ in range(50):
        quota.take("alice")
    assert _counters(dynamodb, moto_table, "alice") == []


def test_a_throttled_counter_lets_the_request_through_but_other_errors_do_not(moto_table, quota_clock):
    # Given a table that answers the counter's update with throttling, then with an access denial
    client = boto3.client("dynamodb", region_name="us-east-1")
    quota = UserQuota(moto_table, client, chat_requests_per_minute(1), clock=quota_clock)
    with Stubber(client) as table:
        table.add_client_error("update_item", "ProvisionedThroughputExceededException")
        table.add_client_error("update_item", "AccessDeniedException")
        # When the quota is checked, Then throttling lets the request through (fail open)
        quota.take("alice")
        # And any other failure is not hidden
        with pytest.raises(Exception, match="AccessDenied"):
            quota.take("alice")


# -- where the conversation service spends the quota ------------------------------------------------


@pytest.fixture
def limited_service(store, inference, clock, moto_table, dynamodb):
    """The conversation service with a quota of 2 chat requests per minute, on the service's own clock."""
    quota = UserQuota(moto_table, dynamodb, chat_requests_per_minute(2), clock=lambda: clock().timestamp())
    return ConversationService(store, inference, ChatPolicy(), clock=clock, quota=quota)


def test_a_refused_send_stores_nothing_and_calls_no_model(limited_service, inference, store):
    # Given alice used her 2 requests
    conversation_id = limited_service.create_conversation("alice", None, None)["id"]
    limited_service.send_message("alice", conversation_id, "first")
    limited_service.send_message("alice", conversation_id, "second")
    # When she sends a third in the same minute
    with pytest.raises(QuotaExceededError):
        limited_service.send_message("alice", conversation_id, "third")
    # Then neither the model nor the table saw it
    assert len(inference.chat_calls) == 2
    assert [message["content"] for message in store.all_messages(conversation_id)] == [
        "first",
        "answer to: first",
        "second",
        "answer to: second",
    ]


def test_streamed_sends_retries_and_summaries_spend_the_same_quota(limited_service, inference):
    # Given a streamed send the model failed on (one request), answered by a retry (another)
    conversation_id = limited_service.create_conversation("alice", None, None)["id"]
    inference.failures.append(ModelInvocationError("the model failed"))
    with pytest.raises(ModelInvocationError):
        list(limited_service.stream_message("alice", conversation_id, "hello"))
    assert limited_service.retry_last_message("alice", conversation_id)["assistant_message"]
    # When she asks for a summary, Then it is refused
    with pytest.raises(QuotaExceededError):
        limited_service.summarize_conversation("alice", conversation_id)
    # And a streamed send is refused before any piece
    with pytest.raises(QuotaExceededError):
        next(limited_service.stream_message("alice", conversation_id, "again"))
    assert len(inference.chat_calls) == 2 and inference.summarize_calls == []


def test_answers_without_model_work_spend_no_quota(limited_service, inference):
    # Given one answered send with an Idempotency-Key and one summary: the 2 requests of the minute
    conversation_id = limited_service.create_conversation("alice", None, None)["id"]
    first = limited_service.send_message("alice", conversation_id, "hello", idempotency_key="k1")
    summary = limited_service.summarize_conversation("alice", conversation_id)
    # When the same key is resent and the same summary asked again
    resent = limited_service.send_message("alice", conversation_id, "hello", idempotency_key="k1")
    cached = limited_service.summarize_conversation("alice", conversation_id)
    # Then both are answered from the table, within the used-up quota
    assert resent == first
    assert cached["summary"] == summary["summary"] and cached["cached"] is True
    assert len(inference.chat_calls) == 1 and len(inference.summarize_calls) == 1
