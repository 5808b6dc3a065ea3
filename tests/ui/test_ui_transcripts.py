"""AppTest tests of the transcripts page against the in-test fake API: upload many files, live status,
summary beside turns."""

from __future__ import annotations

from fake_api import InjectedFailure
from ui_helpers import click, page_text, sign_in

CALL_A = b"Agent: Thanks for calling, how can I help?\nCustomer: My router keeps rebooting.\n"
CALL_B = b"Agent: Hello.\nCustomer: I want to cancel my plan.\nAgent: Sorry to hear that.\n"


def open_transcripts(app):
    sign_in(app)
    app.switch_page("screens/transcripts.py")
    return app.run()


def test_uploading_several_files_creates_a_job_each_through_the_presigned_urls(fake_api, app):
    # Given the transcripts page
    open_transcripts(app)
    assert "No jobs yet. Upload a transcript above." in page_text(app)
    # When two files are chosen and uploaded
    app.file_uploader[0].set_value([("call-a.txt", CALL_A, "text/plain"), ("call-b.txt", CALL_B, "text/plain")])
    app.run()
    click(app, "Upload and summarize")
    # Then each went to its presigned URL with its exact bytes, and the report names both
    assert not app.exception
    assert sorted(fake_api.state.stored_files.values()) == sorted([CALL_A, CALL_B])
    uploaded = sorted(message.value.split(",")[0] for message in app.success)
    assert uploaded == ["**call-a.txt**: uploaded", "**call-b.txt**: uploaded"]
    # And the uploader is empty again, so a second click cannot send them twice
    assert app.file_uploader[0].value == []


def test_finished_jobs_show_their_summary_beside_the_turns(fake_api, app):
    # Given an uploaded transcript whose job succeeds
    open_transcripts(app)
    app.file_uploader[0].set_value(("call-a.txt", CALL_A, "text/plain"))
    app.run()
    click(app, "Upload and summarize")
    # Then the status table says so and the summary sits in one column, the turns in the other
    table = app.table[0].value
    assert list(table["File"]) == ["call-a.txt"]
    assert list(table["Status"]) == ["Succeeded"]
    summary_column, turns_column = app.columns[0], app.columns[1]
    assert "2 turns between Agent, Customer." in page_text(summary_column)
    assert page_text(turns_column).splitlines()[1:] == [
        "**Agent:** Thanks for calling, how can I help?",
        "**Customer:** My router keeps rebooting.",
    ]


def test_status_table_follows_a_running_job_until_it_finishes(fake_api, app):
    # Given uploads that the pipeline has not finished yet
    fake_api.state.finish_jobs_on_upload = False
    open_transcripts(app)
    app.file_uploader[0].set_value(("slow.txt", CALL_B, "text/plain"))
    app.run()
    click(app, "Upload and summarize")
    # Then the table shows it processing and says it refreshes by itself
    assert list(app.table[0].value["Status"]) == ["Processing"]
    assert "1 still running; this table refreshes by itself." in page_text(app)
    # When the job finishes and the table refreshes
    fake_api.finish_job(next(iter(fake_api.state.jobs)))
    app.run()
    # Then it shows the success and the summary
    assert list(app.table[0].value["Status"]) == ["Succeeded"]
    assert "All jobs finished." in page_text(app)
    assert "3 turns between Agent, Customer." in page_text(app)


def test_a_failed_upload_is_reported_and_the_other_files_still_go(fake_api, app):
    # Given API Gateway throttles the upload route once
    open_transcripts(app)
    fake_api.fail_next("upload", InjectedFailure(429, "Too Many Requests", retry_after_s=2))
    # When two files are uploaded
    app.file_uploader[0].set_value([("first.txt", CALL_A, "text/plain"), ("second.txt", CALL_B, "text/plain")])
    app.run()
    click(app, "Upload and summarize")
    # Then the first is reported with a readable reason and the second was uploaded
    assert [message.value for message in app.error] == [
        "**first.txt**: not uploaded. Too many requests right now. Try again in 2 seconds."
    ]
    assert [message.value.split(",")[0] for message in app.success] == ["**second.txt**: uploaded"]
    assert list(fake_api.state.stored_files.values()) == [CALL_B]
    assert not app.exception


