"""The transcripts page: upload files through presigned URLs, follow their jobs, read each summary beside its turns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import streamlit as st
from chatbot.clock import clock_label
from chatbot.transcript_parsing import TranscriptError, parse_transcript

from ui.api_client import ApiError, TranscriptJob, TranscriptTurn
from ui.views.common import call_api, describe_error, format_time, settings, show_error
from ui.views.untrusted import show_markdown, without_images

ACCEPTED_TYPES = ["json", "vtt", "srt", "txt"]
# Words, not colours or emoji alone: readable by screen readers and on machines without an emoji font.
STATUS_LABELS = {"queued": "Queued", "processing": "Processing", "succeeded": "Succeeded", "failed": "Failed"}
SHOWN_SUMMARIES = 20  # newest finished jobs whose summaries are shown in full
# Files uploaded in this session, kept to parse their turns locally if the API sends none (bounded memory).
KEPT_UPLOADS = SHOWN_SUMMARIES
# Unfinished jobs older than this are not waited for (e.g. a job whose file never arrived): no endless polling.
FOLLOW_JOBS_FOR = timedelta(minutes=15)


@dataclass(frozen=True)
class UploadedTranscript:
    """What this browser session uploaded: the fallback source of its turns when the API has none."""

    filename: str
    content: bytes


def render() -> None:
    st.title("Transcripts", anchor=False)
    st.caption(
        "Upload call transcripts to have them summarized: Amazon Transcribe, Call Analytics or Contact Lens "
        "JSON, WebVTT, SubRip, plain “Speaker: text” lines, or a JSON list of {speaker, text} turns."
    )
    _render_upload()
    _render_jobs()


def _render_upload() -> None:
    generation = st.session_state.setdefault("uploader_generation", 0)
    files = st.file_uploader(
        "Transcript files",
        type=ACCEPTED_TYPES,
        accept_multiple_files=True,
        key=f"transcript_files_{generation}",
        help="Pick one or many files; each becomes a summarization job.",
        max_upload_size=max(1, settings().max_upload_bytes // (1024 * 1024)),
    )
    if not st.button("Upload and summarize", type="primary", icon=":material/upload:", disabled=not files):
        # The last upload's outcome stays until the next upload (the polling table reruns the page meanwhile).
        for uploaded_ok, line in st.session_state.get("upload_report", []):
            if uploaded_ok:
                st.success(line, icon=":material/check_circle:")
            else:
                st.error(line, icon=":material/error:")
        return
    report = []
    progress = st.progress(0.0, text="Uploading…")
    for index, uploaded in enumerate(files, start=1):
        content = uploaded.getvalue()
        try:
            job_id = _upload(uploaded.name, content)
        except ApiError as error:
            report.append((False, f"**{uploaded.name}**: not uploaded. {describe_error(error)}"))
        else:
            _keep_upload(job_id, UploadedTranscript(uploaded.name, content))
            report.append((True, f"**{uploaded.name}**: uploaded, job `{job_id}`."))
        progress.progress(index / len(files), text=f"Uploaded {index} of {len(files)}")
    # A fresh uploader so the same files are not sent twice by a second click.
    st.session_state.uploader_generation = generation + 1
    st.session_state.upload_report = report
    st.session_state.pop("jobs", None)
    st.rerun()


def _keep_upload(job_id: str, upload: UploadedTranscript) -> None:
    kept: dict[str, UploadedTranscript] = st.session_state.setdefault("uploaded_transcripts", {})
    kept[job_id] = upload
    while len(kept) > KEPT_UPLOADS:
        del kept[next(iter(kept))]  # the oldest upload


def _upload(filename: str, content: bytes) -> str:
    def request_and_put(api):
        ticket = api.request_upload(filename)
        api.upload_file(ticket, content)
        return ticket.job_id

    return call_api(f"Uploading {filename}…", request_and_put)


def _render_jobs() -> None:
    jobs: list[TranscriptJob] | None = st.session_state.get("jobs")
    still_running = jobs is None or any(_followed(job) for job in jobs)
    # Polls the job list while a recent job is unfinished; stops once every one is done.
    st.session_state.jobs_polling = still_running
    st.fragment(run_every=settings().job_poll_interval_s if still_running else None)(_jobs_panel)()


def _jobs_panel() -> None:
    st.subheader("Jobs", anchor=False)
    try:
        page = call_api("Loading jobs…", lambda api: api.list_jobs())
    except ApiError as error:
        show_error(error)
        st.button("Try again", key="reload_jobs")
        return
    st.session_state.jobs = page.items
    if not page.items:
        st.caption("No jobs yet. Upload a transcript above.")
        return
    followed = [job for job in page.items if _followed(job)]
    stalled = [job for job in page.items if not job.finished and not _followed(job)]
    if followed:
        st.caption(f"{len(followed)} still running; this table refreshes by itself.")
    elif stalled:
        st.caption(
            f"{len(stalled)} job(s) still not finished after {FOLLOW_JOBS_FOR.seconds // 60} minutes (their file may "
            "never have arrived); this table no longer refreshes by itself."
        )
        st.button("Refresh", icon=":material/refresh:", key="refresh_jobs")
    else:
        st.caption("All jobs finished.")
    # A plain HTML table: screen readers read it, and it needs no canvas.
    st.table(
        [
            {
                "File": job.filename or job.id,
                "Status": STATUS_LABELS.get(job.status, job.status),
                "Updated": format_time(job.updated_at or job.created_at),
                "Details": job.reason or job.last_error or "",
            }
            for job in page.items
        ],
        hide_index=True,
    )
    if st.session_state.jobs_polling and not followed:
        st.rerun()  # a full rerun redefines the fragment without polling: nothing is left to follow
    _render_summaries([job for job in page.items if job.status == "succeeded"][:SHOWN_SUMMARIES])


def _followed(job: TranscriptJob) -> bool:
    """Still worth waiting for: unfinished and started recently."""
    if job.finished:
        return False
    try:
        created = datetime.fromisoformat((job.created_at or "").replace("Z", "+00:00"))
    except ValueError:
        return True
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return datetime.now(UTC) - created < FOLLOW_JOBS_FOR


def _render_summaries(finished: list[TranscriptJob]) -> None:
    if not finished:
        return
    st.subheader("Summaries", anchor=False)
    details: dict[str, TranscriptJob] = st.session_state.setdefault("job_details", {})
    for job in finished:
        if job.id not in details:
            try:
                details[job.id] = call_api(
                    f"Loading the summary of {job.filename}…", lambda api, job=job: api.get_job(job.id)
                )
            except ApiError as error:
                show_error(error)
                continue
        _render_summary_beside_turns(details[job.id])


def _render_summary_beside_turns(job: TranscriptJob) -> None:
    with st.expander(f"{job.filename or job.id}", expanded=True):
        summary_column, turns_column = st.columns(2, gap="medium")
        with summary_column:
            st.markdown("**Summary**")
            if job.summary:
                show_markdown(job.summary, line_breaks=True)
            else:
                st.markdown("_No summary text._")
            st.caption(without_images(_job_facts(job)))
            if st.button("Ask about this call", icon=":material/forum:", key=f"ask_{job.id}"):
                _ask_about(job)
        with turns_column:
            st.markdown("**Transcript**")
            turns, note = _turns(job)
            # The turns an answer in the chat was given from, when it sent the reader here.
            shown_job, used = st.session_state.get("call_turns_shown", (None, frozenset()))
            for index, turn in enumerate(turns):
                # Where the format has times, each turn says where it is in the recording.
                at = f"{clock_label(turn.start_s)} · " if turn.start_s is not None else ""
                if shown_job == job.id and index in used:
                    show_markdown(f"**▶ turn {index} · {at}{turn.speaker}:** {turn.text}")
                else:
                    show_markdown(f"**{at}{turn.speaker}:** {turn.text}")
            if note:
                st.caption(note)


def _ask_about(job: TranscriptJob) -> None:
    """Start a conversation about the call and open it in the chat."""
    try:
        conversation = call_api(
            f"Starting a conversation about {job.filename}…", lambda api: api.ask_about_call(job.id)
        )
    except ApiError as error:
        show_error(error)
        return
    st.session_state.conversation_id = conversation.id
    st.session_state.conversations = None
    st.switch_page("screens/chat.py")


def _turns(job: TranscriptJob) -> tuple[list[TranscriptTurn], str | None]:
    """The job's turns as the API sent them (any job, any session); for a file uploaded in this session, parsed
    here when the API sent none (e.g. a summary written before turns were stored). Plus a note on what is shown."""
    if job.transcript:
        turns = job.transcript
        if not job.turns_truncated:
            return turns, None
        return turns, f"The first {len(turns)} of {job.turn_count or 'more'} turns; the summary covers them all."
    uploaded: UploadedTranscript | None = st.session_state.get("uploaded_transcripts", {}).get(job.id)
    if uploaded is None:
        return [], "The turns of this transcript are not available."
    try:
        parsed = parse_transcript(uploaded.content)
    except TranscriptError as error:
        return [], f"The turns cannot be shown: {error}"
    return [TranscriptTurn(turn.speaker, turn.text, turn.start_s) for turn in parsed.turns], None


def _job_facts(job: TranscriptJob) -> str:
    facts = [f"Made {format_time(job.updated_at)}"]
    if job.format:
        facts.append(f"format: {job.format}")
    if job.speakers:
        facts.append(f"speakers: {', '.join(job.speakers)}")
    if job.turn_count is not None:
        facts.append(f"{job.turn_count} turns")
    if job.chunk_count is not None:
        facts.append(f"{job.chunk_count} chunk{'s' if job.chunk_count != 1 else ''} summarized")
    return " · ".join(facts)
