"""AppTest tests of the chat page against the in-test fake API: every action, and the failures a person meets."""

from __future__ import annotations

import boto3
from fake_api import InjectedFailure
from moto import mock_aws
from ui_helpers import bubbles, button, click, errors, page_text, send, sidebar_buttons, sign_in


def test_sign_in_needs_a_user_name_and_then_shows_who_is_signed_in(fake_api, app):
    # Given the sign-in page
    app.run()
    # When the form is sent empty
    app.button[0].click().run()
    # Then it explains what is missing and stays on sign-in
    assert errors(app) == ["Enter a user name."]
    # When a user name is given
    app.text_input[0].input("alice")
    app.button[0].click().run()
    # Then the chat page opens for that user
    assert not app.exception
    assert "Signed in as **alice**" in page_text(app.sidebar)
    assert "New conversation" in sidebar_buttons(app)


def test_sidebar_lists_the_users_conversations_newest_first_and_opens_the_newest(fake_api, app):
    # Given alice has two conversations (the second one is newer) and bob has one
    fake_api.add_conversation("alice", "Older", [("user", "old question"), ("assistant", "old answer")])
    fake_api.add_conversation("alice", "Newer", [("user", "new question"), ("assistant", "new answer")])
    fake_api.add_conversation("bob", "Not alice's")
    # When alice signs in
    sign_in(app, "alice")
    # Then her conversations are listed newest first, bob's is not, and the newest is open as chat bubbles
    listed = [label for label in sidebar_buttons(app) if label in ("Older", "Newer", "Not alice's")]
    assert listed == ["Newer", "Older"]
    assert app.title[0].value == "Newer"
    assert bubbles(app) == [("user", "new question"), ("assistant", "new answer")]


def test_opening_another_conversation_shows_its_history(fake_api, app):
    # Given two conversations
    fake_api.add_conversation("alice", "Trip", [("user", "Where to go?"), ("assistant", "Lisbon.")])
    fake_api.add_conversation("alice", "Recipes", [("user", "Soup?"), ("assistant", "Tomato.")])
    sign_in(app)
    # When the older one is clicked in the sidebar
    click(app, "Trip")
    # Then its messages are shown
    assert app.title[0].value == "Trip"
    assert bubbles(app) == [("user", "Where to go?"), ("assistant", "Lisbon.")]


def test_first_message_starts_a_conversation_titled_from_its_words_and_shows_the_answer(fake_api, app):
    # Given a user with no conversation
    sign_in(app)
    assert app.title[0].value == "New conversation"
    # When they send a message
    send(app, "What is the capital of Portugal and why is it famous?")
    # Then a conversation titled from the first words holds the question and the answer
    assert not app.exception
    assert app.title[0].value == "What is the capital of Portugal and why…"
    assert bubbles(app) == [
        ("user", "What is the capital of Portugal and why is it famous?"),
        ("assistant", "You said: What is the capital of Portugal and why is it famous?"),
    ]
    assert "What is the capital of Portugal and why…" in sidebar_buttons(app)


def test_new_conversation_button_starts_a_separate_conversation(fake_api, app):
    # Given an open conversation
    fake_api.add_conversation("alice", "First", [("user", "hi"), ("assistant", "hello")])
    sign_in(app)
    # When "New conversation" is clicked and a message sent
    click(app, "New conversation")
    assert bubbles(app) == []
    send(app, "Second topic")
    # Then both conversations exist, the new one on top and open
    assert sidebar_buttons(app)[-2:] == ["Second topic", "First"]
    assert bubbles(app) == [("user", "Second topic"), ("assistant", "You said: Second topic")]


def test_model_error_is_readable_keeps_the_message_and_retry_answers_it_with_the_same_request(fake_api, app):
    # Given an open conversation whose next answer fails in the model (502)
    fake_api.add_conversation("alice", "Support")
    sign_in(app)
    fake_api.fail_next("send", InjectedFailure(502, "The chat model failed to produce an answer", stores_message=True))
    # When a message is sent
    send(app, "My order is late")
    # Then a readable error is shown, no traceback, the typed message is still on screen, and Retry is offered
    assert not app.exception
    assert errors(app) == ["The model could not produce an answer. Try again."]
    assert ("user", "My order is late") in bubbles(app)
    # When Retry is clicked
    button(app, "Retry").click().run()
    # Then the answer arrives, the error is gone, and both attempts carried the same Idempotency-Key
    assert errors(app) == []
    assert bubbles(app) == [("user", "My order is late"), ("assistant", "You said: My order is late")]
    attempts = fake_api.requests_to("POST", r"/v1/conversations/[^/]+/messages")
    assert len(attempts) == 2
    assert attempts[0].headers["Idempotency-Key"] == attempts[1].headers["Idempotency-Key"]
    assert [attempt.body["content"] for attempt in attempts] == ["My order is late"] * 2


