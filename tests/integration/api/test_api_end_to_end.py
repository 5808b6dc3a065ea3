"""The conversations API over real HTTP: local gateway -> handler -> moto + local endpoint."""

import threading
import uuid

import boto3
import pytest
import requests
from conftest import FAIL_MARKER
from rest_helpers import TIMEOUT, auth, create_conversation, list_messages, new_user

pytestmark = pytest.mark.integration


def test_full_conversation_flow(api):
    user = new_user()
    # Given a conversation with a system prompt
    conversation_id = create_conversation(api, user, title="Support", system_prompt="You are a support agent.")
    base = f"{api}/v1/conversations/{conversation_id}"
    # When two turns are sent
    first = requests.post(
        f"{base}/messages", json={"content": "My router keeps rebooting."}, headers=auth(user), timeout=TIMEOUT
    )
    second = requests.post(
        f"{base}/messages", json={"content": "It started yesterday."}, headers=auth(user), timeout=TIMEOUT
    )
    # Then each gets an answer from the chat component, stored in order
    assert first.status_code == second.status_code == 201
    assert first.json()["assistant_message"]["content"]
    assert [m["seq"] for m in list_messages(api, user, conversation_id)] == [1, 2, 3, 4]
    # And the conversation is listed and counted
    listing = requests.get(f"{api}/v1/conversations", headers=auth(user), timeout=TIMEOUT).json()
    assert [item["id"] for item in listing["items"]] == [conversation_id]
    assert listing["items"][0]["message_count"] == 4
    # And a summary comes from the summarizer, then from the cache
    summary = requests.post(f"{base}/summary", json={"user_label": "Customer"}, headers=auth(user), timeout=TIMEOUT)
    assert summary.status_code == 200, summary.text
    assert summary.json()["summary"] and summary.json()["cached"] is False
    again = requests.post(f"{base}/summary", json={"user_label": "Customer"}, headers=auth(user), timeout=TIMEOUT)
    assert again.json()["cached"] is True
    # When renamed, the new title is returned and listed; the messages stay
    renamed = requests.patch(base, json={"title": "Router reboots"}, headers=auth(user), timeout=TIMEOUT)
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["title"], renamed.json()["message_count"]) == ("Router reboots", 4)
    listing = requests.get(f"{api}/v1/conversations", headers=auth(user), timeout=TIMEOUT).json()
    assert [item["title"] for item in listing["items"]] == ["Router reboots"]
    # When cleared, the messages go and the conversation stays
    assert requests.delete(f"{base}/messages", headers=auth(user), timeout=TIMEOUT).status_code == 204
    assert list_messages(api, user, conversation_id) == []
    assert requests.get(base, headers=auth(user), timeout=TIMEOUT).json()["message_count"] == 0
    # When deleted, it is gone
    assert requests.delete(base, headers=auth(user), timeout=TIMEOUT).status_code == 204
    assert requests.get(base, headers=auth(user), timeout=TIMEOUT).status_code == 404


def test_other_users_get_404_on_every_route(api):
    owner, intruder = new_user(), new_user()
    conversation_id = create_conversation(api, owner, title="Mine")
    base = f"{api}/v1/conversations/{conversation_id}"
    attempts = [
        ("GET", base, None),
        ("DELETE", base, None),
        ("PATCH", base, {"title": "taken over"}),
        ("GET", f"{base}/messages", None),
        ("POST", f"{base}/messages", {"content": "hi"}),
        ("DELETE", f"{base}/messages", None),
        ("POST", f"{base}/messages/retry", None),
        ("POST", f"{base}/summary", None),
    ]
    for method, url, body in attempts:
        response = requests.request(method, url, json=body, headers=auth(intruder), timeout=TIMEOUT)
        assert response.status_code == 404, (method, url, response.text)
        assert response.json()["message"]
    mine = requests.get(base, headers=auth(owner), timeout=TIMEOUT)
    assert (mine.status_code, mine.json()["title"]) == (200, "Mine")
    assert list_messages(api, owner, conversation_id) == []


