"""A summary too long for the API's time budget over real HTTP: POST answers 202, the summary requests queue's worker
(SummarizeConversationFunction in its own environment, fed by the local SQS poller) makes it, GET returns it."""

import time
from urllib.parse import urljoin

import pytest
import requests
from chatbot.conversations.policy import ChatPolicy
from chatbot.summarization import Turn, plan_summary
from rest_helpers import TIMEOUT, auth, create_conversation, new_user

pytestmark = pytest.mark.integration

# Near the longest message the API takes (8,000 characters), ~2,000 tokens: about two summarizer chunks each.
LONG_MESSAGE = ("The customer reported that the router reboots every evening after the firmware update. " * 100)[:7800]
MESSAGES = 3
WAIT_S = 120  # a bound, not a measurement: the worker's cold start and a few extractive summaries


def test_a_long_summary_is_accepted_made_in_the_background_and_polled(api):
    # Given a conversation whose summary the API's own plan puts beyond the synchronous calls
    policy = ChatPolicy()
    plan = plan_summary([Turn("User", LONG_MESSAGE)] * MESSAGES, max_input_tokens=policy.summarizer_max_input_tokens)
    assert plan.calls > policy.summary_sync_max_calls
    user = new_user()
    conversation_id = create_conversation(api, user)
    url = f"{api}/v1/conversations/{conversation_id}/summary"
    for _ in range(MESSAGES):
        sent = requests.post(
            f"{api}/v1/conversations/{conversation_id}/messages",
            json={"content": LONG_MESSAGE},
            headers=auth(user),
            timeout=TIMEOUT,
        )
        assert sent.status_code == 201, sent.text
    # When the summary is requested
    accepted = requests.post(url, json={"user_label": "Customer"}, headers=auth(user), timeout=TIMEOUT)
    # Then it is accepted, with where to poll
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["status"] == "pending"
    poll_url = urljoin(accepted.url, accepted.headers["Location"])
    assert poll_url == url
    # And polling it ends with the summary of every message
    deadline = time.monotonic() + WAIT_S
    polled = requests.get(poll_url, headers=auth(user), timeout=TIMEOUT)
    while polled.status_code == 202 and time.monotonic() < deadline:
        time.sleep(0.5)
        polled = requests.get(poll_url, headers=auth(user), timeout=TIMEOUT)
    assert polled.status_code == 200, polled.text
    summary = polled.json()
    assert (summary["status"], summary["stale"], summary["message_count"]) == ("ready", False, 2 * MESSAGES)
    assert summary["summary"] and summary["user_label"] == "Customer"
    assert summary["chunk_count"] >= plan.chunk_count
    # And asking again now answers at once from the cache
    again = requests.post(url, json={"user_label": "Customer"}, headers=auth(user), timeout=TIMEOUT)
    assert (again.status_code, again.json()["cached"]) == (200, True)