def test_a_message_left_unanswered_on_an_earlier_visit_can_be_answered(fake_api, app):
    # Given a conversation whose last question was stored unanswered (the model failed last time)
    conversation_id = fake_api.add_conversation("alice", "Support", [("user", "Where is my refund?", "unanswered")])
    # When alice opens it
    sign_in(app)
    # Then the question is marked and an action offers the answer
    assert bubbles(app) == [("user", "Where is my refund?")]
    assert "Not answered yet." in page_text(app)
    # When she asks for the answer
    click(app, "Get the answer")
    # Then the stored question is answered, not sent twice
    assert bubbles(app) == [("user", "Where is my refund?"), ("assistant", "You said: Where is my refund?")]
    assert [m["role"] for m in fake_api.state.messages[conversation_id]] == ["user", "assistant"]
    assert fake_api.requests_to("POST", r"/v1/conversations/[^/]+/messages") == []


def test_reopening_a_conversation_after_a_model_error_shows_the_message_once(fake_api, app):
    # Given a message that failed and was stored unanswered, and the user opened another conversation and came back
    fake_api.add_conversation("alice", "Other")
    fake_api.add_conversation("alice", "Support")
    sign_in(app)
    fake_api.fail_next("send", InjectedFailure(502, "model error", stores_message=True))
    send(app, "Is anyone there?")
    click(app, "Other")
    click(app, "Support")
    # Then the message appears once, still with its error and Retry
    assert bubbles(app) == [("user", "Is anyone there?")]
    assert button(app, "Retry")


def test_throttling_shows_when_to_retry_and_keeps_the_message(fake_api, app):
    # Given the model is throttled and the API says to retry after 7 seconds
    fake_api.add_conversation("alice", "Support")
    sign_in(app)
    fake_api.fail_next("send", InjectedFailure(503, "Model is throttled", retry_after_s=7))
    # When a message is sent
    send(app, "Hello?")
    # Then the message names the wait, the message is kept, and nothing was stored yet
    assert errors(app) == ["The model is busy right now (throttled or scaling up). Try again in 7 seconds."]
    assert bubbles(app) == [("user", "Hello?")]
    assert button(app, "Retry")
    assert not app.exception


def test_unreachable_api_is_a_readable_error_with_retry(fake_api, app):
    # Given a signed-in user whose API then goes away
    conversation_id = fake_api.add_conversation("alice", "Support")
    sign_in(app)
    fake_api.stop()
    # When a message is sent
    send(app, "Anyone there?")
    # Then the error says the API cannot be reached, and the message waits for a retry
    assert not app.exception
    assert len(errors(app)) == 1
    assert errors(app)[0].startswith("Could not reach the API at http://127.0.0.1:")
    assert ("user", "Anyone there?") in bubbles(app)
    assert conversation_id in fake_api.state.messages


def test_a_new_message_after_a_failure_replaces_the_unanswered_one(fake_api, app):
    # Given a failed message
    fake_api.add_conversation("alice", "Support")
    sign_in(app)
    fake_api.fail_next("send", InjectedFailure(502, "model error"))
    send(app, "first try")
    # When the user types something else instead of retrying
    send(app, "second thought")
    # Then the new message is answered and the error is gone
    assert errors(app) == []
    assert bubbles(app) == [("user", "second thought"), ("assistant", "You said: second thought")]


def test_rename_changes_the_title_everywhere(fake_api, app):
    # Given an open conversation
    conversation_id = fake_api.add_conversation("alice", "Old title")
    sign_in(app)
    # When it is renamed
    rename_box = next(box for box in app.text_input if box.label == "New title")
    rename_box.input("Shipping questions")
    click(app, "Save title")
    # Then the title, the sidebar and the API agree
    assert app.title[0].value == "Shipping questions"
    assert "Shipping questions" in sidebar_buttons(app)
    assert fake_api.state.conversations[conversation_id]["title"] == "Shipping questions"