def test_storage_refusing_the_presigned_put_is_reported(fake_api, app):
    # Given storage rejects the PUT (e.g. an expired URL)
    open_transcripts(app)
    fake_api.fail_next("put", InjectedFailure(403, "Request has expired"))
    # When a file is uploaded
    app.file_uploader[0].set_value(("late.txt", CALL_A, "text/plain"))
    app.run()
    click(app, "Upload and summarize")
    # Then the report says storage refused it
    assert "**late.txt**: not uploaded. Not allowed: Storage refused the upload: HTTP 403 Forbidden." in page_text(app)


def test_failed_jobs_show_their_reason(fake_api, app):
    # Given a job the pipeline rejected
    open_transcripts(app)
    fake_api.state.jobs["j1"] = {
        "job_id": "j1",
        "owner": "alice",
        "filename": "noise.bin",
        "status": "failed",
        "reason": "unknown transcript format",
        "created_at": "2026-11-25T10:00:00+00:00",
        "updated_at": "2026-11-25T10:00:01+00:00",
    }
    # When the table refreshes
    app.run()
    # Then the failure and its reason are in the table, and no summary is offered for it
    table = app.table[0].value
    assert list(table["Status"]) == ["Failed"]
    assert list(table["Details"]) == ["unknown transcript format"]
    assert "Summaries" not in page_text(app)


def test_a_job_whose_file_never_arrived_is_not_followed_forever(fake_api, app):
    # Given an old job still queued (its upload never happened) and nothing else
    open_transcripts(app)
    fake_api.state.jobs["j-old"] = {
        "job_id": "j-old",
        "owner": "alice",
        "filename": "lost.txt",
        "status": "queued",
        "created_at": "2026-01-01T10:00:00Z",
        "updated_at": "2026-01-01T10:00:00Z",
    }
    # When the page shows the jobs
    app.run()
    app.run()
    # Then the job is listed as queued, the page says it is no longer followed, and polling has stopped
    assert list(app.table[0].value["Status"]) == ["Queued"]
    assert "1 job(s) still not finished after 15 minutes" in page_text(app)
    assert app.session_state["jobs_polling"] is False


def _succeeded_job(job_id: str, turns: list[dict], *, total: int | None = None, truncated: bool = False) -> dict:
    """A job finished before this browser session (uploaded elsewhere, e.g. by the CLI or a plain S3 copy)."""
    return {
        "job_id": job_id,
        "owner": "alice",
        "filename": f"{job_id}.json",
        "status": "succeeded",
        "created_at": "2026-11-25T10:00:00+00:00",
        "updated_at": "2026-11-25T10:00:05+00:00",
        "summary": "Customer asked about a refund.",
        "turns": total or len(turns),
        "transcript": turns,
        "turns_truncated": truncated,
    }


def test_turns_of_a_job_uploaded_elsewhere_come_from_the_api(fake_api, app):
    # Given a job this session never uploaded
    turns = [{"speaker": "Agent", "text": "Hello, Contoso."}, {"speaker": "Customer", "text": "Refund, please."}]
    fake_api.state.jobs["elsewhere"] = _succeeded_job("elsewhere", turns)
    # When the transcripts page opens
    open_transcripts(app)
    # Then its turns are shown beside its summary
    assert page_text(app.columns[1]).splitlines()[1:] == ["**Agent:** Hello, Contoso.", "**Customer:** Refund, please."]
    assert "not available" not in page_text(app)


