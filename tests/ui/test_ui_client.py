"""The UI's REST client, settings, sign-in and server start, without Streamlit."""

from __future__ import annotations

import re
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import boto3
import pytest
import requests
from fake_api import FakeApi, InjectedFailure
from moto import mock_aws

from ui import UIStartError, start_ui
from ui.api_client import NO_RESPONSE, ApiError, ChatbotApiClient, TranscriptTurn, parse_retry_after
from ui.auth import SignInError, refresh, sign_in
from ui.settings import AuthMode, UISettings, UISettingsError
from ui.views.common import describe_error


@pytest.fixture
def api():
    fake = FakeApi().start()
    yield fake
    fake.stop()


def test_client_round_trip_through_every_conversation_route(api):
    # Given a client for user carol
    client = ChatbotApiClient(api.url, "local-carol")
    # When she creates a conversation, talks, summarizes, renames, clears and deletes it
    created = client.create_conversation(title="Billing")
    exchange = client.send_message(created.id, "Why was I charged twice?")
    summary = client.summarize(created.id)
    renamed = client.rename_conversation(created.id, "Double charge")
    history = client.list_messages(created.id).items
    newest_first = client.list_messages(created.id, newest_first=True).items
    client.clear_messages(created.id)
    after_clear = client.list_messages(created.id).items
    client.delete_conversation(created.id)
    # Then each answer is typed and consistent
    assert exchange.user_message.content == "Why was I charged twice?"
    assert exchange.assistant_message.role == "assistant"
    assert summary.text == "The user talked about: Why was I charged twice?"
    assert renamed.title == "Double charge"
    assert [m.role for m in history] == ["user", "assistant"]
    assert newest_first == history[::-1]
    assert after_clear == []
    with pytest.raises(ApiError) as gone:
        client.get_conversation(created.id)
    assert gone.value.status == 404
    assert gone.value.message == "Conversation not found"


def test_throttling_error_carries_status_message_and_retry_after(api):
    # Given the API answers 503 with Retry-After
    client = ChatbotApiClient(api.url, "local-carol")
    conversation = client.create_conversation()
    api.fail_next("send", InjectedFailure(503, "Model is throttled", retry_after_s=12))
    # When a message is sent
    with pytest.raises(ApiError) as raised:
        client.send_message(conversation.id, "hello")
    # Then the error says all of it, and says a retry may work
    assert (raised.value.status, raised.value.message, raised.value.retry_after_s) == (503, "Model is throttled", 12.0)
    assert raised.value.retryable


def test_idempotency_key_is_sent_and_reused_when_given(api):
    # Given a conversation
    client = ChatbotApiClient(api.url, "local-carol")
    conversation = client.create_conversation()
    # When one message is sent with an explicit key and another without
    client.send_message(conversation.id, "first", idempotency_key="key-1")
    client.send_message(conversation.id, "second")
    # Then the first carries that key and the second a fresh one
    keys = [r.headers["Idempotency-Key"] for r in api.requests_to("POST", r"/v1/conversations/[^/]+/messages")]
    assert keys[0] == "key-1"
    assert keys[1] not in ("", "key-1")


def test_unreachable_api_is_an_api_error_without_status():
    # Given a port nothing listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = ChatbotApiClient(f"http://127.0.0.1:{port}", "local-carol", timeout_s=2)
    # When it is called
    with pytest.raises(ApiError) as raised:
        client.list_conversations()
    # Then the error has no HTTP status and names the API
    assert raised.value.status == NO_RESPONSE
    assert raised.value.message == f"Could not reach the API at http://127.0.0.1:{port}."
    assert raised.value.retryable


def test_non_json_error_body_still_gives_a_message(api):
    # Given a route the fake does not know (plain 404 JSON) and a missing token (401)
    client = ChatbotApiClient(api.url, "not-a-local-token")
    # When called without a valid token
    with pytest.raises(ApiError) as raised:
        client.list_conversations()
    # Then the status and message come through and it is not retryable
    assert (raised.value.status, raised.value.message) == (401, "Unauthorized")
    assert not raised.value.retryable


def test_validation_errors_list_their_fields():
    # Given a response as the API sends for a schema error
    response = requests.Response()
    response.status_code = 422
    response._content = b'{"message": "The request does not match the schema.", "errors": [{"field": "body.title"}]}'
    # When it becomes an ApiError
    from ui.api_client import _error_from_response

    error = _error_from_response(response)
    # Then the fields are kept
    assert error.field_errors == [{"field": "body.title"}]