def test_clear_asks_first_and_cancel_keeps_everything(fake_api, app):
    # Given a conversation with messages
    conversation_id = fake_api.add_conversation("alice", "Keep me", [("user", "q"), ("assistant", "a")])
    sign_in(app)
    # When Clear is clicked
    click(app, "Clear conversation")
    # Then a confirmation is asked
    assert any("Clear “Keep me”?" in warning.value for warning in app.warning)
    # When cancelled
    click(app, "Cancel")
    # Then nothing was deleted and the question is gone
    assert len(fake_api.state.messages[conversation_id]) == 2
    assert not app.warning
    assert bubbles(app) == [("user", "q"), ("assistant", "a")]


def test_clear_confirmed_removes_the_messages_but_keeps_the_conversation(fake_api, app):
    # Given a conversation with messages
    conversation_id = fake_api.add_conversation("alice", "Chatty", [("user", "q"), ("assistant", "a")])
    sign_in(app)
    # When Clear is clicked and confirmed
    click(app, "Clear conversation")
    click(app, "Yes, clear it")
    # Then the server cleared it, the page shows no bubbles, and the conversation is still listed and open
    assert fake_api.state.messages[conversation_id] == []
    assert bubbles(app) == []
    assert app.title[0].value == "Chatty"
    assert "Cleared “Chatty”." in page_text(app)


def test_delete_confirmed_removes_the_conversation_and_opens_the_next_newest(fake_api, app):
    # Given two conversations, the newest open
    older_id = fake_api.add_conversation("alice", "Older", [("user", "q"), ("assistant", "a")])
    newer_id = fake_api.add_conversation("alice", "Newer")
    sign_in(app)
    # When the open one is deleted and the deletion confirmed
    click(app, "Delete")
    assert any("Delete “Newer”" in warning.value for warning in app.warning)
    click(app, "Yes, delete it")
    # Then it is gone from the server and the sidebar, and the older one is open
    assert newer_id not in fake_api.state.conversations
    assert older_id in fake_api.state.conversations
    assert "Newer" not in sidebar_buttons(app)
    assert app.title[0].value == "Older"


def test_summarize_shows_the_summary_and_when_it_was_made(fake_api, app):
    # Given a conversation with messages
    fake_api.add_conversation("alice", "Support", [("user", "My parcel is lost"), ("assistant", "Sorry!")])
    sign_in(app)
    # When Summarize is clicked
    click(app, "Summarize conversation")
    # Then the summary and its time are shown
    assert "The user talked about: My parcel is lost" in page_text(app)
    made = [caption.value for caption in app.caption if caption.value.startswith("Made ")]
    assert len(made) == 1
    assert made[0].endswith("UTC")


def test_summarize_failure_is_readable_and_the_history_stays(fake_api, app):
    # Given the summarizer is throttled
    fake_api.add_conversation("alice", "Support", [("user", "q"), ("assistant", "a")])
    sign_in(app)
    fake_api.fail_next("summarize", InjectedFailure(503, "Summarizer has no capacity", retry_after_s=3))
    # When Summarize is clicked
    click(app, "Summarize conversation")
    # Then a readable message explains it and the history is still there
    assert errors(app) == ["The model is busy right now (throttled or scaling up). Try again in 3 seconds."]
    assert bubbles(app) == [("user", "q"), ("assistant", "a")]
    assert not app.exception


def test_a_conversation_deleted_elsewhere_keeps_the_message_for_a_new_conversation(fake_api, app):
    # Given an open conversation that is then deleted from another window
    conversation_id = fake_api.add_conversation("alice", "Gone soon")
    sign_in(app)
    del fake_api.state.conversations[conversation_id]
    # When a message is sent to it
    send(app, "still there?")
    # Then the error says it was not found, and the typed message waits, editable, in a new conversation
    assert errors(app) == ["Not found (Conversation not found); it may have been deleted in another window."]
    assert app.title[0].value == "New conversation"
    assert ("user", "still there?") in bubbles(app)
    assert "Gone soon" not in sidebar_buttons(app)
    # When it is sent again from the edit box
    click(app, "Send edited message")
    # Then a new conversation holds it, answered
    assert errors(app) == []
    assert app.title[0].value == "still there?"
    assert bubbles(app) == [("user", "still there?"), ("assistant", "You said: still there?")]