def test_turns_with_times_say_where_they_are_in_the_call(fake_api, app):
    # Given a job whose transcript format has times (the API sends each turn's start in seconds)
    turns = [
        {"speaker": "Agent", "text": "Hello, Contoso.", "start_s": 1.5, "end_s": 3.0},
        {"speaker": "Customer", "text": "Refund, please.", "start_s": 3725.0, "end_s": None},
    ]
    fake_api.state.jobs["timed"] = _succeeded_job("timed", turns)
    # When the transcripts page opens
    open_transcripts(app)
    # Then each turn opens with its time into the recording
    assert page_text(app.columns[1]).splitlines()[1:] == [
        "**0:01 · Agent:** Hello, Contoso.",
        "**1:02:05 · Customer:** Refund, please.",
    ]


def test_a_cut_transcript_says_only_the_first_turns_are_shown(fake_api, app):
    # Given a long job whose API answer carries only its first turns
    turns = [{"speaker": "Agent", "text": f"Line {n}."} for n in range(3)]
    fake_api.state.jobs["long"] = _succeeded_job("long", turns, total=1200, truncated=True)
    # When the page opens
    open_transcripts(app)
    # Then the first turns are shown, and the page says so
    shown = page_text(app.columns[1])
    assert shown.splitlines()[1:4] == ["**Agent:** Line 0.", "**Agent:** Line 1.", "**Agent:** Line 2."]
    assert "The first 3 of 1200 turns; the summary covers them all." in shown


def test_without_turns_from_the_api_a_file_uploaded_here_is_parsed_locally(fake_api, app):
    # Given an API that sends no turns
    fake_api.state.send_turns = False
    open_transcripts(app)
    # When a file is uploaded in this session and summarized
    app.file_uploader[0].set_value(("call-b.txt", CALL_B, "text/plain"))
    app.run()
    click(app, "Upload and summarize")
    # Then its turns are parsed from the uploaded bytes
    assert page_text(app.columns[1]).splitlines()[1:] == [
        "**Agent:** Hello.",
        "**Customer:** I want to cancel my plan.",
        "**Agent:** Sorry to hear that.",
    ]


def test_without_turns_from_the_api_or_the_file_the_page_says_so(fake_api, app):
    # Given a job uploaded elsewhere and an API that sends no turns
    fake_api.state.send_turns = False
    fake_api.state.jobs["old"] = _succeeded_job("old", [{"speaker": "Agent", "text": "Hi."}])
    # When the page opens
    open_transcripts(app)
    # Then the summary is shown and the missing turns are explained
    assert "Customer asked about a refund." in page_text(app.columns[0])
    assert page_text(app.columns[1]).splitlines()[1:] == ["The turns of this transcript are not available."]


def test_ask_about_this_call_opens_a_conversation_whose_answers_link_to_their_turns(fake_api, app):
    # Given a summarized call on the transcripts page
    open_transcripts(app)
    app.file_uploader[0].set_value(("call-a.txt", CALL_A, "text/plain"))
    app.run()
    click(app, "Upload and summarize")

    # When Alice asks about it
    click(app, "Ask about this call")

    # Then a conversation about that call is open in the chat
    assert not app.exception
    [conversation] = fake_api.state.conversations.values()
    assert conversation["title"] == "About call-a.txt"
    assert app.session_state.conversation_id == conversation["id"]
    assert "About call-a.txt" in page_text(app)

    # When she asks a question there (AppTest reruns the page it was told to, so it is told the chat's)
    app.switch_page("screens/chat.py").run()
    app.chat_input[0].set_value("Why did they call?").run()

    # Then the answer says which turns of the call it was given
    assert "Answered from the call: turns 0 (Agent), 1 (Customer)." in page_text(app)

    # When she follows them to the call
    click(app, "Show these turns in the call")

    # Then the transcripts page marks those turns beside the summary
    assert "Transcripts" in page_text(app)
    turns_column = app.columns[1]
    assert page_text(turns_column).splitlines()[1:] == [
        "**▶ turn 0 · Agent:** Thanks for calling, how can I help?",
        "**▶ turn 1 · Customer:** My router keeps rebooting.",
    ]
    assert fake_api.state.contract_violations == []
