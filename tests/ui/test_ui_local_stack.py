"""AppTest tests of every UI action against the real local stack: the gateway calling the real handlers, moto,
the local endpoint (stand-in chat, extractive summarizer) and the S3 -> SQS -> batch-summarize poller."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from chatbot.clock import clock_label
from local_stack import running_local_stack
from streamlit.testing.v1 import AppTest
from ui_helpers import bubbles, click, page_text, send, sign_in

from local.stack import LocalStack
from ui.api_client import ApiError, ChatbotApiClient

JOB_WAIT_S = 60  # bound on waiting for the poller to finish a job; it takes about a second
CALL = (
    b"Agent: Good afternoon, Fabrikam Energy, Tomas speaking.\n"
    b"Customer: Hi, my meter reading on the last bill looks far too high.\n"
    b"Agent: I can check that. The bill used an estimate because the meter was not read this month.\n"
    b"Customer: Can you use my own reading instead? It is 48213.\n"
    b"Agent: Done, the corrected bill will arrive by email within two days.\n"
)
CAPTIONS = (
    b"WEBVTT\n\n00:00:01.000 --> 00:00:04.000\n<v Nadia>Hello, I would like to move my appointment.</v>\n\n"
    b"00:00:04.500 --> 00:00:07.000\n<v Clinic>Of course, Thursday at ten is free.</v>\n\n"
    b"00:00:07.500 --> 00:00:09.000\n<v Nadia>Thursday at ten works, thank you.</v>\n"
)


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with running_local_stack() as running:
        yield running


@pytest.fixture
def app(stack: LocalStack, monkeypatch: pytest.MonkeyPatch, app: AppTest) -> AppTest:
    monkeypatch.setenv("CHATBOT_API_URL", stack.urls["api"])
    monkeypatch.setenv("CHATBOT_AUTH_MODE", "local")
    return app


def api_for(stack: LocalStack, user: str) -> ChatbotApiClient:
    return ChatbotApiClient(stack.urls["api"], f"local-{user}")


def test_chat_stores_the_question_and_shows_the_models_answer(stack, app):
    # Given a new user
    sign_in(app, "stack-chat")
    # When they send a message
    send(app, "Can you help me reset my password?")
    # Then the page shows the question and a non-empty answer, and the API stored both in that order
    assert not app.exception
    shown = bubbles(app)
    assert [role for role, _ in shown] == ["user", "assistant"]
    assert shown[0][1] == "Can you help me reset my password?"
    assert shown[1][1].strip()
    api = api_for(stack, "stack-chat")
    conversation = api.list_conversations().items[0]
    stored = api.list_messages(conversation.id).items
    assert [(m.role, m.content) for m in stored] == [(role, text) for role, text in shown]
    assert app.title[0].value == conversation.title == "Can you help me reset my password?"


def test_the_message_box_accepts_exactly_what_the_api_accepts(stack, app):
    # Given the chat page
    sign_in(app, "stack-limit")
    limit = app.chat_input[0].proto.max_chars
    # When messages of the UI's limit and of one character more reach the real handler
    api = api_for(stack, "stack-limit")
    conversation = api.create_conversation(title="limits")
    at_limit = api.send_message(conversation.id, "x" * limit)
    with pytest.raises(ApiError) as over_limit:
        api.send_message(conversation.id, "x" * (limit + 1))
    # Then the first is answered and the second refused as too large
    assert limit > 0 and at_limit.user_message.content == "x" * limit
    assert over_limit.value.status == 413


def test_summarize_shows_the_summarizers_summary(stack, app):
    # Given a conversation with two turns
    sign_in(app, "stack-summary")
    send(app, "My parcel 4471 never arrived and the tracking page has not changed for a week.")
    # When Summarize is clicked
    click(app, "Summarize conversation")
    # Then the summary the API made is shown with the time it was made
    conversation = api_for(stack, "stack-summary").list_conversations().items[0]
    summary = api_for(stack, "stack-summary").summarize(conversation.id)
    assert summary.text in page_text(app)
    assert any(caption.value.startswith("Made ") for caption in app.caption)


def test_clear_and_delete_act_on_the_server(stack, app):
    # Given two conversations with messages
    sign_in(app, "stack-tidy")
    send(app, "first conversation")
    click(app, "New conversation")
    send(app, "second conversation")
    api = api_for(stack, "stack-tidy")
    newest, oldest = api.list_conversations().items
    # When the open (newest) one is cleared, with confirmation
    click(app, "Clear conversation")
    click(app, "Yes, clear it")
    # Then its messages are gone on the server, and it is still listed
    assert api.list_messages(newest.id).items == []
    assert bubbles(app) == []
    # When it is deleted, with confirmation
    click(app, "Delete")
    click(app, "Yes, delete it")
    # Then only the other conversation remains, and it is open
    assert [c.id for c in api.list_conversations().items] == [oldest.id]
    assert app.title[0].value == "first conversation"


def test_rename_is_stored_by_the_api_and_shown_everywhere(stack, app):
    # Given a conversation started from the chat
    sign_in(app, "stack-rename")
    send(app, "The heating in flat 3B has been off since Monday.")
    # When it is renamed from the header
    rename_box = next(box for box in app.text_input if box.label == "New title")
    rename_box.input("Heating outage 3B")
    click(app, "Save title")
    # Then the API stored the new title, and the header and sidebar show it
    assert not app.exception
    assert [c.title for c in api_for(stack, "stack-rename").list_conversations().items] == ["Heating outage 3B"]
    assert app.title[0].value == "Heating outage 3B"
    assert "Heating outage 3B" in [button.label for button in app.sidebar.button]
    # And the messages are still there
    assert [role for role, _ in bubbles(app)] == ["user", "assistant"]


def test_another_users_conversations_are_not_listed(stack, app):
    # Given frank has a conversation
    api_for(stack, "stack-frank").create_conversation(title="Frank's secret plans")
    # When grace signs in
    sign_in(app, "stack-grace")
    # Then she does not see it
    assert "Frank's secret plans" not in page_text(app.sidebar)
    assert [button.label for button in app.sidebar.button] == ["Sign out", "New conversation"]


def test_uploaded_transcripts_are_summarized_and_shown_beside_their_turns(stack, app):
    # Given the transcripts page
    sign_in(app, "stack-transcripts")
    app.switch_page("screens/transcripts.py")
    app.run()
    # When two transcripts in different formats are uploaded through the presigned URLs
    app.file_uploader[0].set_value([("meter.txt", CALL, "text/plain"), ("clinic.vtt", CAPTIONS, "text/vtt")])
    app.run()
    click(app, "Upload and summarize")
    # And the page refreshes until the pipeline has finished both
    deadline = time.monotonic() + JOB_WAIT_S
    while "All jobs finished." not in page_text(app) and time.monotonic() < deadline:
        time.sleep(0.5)
        app.run()
    # Then both succeeded, and each summary sits beside the turns of its own transcript
    table = app.table[0].value
    assert sorted(zip(table["File"], table["Status"], strict=True)) == [
        ("clinic.vtt", "Succeeded"),
        ("meter.txt", "Succeeded"),
    ]
    jobs = {
        job.filename: api_for(stack, "stack-transcripts").get_job(job.id)
        for job in api_for(stack, "stack-transcripts").list_jobs().items
    }
    columns = app.columns
    summaries_and_turns = {_words(page_text(columns[i])): page_text(columns[i + 1]) for i in range(0, len(columns), 2)}
    for filename, first_turn in [("meter.txt", "**Agent:** Good afternoon"), ("clinic.vtt", "**0:01 · Nadia:** Hello")]:
        summary = _words(jobs[filename].summary)
        assert summary
        turns = next(turns for summary_text, turns in summaries_and_turns.items() if summary in summary_text)
        assert turns.splitlines()[1].startswith(first_turn)
        # And the turns shown are the ones the pipeline parsed, as the API returns them (with times where known)
        api_turns = [
            f"**{'' if turn.start_s is None else clock_label(turn.start_s) + ' · '}{turn.speaker}:** {turn.text}"
            for turn in jobs[filename].transcript
        ]
        assert turns.splitlines()[1:] == api_turns
        assert len(api_turns) == jobs[filename].turn_count and not jobs[filename].turns_truncated


def test_a_transcript_uploaded_by_another_client_shows_its_turns_in_any_session(stack, app):
    # Given a transcript summarized from an upload made outside this browser session (another client)
    api = api_for(stack, "stack-elsewhere")
    ticket = api.request_upload("meter.txt")
    api.upload_file(ticket, CALL)
    deadline = time.monotonic() + JOB_WAIT_S
    while not api.get_job(ticket.job_id).finished and time.monotonic() < deadline:
        time.sleep(0.2)
    # When the user opens the transcripts page in a new session
    sign_in(app, "stack-elsewhere")
    app.switch_page("screens/transcripts.py")
    app.run()
    # Then the turns come from the API and sit beside the summary
    assert app.table[0].value["Status"].tolist() == ["Succeeded"]
    turns = page_text(app.columns[1]).splitlines()[1:]
    assert turns[0] == "**Agent:** Good afternoon, Fabrikam Energy, Tomas speaking."
    assert len(turns) == 5


def _words(text: str) -> str:
    """Text with every run of whitespace as one space (markdown line breaks differ from the API's newlines)."""
    return " ".join(text.split())


def test_the_client_streams_an_answer_in_pieces_that_join_to_the_stored_one(stack):
    api = api_for(stack, "streaming-reader")
    conversation = api.create_conversation(title="Streaming")
    # When the UI's client streams an answer
    pieces = list(api.stream_message(conversation.id, "Where is my parcel?", idempotency_key="stream-1"))
    # Then it arrives in several pieces that join to the answer the server stored
    stored = api.list_messages(conversation.id).items
    assert len(pieces) > 1 and "".join(pieces) == stored[-1].content
    # And a resend with the same key is the stored answer in one piece
    assert list(api.stream_message(conversation.id, "Where is my parcel?", idempotency_key="stream-1")) == [
        stored[-1].content
    ]
