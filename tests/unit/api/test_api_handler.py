"""The conversations Lambda handler fed the sample events in events/ (as `sam local invoke` would)."""

import json

import pytest
from api_event_helpers import call, model_answer, sample_event
from chatbot.conversations.policy import MAX_MESSAGE_CHARS

from local.events import SAMPLE_DIR, SAMPLE_USER, sample_events

ANSWER = {"choices": [{"message": {"role": "assistant", "content": "Let me check that invoice."}}]}


@pytest.fixture
def conversation_id(handler_module, lambda_context) -> str:
    status, _, body = call(handler_module, sample_event("create-conversation"), lambda_context)
    assert status == 201
    return body["id"]


def test_committed_sample_events_are_current():
    for name, event in sample_events().items():
        committed = json.loads((SAMPLE_DIR / f"{name}.json").read_text())
        assert committed == event, f"events/conversations/{name}.json is stale: run `python -m local.events`"


def test_every_route_answers_its_sample_event(handler_module, endpoint, lambda_context, conversation_id):
    # Given the endpoint answers the chat turn and the summary
    endpoint.add_response("invoke_endpoint", model_answer(ANSWER))
    endpoint.add_response("invoke_endpoint", model_answer([{"summary_text": "Invoice question."}]))
    expected = [
        ("get-conversation", 200),
        ("rename-conversation", 200),
        ("list-conversations", 200),
        ("send-message", 201),
        ("list-messages", 200),
        ("summarize-conversation", 200),
        ("retry-message", 409),  # nothing unanswered
        ("clear-conversation", 204),
        ("delete-conversation", 204),
        ("get-conversation", 404),
    ]
    # When each sample event is sent in turn, Then each route answers as documented
    for name, status in expected:
        needs_id = "{conversation_id}" in sample_event(name)["resource"]
        event = sample_event(name, conversation_id) if needs_id else sample_event(name)
        got, headers, body = call(handler_module, event, lambda_context)
        assert got == status, (name, body)
        if status != 204:
            assert headers["Content-Type"] == "application/json"
    endpoint.assert_no_pending_responses()


def test_send_message_returns_both_messages(handler_module, endpoint, lambda_context, conversation_id):
    endpoint.add_response("invoke_endpoint", model_answer(ANSWER))
    status, _, body = call(handler_module, sample_event("send-message", conversation_id), lambda_context)
    assert status == 201
    assert body["user_message"]["content"].startswith("My invoice shows two charges")
    assert body["assistant_message"] == {
        **body["assistant_message"],
        "role": "assistant",
        "content": "Let me check that invoice.",
        "reply_to": body["user_message"]["seq"],
    }


def test_idempotency_key_replays_the_first_answer(handler_module, endpoint, lambda_context, conversation_id):
    # Given one model answer only
    endpoint.add_response("invoke_endpoint", model_answer(ANSWER))
    event = sample_event("send-message", conversation_id, headers={"Idempotency-Key": "key-1"})
    # When the same request is sent twice
    first = call(handler_module, event, lambda_context)
    second = call(handler_module, event, lambda_context)
    # Then the second gets the first answer and nothing is stored twice
    assert first[0] == second[0] == 201
    assert first[2] == second[2]
    _, _, messages = call(handler_module, sample_event("list-messages", conversation_id), lambda_context)
    assert len(messages["items"]) == 2
    # And the same key with another text is refused
    other = sample_event(
        "send-message", conversation_id, body={"content": "different"}, headers={"Idempotency-Key": "key-1"}
    )
    status, _, body = call(handler_module, other, lambda_context)
    assert status == 422
    assert "Idempotency-Key" in body["message"]


@pytest.mark.parametrize(
    ("body", "status", "fields"),
    [
        ("{not json", 400, None),
        ({"content": 5, "extra": True}, 422, {"body.content", "body.extra"}),
        ({}, 422, {"body.content"}),
        ({"content": "   "}, 422, {"body.content"}),
        ({"content": "x" * (MAX_MESSAGE_CHARS + 1)}, 413, None),
    ],
    ids=["malformed", "wrong-types", "missing", "blank", "too-large"],
)
def test_bad_message_bodies(handler_module, lambda_context, conversation_id, body, status, fields):
    event = sample_event("send-message", conversation_id, body=body, headers={"Idempotency-Key": f"k-{status}"})
    got, _, answer = call(handler_module, event, lambda_context)
    assert got == status
    assert answer["message"]
    if fields:
        assert {error["field"] for error in answer["errors"]} == fields
    # Nothing was stored
    _, _, messages = call(handler_module, sample_event("list-messages", conversation_id), lambda_context)
    assert messages["items"] == []