def test_error_statuses_have_json_bodies(api):
    user = new_user()
    conversation_id = create_conversation(api, user)
    base = f"{api}/v1/conversations/{conversation_id}"
    cases = [
        (requests.post(f"{base}/messages", data="{oops", headers=auth(user), timeout=TIMEOUT), 400),
        (requests.post(f"{base}/messages", json={"text": "x"}, headers=auth(user), timeout=TIMEOUT), 422),
        (requests.post(f"{base}/messages", json={"content": "x" * 9000}, headers=auth(user), timeout=TIMEOUT), 413),
        (requests.get(f"{api}/v1/conversations/{uuid.uuid4()}", headers=auth(user), timeout=TIMEOUT), 404),
        (requests.put(base, headers=auth(user), timeout=TIMEOUT), 405),
        (requests.patch(base, json={"title": ""}, headers=auth(user), timeout=TIMEOUT), 422),
        (requests.patch(base, data="{oops", headers=auth(user), timeout=TIMEOUT), 400),
        (requests.get(f"{api}/v1/conversations", timeout=TIMEOUT), 401),
        (requests.get(f"{api}/v1/conversations?cursor=bm9wZQ", headers=auth(user), timeout=TIMEOUT), 400),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert response.json()["message"]
    assert list_messages(api, user, conversation_id) == []


def test_concurrent_messages_are_all_stored_in_a_defined_order(api):
    user = new_user()
    conversation_id = create_conversation(api, user)
    senders = 8
    barrier = threading.Barrier(senders)
    results: dict[int, requests.Response] = {}

    def send(index: int) -> None:
        barrier.wait(timeout=10)
        results[index] = requests.post(
            f"{api}/v1/conversations/{conversation_id}/messages",
            json={"content": f"concurrent message {index}"},
            headers=auth(user),
            timeout=TIMEOUT,
        )

    threads = [threading.Thread(target=send, args=(index,)) for index in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # Every sender got its own answer
    assert sorted(results) == list(range(senders))
    assert all(response.status_code == 201 for response in results.values()), [r.text for r in results.values()]
    # Every message is stored once; each answer sits right after its question
    messages = list_messages(api, user, conversation_id)
    assert [m["seq"] for m in messages] == list(range(1, 2 * senders + 1))
    questions = [m for m in messages if m["role"] == "user"]
    assert sorted(m["content"] for m in questions) == sorted(f"concurrent message {i}" for i in range(senders))
    for question, answer in zip(messages[::2], messages[1::2], strict=True):
        assert (question["role"], answer["role"], answer["reply_to"]) == ("user", "assistant", question["seq"])
    for index, response in results.items():
        assert response.json()["user_message"]["content"] == f"concurrent message {index}"


def test_idempotency_key_makes_a_retried_send_safe(api):
    user = new_user()
    conversation_id = create_conversation(api, user)
    url = f"{api}/v1/conversations/{conversation_id}/messages"
    headers = {**auth(user), "Idempotency-Key": str(uuid.uuid4())}
    first = requests.post(url, json={"content": "Charge me once"}, headers=headers, timeout=TIMEOUT)
    second = requests.post(url, json={"content": "Charge me once"}, headers=headers, timeout=TIMEOUT)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert len(list_messages(api, user, conversation_id)) == 2
    reused = requests.post(url, json={"content": "Something else"}, headers=headers, timeout=TIMEOUT)
    assert reused.status_code == 422
    assert len(list_messages(api, user, conversation_id)) == 2


def test_model_failure_then_retry_answers_the_same_message(api):
    user = new_user()
    conversation_id = create_conversation(api, user)
    url = f"{api}/v1/conversations/{conversation_id}/messages"
    text = f"Please answer {FAIL_MARKER}"
    # Given the model fails on this message the first time
    failed = requests.post(url, json={"content": text}, headers=auth(user), timeout=TIMEOUT)
    assert failed.status_code == 502
    assert [m["status"] for m in list_messages(api, user, conversation_id)] == ["unanswered"]
    # When the client sends it again
    retried = requests.post(url, json={"content": text}, headers=auth(user), timeout=TIMEOUT)
    # Then the stored message is answered, not duplicated
    assert retried.status_code == 201, retried.text
    messages = list_messages(api, user, conversation_id)
    assert [(m["seq"], m["role"]) for m in messages] == [(1, "user"), (2, "assistant")]
    assert messages[0]["status"] == "answered"


def test_no_capacity_is_503_with_retry_after_and_the_retry_route_recovers(api, local_stack):
    user = new_user()
    conversation_id = create_conversation(api, user)
    control = boto3.client(
        "sagemaker",
        endpoint_url=local_stack["endpoint_url"],
        region_name="us-east-1",
        aws_access_key_id="t",
        aws_secret_access_key="t",
    )
    # Given the chat component is scaled to zero copies
    control.update_inference_component_runtime_config(
        InferenceComponentName="chat", DesiredRuntimeConfig={"CopyCount": 0}
    )
    try:
        response = requests.post(
            f"{api}/v1/conversations/{conversation_id}/messages",
            json={"content": "Anyone there?"},
            headers=auth(user),
            timeout=TIMEOUT,
        )
    finally:
        control.update_inference_component_runtime_config(
            InferenceComponentName="chat", DesiredRuntimeConfig={"CopyCount": 1}
        )
    # Then the caller is told when to come back, and the message waits
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) > 0
    assert [m["status"] for m in list_messages(api, user, conversation_id)] == ["unanswered"]
    # When capacity is back, the retry route answers it
    retried = requests.post(
        f"{api}/v1/conversations/{conversation_id}/messages/retry", headers=auth(user), timeout=TIMEOUT
    )
    assert retried.status_code == 201, retried.text
    assert retried.json()["user_message"]["seq"] == 1