def test_a_rejected_message_can_be_edited_and_sent_again(fake_api, app):
    # Given the API rejects the next message as too large
    fake_api.add_conversation("alice", "Support")
    sign_in(app)
    fake_api.fail_next("send", InjectedFailure(413, "The message is 20000 characters; the limit is 16000"))
    send(app, "a very long message")
    # Then the reason is shown, no Retry is offered (the same request would fail again), and an editable copy is
    assert errors(app) == [
        "That is too large: The message is 20000 characters; the limit is 16000. Shorten it and send it again."
    ]
    assert "Retry" not in [b.label for b in app.button]
    edit_box = next(box for box in app.text_area if box.label == "Edit your message")
    assert edit_box.value == "a very long message"
    # When it is shortened and sent
    edit_box.input("a short message")
    click(app, "Send edited message")
    # Then the edited message is answered with a fresh idempotency key
    assert bubbles(app) == [("user", "a short message"), ("assistant", "You said: a short message")]
    keys = [r.headers["Idempotency-Key"] for r in fake_api.requests_to("POST", r"/v1/conversations/[^/]+/messages")]
    assert len(set(keys)) == 2


def test_expired_sign_in_returns_to_the_sign_in_page_with_a_notice(fake_api, app):
    # Given a signed-in user whose token the API stops accepting
    sign_in(app)
    fake_api.fail_next("list", InjectedFailure(401, "Unauthorized"))
    # When the page reloads the conversations (after starting a new one)
    app.session_state["conversations"] = None
    app.run()
    # Then the sign-in page explains what happened
    assert [button.label for button in app.button] == ["Sign in"]
    assert "Your session has ended. Sign in again to continue." in page_text(app)


def test_sign_out_forgets_the_user(fake_api, app):
    # Given a signed-in user with a conversation open
    fake_api.add_conversation("alice", "Private")
    sign_in(app)
    # When they sign out
    click(app, "Sign out")
    # Then the sign-in page is back and nothing of alice's is on screen
    assert [button.label for button in app.button] == ["Sign in"]
    assert "Private" not in page_text(app)
    assert "You are signed out." in page_text(app)


def test_cognito_sign_in_asks_for_a_password_and_calls_the_api_with_the_id_token(fake_api, app, monkeypatch):
    # Given the UI in Cognito mode with a user pool (moto) that knows erin
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        cognito = boto3.client("cognito-idp", region_name="us-east-1")
        pool_id = cognito.create_user_pool(PoolName="chatbot-users")["UserPool"]["Id"]
        client_id = cognito.create_user_pool_client(
            UserPoolId=pool_id, ClientName="chatbot-ui", ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH"]
        )["UserPoolClient"]["ClientId"]
        cognito.admin_create_user(UserPoolId=pool_id, Username="erin", TemporaryPassword="Temp-Pass-123!")
        cognito.admin_set_user_password(UserPoolId=pool_id, Username="erin", Password="Real-Pass-456!", Permanent=True)
        erin_sub = cognito.admin_get_user(UserPoolId=pool_id, Username="erin")["UserAttributes"]
        erin_sub = next(attribute["Value"] for attribute in erin_sub if attribute["Name"] == "sub")
        fake_api.add_conversation(erin_sub, "Erin's conversation")
        monkeypatch.setenv("CHATBOT_AUTH_MODE", "cognito")
        monkeypatch.setenv("COGNITO_APP_CLIENT_ID", client_id)
        monkeypatch.setenv("COGNITO_REGION", "us-east-1")
        app.run()
        # When erin types a wrong password
        user_box, password_box = app.text_input
        assert (user_box.label, password_box.label) == ("User name", "Password")
        user_box.input("erin")
        password_box.input("wrong")
        click(app, "Sign in")
        # Then she is told, and stays on sign-in
        assert errors(app) == ["Wrong user name or password."]
        # When she types the right one
        app.text_input[1].input("Real-Pass-456!")
        click(app, "Sign in")
    # Then the API is called with her ID token, and her conversation (keyed by her sub) is open
    assert app.title[0].value == "Erin's conversation"
    assert fake_api.state.requests[-1].headers["Authorization"].count(".") == 2


def test_summarize_waits_for_a_summary_made_in_the_background(fake_api, app):
    # Given a long conversation the API summarizes in the background (202, then a pending poll)
    fake_api.add_conversation("alice", "Support", [("user", "My parcel is lost"), ("assistant", "Sorry!")])
    fake_api.state.summary_pending_polls = 1
    sign_in(app)
    # When Summarize is clicked
    click(app, "Summarize conversation")
    # Then the summary is shown once ready, and nothing failed
    assert "The user talked about: My parcel is lost" in page_text(app)
    assert errors(app) == [] and not app.exception