def test_query_parameters_are_validated(handler_module, lambda_context, conversation_id):
    event = sample_event("list-messages", conversation_id)
    event["queryStringParameters"] = {"limit": "0", "order": "sideways"}
    event["multiValueQueryStringParameters"] = {"limit": ["0"], "order": ["sideways"]}
    status, _, body = call(handler_module, event, lambda_context)
    assert status == 422
    assert {error["field"] for error in body["errors"]} == {"query.limit", "query.order"}


def test_tampered_cursor_is_a_bad_request(handler_module, lambda_context):
    event = sample_event("list-conversations")
    event["queryStringParameters"] = {"cursor": "eyJwayI6IkNPTlYjMSJ9"}
    event["multiValueQueryStringParameters"] = {"cursor": ["eyJwayI6IkNPTlYjMSJ9"]}
    status, _, body = call(handler_module, event, lambda_context)
    assert status == 400
    assert "cursor" in body["message"]


def test_another_users_conversation_is_not_found(handler_module, lambda_context, conversation_id):
    status, _, body = call(
        handler_module, sample_event("get-conversation", conversation_id, user="mallory"), lambda_context
    )
    assert (status, body) == (404, {"message": "Conversation not found."})


def test_missing_claims_are_unauthorized(handler_module, lambda_context):
    event = sample_event("list-conversations")
    del event["requestContext"]["authorizer"]
    status, _, body = call(handler_module, event, lambda_context)
    assert (status, body) == (401, {"message": "Unauthorized"})


def test_wrong_method_is_405_with_allow(handler_module, lambda_context, conversation_id):
    event = sample_event("get-conversation", conversation_id)
    event["httpMethod"] = "PUT"
    status, headers, body = call(handler_module, event, lambda_context)
    assert status == 405
    assert headers["Allow"] == "DELETE, GET, PATCH"
    assert "PUT" in body["message"]


@pytest.mark.parametrize(
    ("code", "http", "message", "status", "retry_after"),
    [
        ("ModelError", 424, "Received server error (500) from primary", 502, None),
        ("ModelNotReadyException", 429, "not ready", 503, "5"),
        ("ValidationError", 400, "Inference Component has no capacity to process this request.", 503, "60"),
    ],
)
def test_model_failures_keep_the_message(
    handler_module, endpoint, lambda_context, conversation_id, code, http, message, status, retry_after
):
    # Given the endpoint fails (adaptive retries may try twice)
    for _ in range(2):
        endpoint.add_client_error(
            "invoke_endpoint", service_error_code=code, service_message=message, http_status_code=http
        )
    event = sample_event("send-message", conversation_id, headers={"Idempotency-Key": f"fail-{code}"})
    # When sending
    got, headers, body = call(handler_module, event, lambda_context)
    # Then the caller gets 502/503 (+ Retry-After) and the message is kept, unanswered
    assert got == status
    assert headers.get("Retry-After") == retry_after
    assert "saved" in body["message"]
    _, _, messages = call(handler_module, sample_event("list-messages", conversation_id), lambda_context)
    assert [m["status"] for m in messages["items"]] == ["unanswered"]


def test_sample_user_owns_what_it_creates(handler_module, lambda_context, conversation_id):
    _, _, listing = call(handler_module, sample_event("list-conversations"), lambda_context)
    assert [item["id"] for item in listing["items"]] == [conversation_id]
    assert SAMPLE_USER  # the sample events all act as this Cognito user


def test_malformed_conversation_ids_are_schema_errors(handler_module, lambda_context):
    event = sample_event("get-conversation", "x" * 3000)
    status, _, body = call(handler_module, event, lambda_context)
    assert status == 422
    assert [error["field"] for error in body["errors"]] == ["path.conversation_id"]


def test_same_idempotency_key_after_a_model_failure_answers(handler_module, endpoint, lambda_context, conversation_id):
    # Given the first attempt fails at the model (a ModelError is not retried by botocore)
    endpoint.add_client_error("invoke_endpoint", service_error_code="ModelError", http_status_code=424)
    endpoint.add_response("invoke_endpoint", model_answer(ANSWER))
    event = sample_event("send-message", conversation_id, headers={"Idempotency-Key": "after-failure"})
    assert call(handler_module, event, lambda_context)[0] == 502
    # When the client retries with the same key, Then it is answered (failures are not cached)
    status, _, body = call(handler_module, event, lambda_context)
    assert status == 201
    assert body["user_message"]["seq"] == 1