def test_transcript_upload_goes_to_the_presigned_url_and_the_job_is_readable(api):
    # Given a client
    client = ChatbotApiClient(api.url, "local-carol")
    # When a transcript is uploaded
    ticket = client.request_upload("call.txt")
    client.upload_file(ticket, b"Agent: hi\nCustomer: bye\n")
    # Then storage has the bytes and the job lists and reads back with its summary
    assert api.state.stored_files[ticket.job_id] == b"Agent: hi\nCustomer: bye\n"
    listed = client.list_jobs().items
    assert [(job.id, job.status, job.summary) for job in listed] == [(ticket.job_id, "succeeded", None)]
    job = client.get_job(ticket.job_id)
    assert (job.summary, job.speakers, job.turn_count, job.finished) == (
        "2 turns between Agent, Customer.",
        ["Agent", "Customer"],
        2,
        True,
    )
    # And with its turns, which the listing leaves out
    assert job.transcript == [TranscriptTurn("Agent", "hi"), TranscriptTurn("Customer", "bye")]
    assert (job.turns_truncated, listed[0].transcript) == (False, None)


def test_storage_error_message_is_read_from_the_s3_xml_body(api):
    # Given S3 refusing a POST with its XML error body
    client = ChatbotApiClient(api.url, "local-carol")
    ticket = client.request_upload("call.txt")
    response = requests.Response()
    response.status_code = 403
    response._content = b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"

    class RefusingSession(requests.Session):
        def post(self, url, *args, **kwargs):
            return response if url == ticket.upload_url else super().post(url, *args, **kwargs)

    refusing = ChatbotApiClient(api.url, "local-carol", session=RefusingSession())
    # When the upload is sent
    with pytest.raises(ApiError) as raised:
        refusing.upload_file(ticket, b"x")
    # Then the error quotes S3's message
    assert (raised.value.status, raised.value.message) == (403, "Storage refused the upload: Request has expired")


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), ("0", 0.0), (None, None), ("", None), ("soon", None)],
)
def test_retry_after_in_seconds(header, expected):
    assert parse_retry_after(header) == expected


def test_retry_after_as_an_http_date():
    # Given a Retry-After date 30 s after "now"
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    header = format_datetime(now + timedelta(seconds=30), usegmt=True)
    # Then it reads as 30 seconds
    assert parse_retry_after(header, now=now.timestamp()) == 30.0


def test_settings_defaults_and_validation():
    # Given no environment, the local defaults hold
    defaults = UISettings.from_env({})
    assert (defaults.api_url, defaults.auth_mode) == ("http://127.0.0.1:3000", AuthMode.LOCAL)
    # And a trailing slash is dropped
    assert (
        UISettings.from_env({"CHATBOT_API_URL": "https://api.example.com/dev/"}).api_url
        == "https://api.example.com/dev"
    )
    # And bad values are named
    with pytest.raises(UISettingsError, match="COGNITO_APP_CLIENT_ID"):
        UISettings.from_env({"CHATBOT_AUTH_MODE": "cognito"})
    with pytest.raises(UISettingsError, match="CHATBOT_AUTH_MODE"):
        UISettings.from_env({"CHATBOT_AUTH_MODE": "magic"})
    with pytest.raises(UISettingsError, match="CHATBOT_API_URL"):
        UISettings.from_env({"CHATBOT_API_URL": "localhost:3000"})
    with pytest.raises(UISettingsError, match="CHATBOT_UI_POLL_INTERVAL_S"):
        UISettings.from_env({"CHATBOT_UI_POLL_INTERVAL_S": "-1"})


def test_local_sign_in_makes_the_local_token_and_rejects_odd_names():
    settings = UISettings.from_env({})
    assert sign_in(settings, "  dana ").token == "local-dana"
    with pytest.raises(SignInError):
        sign_in(settings, "")
    with pytest.raises(SignInError):
        sign_in(settings, "dana/../admin")