def test_rename_returns_the_renamed_conversation(handler_module, lambda_context, conversation_id):
    # Given a conversation made from the sample event (title "Billing question", a system prompt)
    _, _, before = call(handler_module, sample_event("get-conversation", conversation_id), lambda_context)
    # When it is renamed with the sample event
    status, _, body = call(handler_module, sample_event("rename-conversation", conversation_id), lambda_context)
    # Then the answer is the conversation with the new title and everything else as it was
    assert status == 200
    assert body == {**before, "title": "Double charge in November"}
    _, _, after = call(handler_module, sample_event("get-conversation", conversation_id), lambda_context)
    assert after == body


def test_rename_can_remove_the_system_prompt(handler_module, lambda_context, conversation_id):
    event = sample_event("rename-conversation", conversation_id, body={"title": "No prompt", "system_prompt": None})
    status, _, body = call(handler_module, event, lambda_context)
    assert (status, body["title"], body["system_prompt"]) == (200, "No prompt", None)


@pytest.mark.parametrize(
    ("body", "status", "fields"),
    [
        ("{not json", 400, None),
        ({}, 422, {"body.title"}),
        ({"title": "   "}, 422, {"body.title"}),
        ({"title": "x" * 201}, 422, {"body.title"}),
        ({"title": 7, "owner": "mallory"}, 422, {"body.title", "body.owner"}),
        ({"title": "ok", "system_prompt": ""}, 422, {"body.system_prompt"}),
    ],
    ids=["malformed", "missing", "blank", "too-long", "wrong-type-and-extra", "empty-prompt"],
)
def test_bad_rename_bodies_change_nothing(handler_module, lambda_context, conversation_id, body, status, fields):
    event = sample_event("rename-conversation", conversation_id, body=body)
    got, _, answer = call(handler_module, event, lambda_context)
    assert got == status
    assert answer["message"]
    if fields:
        assert {error["field"] for error in answer["errors"]} == fields
    _, _, conversation = call(handler_module, sample_event("get-conversation", conversation_id), lambda_context)
    assert conversation["title"] == "Billing question"


def test_someone_elses_conversation_cannot_be_renamed(handler_module, lambda_context, conversation_id):
    event = sample_event("rename-conversation", conversation_id, user="mallory")
    status, _, body = call(handler_module, event, lambda_context)
    assert (status, body) == (404, {"message": "Conversation not found."})
    _, _, conversation = call(handler_module, sample_event("get-conversation", conversation_id), lambda_context)
    assert conversation["title"] == "Billing question"


def test_the_ask_about_call_sample_names_a_job_the_caller_does_not_have(handler_module, lambda_context):
    # Given no transcript job in the table; When the committed sample asks about its job
    status, _, body = call(handler_module, sample_event("ask-about-call"), lambda_context)
    # Then it is not found, and nothing was created
    assert (status, body["message"]) == (404, "Transcript job not found.")
    _, _, listed = call(handler_module, sample_event("list-conversations"), lambda_context)
    assert listed["items"] == []


def _cursor(text: str) -> str:
    import base64

    return base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).decode().rstrip("=")


@pytest.mark.parametrize(
    "sk",
    [
        "MSG#",
        "MSG#0000000000",
        "MSG#abcdefghij",
        "MSG#99999999999",
        "MSG#000000001",
        "MSG#-000000001",
        "MSG#000000000\u0661",
    ],
)
def test_a_message_cursor_outside_the_message_range_is_a_bad_request(
    handler_module, lambda_context, conversation_id, sk
):
    # Given a cursor for this very conversation whose MSG# key lies outside the range the listing queries
    cursor = _cursor(json.dumps({"pk": f"CONV#{conversation_id}", "sk": sk}))
    event = sample_event("list-messages", conversation_id)
    event["queryStringParameters"] = {"cursor": cursor}
    event["multiValueQueryStringParameters"] = {"cursor": [cursor]}

    # When the messages are listed with it
    status, _, body = call(handler_module, event, lambda_context)

    # Then it is a 400 naming the cursor, not a DynamoDB error
    assert status == 400, body
    assert "cursor" in body["message"]


@pytest.mark.parametrize(
    "text",
    ["[" * 1500, '{"pk":"CONV#1","sk":"META","gsi1pk":"USER#' + SAMPLE_USER + '#CONV","gsi1sk":"\\ud800"}'],
    ids=["recursion", "lone-surrogate"],
)
def test_a_crafted_conversation_cursor_is_a_bad_request(handler_module, lambda_context, text):
    # Given a cursor that nests past the recursion limit, or holds a value that is no UTF-8 string
    cursor = _cursor(text)
    event = sample_event("list-conversations")
    event["queryStringParameters"] = {"cursor": cursor}
    event["multiValueQueryStringParameters"] = {"cursor": [cursor]}

    # When / Then
    status, _, body = call(handler_module, event, lambda_context)
    assert status == 400, body
    assert "cursor" in body["message"]