@pytest.fixture
def cognito(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("cognito-idp", region_name="us-east-1")
        pool_id = client.create_user_pool(PoolName="chatbot-users")["UserPool"]["Id"]
        client_id = client.create_user_pool_client(
            UserPoolId=pool_id,
            ClientName="chatbot-ui",
            ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        )["UserPoolClient"]["ClientId"]
        client.admin_create_user(UserPoolId=pool_id, Username="erin", TemporaryPassword="Temp-Pass-123!")
        client.admin_set_user_password(UserPoolId=pool_id, Username="erin", Password="Real-Pass-456!", Permanent=True)
        yield client, UISettings.from_env({"CHATBOT_AUTH_MODE": "cognito", "COGNITO_APP_CLIENT_ID": client_id})


def test_cognito_sign_in_returns_the_id_token_and_refreshes_it(cognito):
    client, settings = cognito
    # When erin signs in with her password
    session = sign_in(settings, "erin", "Real-Pass-456!", cognito_client=client)
    # Then the session carries a JWT ID token (three dot-separated parts) and a refresh token that renews it
    assert session.user == "erin"
    assert session.token.count(".") == 2
    renewed = refresh(settings, session, cognito_client=client)
    assert renewed is not None
    assert renewed.token.count(".") == 2


def test_cognito_sign_in_with_a_wrong_password_is_a_readable_error(cognito):
    client, settings = cognito
    with pytest.raises(SignInError, match=re.escape("Wrong user name or password.")):
        sign_in(settings, "erin", "nope", cognito_client=client)
    with pytest.raises(SignInError, match=re.escape("Enter your password.")):
        sign_in(settings, "erin", "", cognito_client=client)


def test_start_ui_reports_a_streamlit_that_cannot_start():
    # Given a port already taken
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # When the UI is started on it
        with pytest.raises(UIStartError) as raised:
            start_ui("http://127.0.0.1:3000", "127.0.0.1", port, startup_timeout_s=60)
    # Then the error says so, with Streamlit's own words, instead of hanging
    assert str(raised.value).startswith("streamlit exited with code 1:")
    assert f"Port {port} is not available" in str(raised.value)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ApiError(500, "Internal server error."), "Something went wrong on the server."),
        (ApiError(504, "Endpoint request timed out"), "The answer took too long to arrive."),
        (ApiError(409, "A request with this Idempotency-Key is still being processed.", 2), "Try again in 2 seconds."),
        (
            ApiError(422, "The request does not match the schema.", field_errors=[{"field": "body.title"}]),
            "The request was not accepted: The request does not match the schema (check: body.title).",
        ),
        (ApiError(403, "Forbidden"), "Not allowed: Forbidden."),
        (ApiError(418, "I'm a teapot"), "The API answered with an error (418): I'm a teapot."),
    ],
)
def test_every_error_reads_as_a_sentence_for_people(error, expected):
    # When an API error is described for the page
    described = describe_error(error)
    # Then it says what happened in words, without status codes where they mean nothing to people
    assert expected in described
    assert "Traceback" not in described


def test_a_file_over_the_upload_limit_is_refused_before_it_is_sent(api):
    # Given a ticket whose presigned POST allows at most max_bytes
    client = ChatbotApiClient(api.url, "local-carol")
    ticket = client.request_upload("big.txt")

    # When a larger file is uploaded
    with pytest.raises(ApiError) as raised:
        client.upload_file(ticket, b"x" * (ticket.max_bytes + 1))

    # Then the client says so, and storage never saw it
    assert raised.value.status == 413 and "limit" in raised.value.message
    assert ticket.job_id not in api.state.stored_files


def test_a_summary_made_in_the_background_is_polled_until_ready(api):
    # Given an API that makes the summary in the background: 202, then two polls still pending
    api.state.summary_pending_polls = 2
    waits: list[float] = []
    client = ChatbotApiClient(api.url, "local-carol", sleep=waits.append)
    conversation = client.create_conversation()
    client.send_message(conversation.id, "Why was I charged twice?")
    # When summarized
    summary = client.summarize(conversation.id)
    # Then the client followed Location, waited Retry-After between polls, and returns the summary
    assert summary.text == "The user talked about: Why was I charged twice?"
    polls = api.requests_to("GET", rf"/v1/conversations/{conversation.id}/summary")
    assert (len(polls), waits) == (3, [0.0, 0.0, 0.0])
    assert api.state.contract_violations == []


def test_a_background_summary_that_failed_or_takes_too_long_is_a_readable_error(api):
    client = ChatbotApiClient(api.url, "local-carol", sleep=lambda _: None)
    conversation = client.create_conversation()
    client.send_message(conversation.id, "Hello")
    # Given a background summary that fails
    api.state.summary_pending_polls, api.state.summary_fails_in_background = 1, True
    with pytest.raises(ApiError) as failed:
        client.summarize(conversation.id)
    # Then the API's message for the user is the error
    assert describe_error(failed.value) == "The summarizer could not summarize this conversation."
    # Given one still pending when the client stops waiting
    api.state.summary_pending_polls, api.state.summary_fails_in_background = 1_000, False
    client.summary_wait_s = 0
    with pytest.raises(ApiError) as pending:
        client.summarize(conversation.id)
    assert "still being made" in describe_error(pending.value)
