"""The chat page: conversations in the sidebar, the selected conversation's bubbles, its actions."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import streamlit as st
from chatbot.clock import clock_label
from chatbot.conversations.policy import MAX_MESSAGE_CHARS

from ui.api_client import STOPPED, ApiError, Conversation, Message, Page, Summary, new_idempotency_key
from ui.views.common import call_api, format_time, notify, show_error, show_notice
from ui.views.untrusted import show_markdown, without_images

HISTORY_PAGE_SIZE = 100  # the API's largest page
MAX_HISTORY_PAGES = 5  # bounded history load: the newest 500 messages of a conversation
TITLE_WORDS = 8
MAX_TITLE_CHARS = 80


@dataclass
class PendingMessage:
    """A typed message not yet answered; it survives errors so a retry sends exactly the same request."""

    conversation_id: str | None
    text: str
    idempotency_key: str
    error: ApiError | None = None


def render() -> None:
    show_notice()
    conversations = _load_conversations()
    with st.sidebar:
        _render_sidebar(conversations)
    conversation = _selected_conversation(conversations)

    prompt = st.chat_input(
        "Message the assistant", key="chat_prompt", max_chars=MAX_MESSAGE_CHARS, submit_mode="disable"
    )
    if prompt and prompt.strip():
        st.session_state.pending = PendingMessage(
            conversation.id if conversation else None, prompt.strip(), new_idempotency_key()
        )

    if conversation is None:
        st.title("New conversation")
        st.caption("Type a message below to start. Its first words become the title; rename it any time.")
    else:
        _render_header(conversation)
        _render_history(conversation)

    pending: PendingMessage | None = st.session_state.get("pending")
    if pending is None or pending.conversation_id != (conversation.id if conversation else None):
        return
    history = st.session_state.get("messages", {}).get(conversation.id) if conversation else None
    resend = _render_pending(pending, history.messages if history else [])
    if prompt or resend:
        _send(st.session_state.pending)


# sidebar


def _load_conversations() -> Page[Conversation] | None:
    if st.session_state.get("conversations") is None:
        try:
            st.session_state.conversations = call_api("Loading conversations…", lambda api: api.list_conversations())
        except ApiError as error:
            with st.sidebar:
                show_error(error)
                st.button("Try again", key="reload_conversations")
            return None
    return st.session_state.conversations


def _render_sidebar(conversations: Page[Conversation] | None) -> None:
    if st.button("New conversation", icon=":material/add:", type="primary", width="stretch"):
        st.session_state.conversation_id = None
        st.session_state.pop("confirm", None)
        st.rerun()
    if conversations is None:
        return
    st.subheader("Conversations", anchor=False)
    if not conversations.items:
        st.caption("None yet.")
    selected_id = st.session_state.get("conversation_id")
    for conversation in conversations.items:
        is_selected = conversation.id == selected_id
        if st.button(
            conversation.title,
            key=f"open_{conversation.id}",
            icon=":material/chat_bubble:" if is_selected else ":material/chat_bubble_outline:",
            type="secondary" if is_selected else "tertiary",
            help=f"Last active {format_time(conversation.last_active_at)}" + (" (open)" if is_selected else ""),
            width="stretch",
        ):
            st.session_state.conversation_id = conversation.id
            st.session_state.pop("confirm", None)
            st.rerun()
    if conversations.next_cursor and st.button("Load older conversations", key="more_conversations"):
        try:
            older = call_api(
                "Loading older conversations…", lambda api: api.list_conversations(cursor=conversations.next_cursor)
            )
        except ApiError as error:
            show_error(error)
            return
        st.session_state.conversations = Page(conversations.items + older.items, older.next_cursor)
        st.rerun()


def _selected_conversation(conversations: Page[Conversation] | None) -> Conversation | None:
    items = conversations.items if conversations else []
    if "conversation_id" not in st.session_state:
        # First visit: open the most recent conversation, if any.
        st.session_state.conversation_id = items[0].id if items else None
    selected_id = st.session_state.conversation_id
    return next((item for item in items if item.id == selected_id), None)


# header: title and actions


def _render_header(conversation: Conversation) -> None:
    st.title(conversation.title, anchor=False)
    st.caption(
        f"{conversation.message_count} message{'s' if conversation.message_count != 1 else ''} · "
        f"last active {format_time(conversation.last_active_at)}"
    )
    with st.container(horizontal=True, gap="small"):
        summarize = st.button("Summarize conversation", icon=":material/summarize:", key="summarize")
        clear = st.button("Clear conversation", icon=":material/cleaning_services:", key="clear")
        with st.popover("Rename", icon=":material/edit:", key="rename_popover"), st.form("rename", border=False):
            new_title = st.text_input("New title", value=conversation.title, max_chars=200)
            rename = st.form_submit_button("Save title")
        delete = st.button("Delete", icon=":material/delete:", key="delete")

    if clear:
        st.session_state.confirm = ("clear", conversation.id)
    if delete:
        st.session_state.confirm = ("delete", conversation.id)
    if rename:
        _rename(conversation, new_title)
    _render_confirmation(conversation)
    if summarize:
        _summarize(conversation)
    _render_summary(conversation)


def _rename(conversation: Conversation, new_title: str) -> None:
    new_title = new_title.strip()
    if not new_title:
        st.warning("A title cannot be empty.", icon=":material/warning:")
        return
    try:
        call_api("Renaming…", lambda api: api.rename_conversation(conversation.id, new_title))
    except ApiError as error:
        show_error(error)
        return
    st.session_state.conversations = None
    notify(f"Renamed to “{new_title}”.")
    st.rerun()


def _render_confirmation(conversation: Conversation) -> None:
    confirm = st.session_state.get("confirm")
    if not confirm or confirm[1] != conversation.id:
        return
    action = confirm[0]
    with st.container(border=True):
        if action == "clear":
            st.warning(
                f"Clear “{conversation.title}”? All its messages and summaries are deleted; the conversation "
                "itself stays. This cannot be undone.",
                icon=":material/warning:",
            )
        else:
            st.warning(
                f"Delete “{conversation.title}” and everything in it? This cannot be undone.",
                icon=":material/warning:",
            )
        with st.container(horizontal=True):
            confirmed = st.button(
                "Yes, clear it" if action == "clear" else "Yes, delete it", type="primary", key="confirm_yes"
            )
            cancelled = st.button("Cancel", key="confirm_no")
    if cancelled:
        del st.session_state.confirm
        st.rerun()
    if not confirmed:
        return
    try:
        if action == "clear":
            call_api("Clearing the conversation…", lambda api: api.clear_messages(conversation.id))
        else:
            call_api("Deleting the conversation…", lambda api: api.delete_conversation(conversation.id))
    except ApiError as error:
        show_error(error)
        return
    del st.session_state.confirm
    _forget_conversation_data(conversation.id)
    if action == "delete":
        del st.session_state.conversation_id  # reopen the newest remaining one
        notify(f"Deleted “{conversation.title}”.")
    else:
        notify(f"Cleared “{conversation.title}”.")
    st.rerun()


def _summarize(conversation: Conversation) -> None:
    try:
        summary = call_api("Summarizing the conversation…", lambda api: api.summarize(conversation.id))
    except ApiError as error:
        show_error(error)
        return
    st.session_state.setdefault("summaries", {})[conversation.id] = summary


def _render_summary(conversation: Conversation) -> None:
    summary: Summary | None = st.session_state.get("summaries", {}).get(conversation.id)
    if summary is None:
        return
    with st.container(border=True, key="summary_panel"):
        st.markdown("**Summary**")
        if summary.text:
            show_markdown(summary.text, line_breaks=True)
        else:
            st.markdown("_The conversation is empty: nothing to summarize._")
        st.caption(f"Made {format_time(summary.created_at)}" + (" (cached)" if summary.cached else ""))


# history and sending


@dataclass(frozen=True)
class History:
    messages: list[Message]  # oldest first
    has_older: bool  # more messages exist than were loaded


def _history(conversation_id: str) -> History:
    cache: dict[str, History] = st.session_state.setdefault("messages", {})
    if conversation_id not in cache:
        newest_first: list[Message] = []
        cursor = None
        for _ in range(MAX_HISTORY_PAGES):
            page = call_api(
                "Loading messages…",
                lambda api, cursor=cursor: api.list_messages(
                    conversation_id, cursor=cursor, limit=HISTORY_PAGE_SIZE, newest_first=True
                ),
            )
            newest_first.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        cache[conversation_id] = History(newest_first[::-1], has_older=cursor is not None)
    return cache[conversation_id]


def _render_history(conversation: Conversation) -> None:
    try:
        history = _history(conversation.id)
    except ApiError as error:
        show_error(error)
        st.button("Reload messages", key="reload_messages")
        return
    if history.has_older:
        st.caption(f"Showing the newest {len(history.messages)} messages.")
    elif not history.messages and "pending" not in st.session_state:
        st.caption("No messages yet. Say hello below.")
    for position, message in enumerate(history.messages):
        with st.chat_message("user" if message.role == "user" else "assistant"):
            show_markdown(message.content)
            if message.unanswered:
                st.caption("Not answered yet.")
            if message.call_turns:
                _render_used_turns(conversation, message, position)
    last = history.messages[-1] if history.messages else None
    # A failure from an earlier visit: the question is stored unanswered, so the API can answer it now.
    offer_answer = last is not None and last.unanswered and "pending" not in st.session_state
    if offer_answer and st.button("Get the answer", icon=":material/refresh:", type="primary", key="retry_stored"):
        _retry_stored(conversation.id)


def _render_used_turns(conversation: Conversation, message: Message, position: int) -> None:
    """The call's turns an answer was given from, and a way to see them beside the call's summary."""
    turns = ", ".join(
        f"{turn.index} ({turn.speaker}{f', {clock_label(turn.start_s)}' if turn.start_s is not None else ''})"
        for turn in message.call_turns
    )
    scope = "a selection of the call's turns (it is longer than what fits)" if message.call_selection else "the call"
    st.caption(without_images(f"Answered from {scope}: turns {turns}."))
    if st.button("Show these turns in the call", icon=":material/description:", key=f"used_turns_{position}"):
        st.session_state.call_turns_shown = (conversation.call_job_id, frozenset(t.index for t in message.call_turns))
        st.switch_page("screens/transcripts.py")


def _render_pending(pending: PendingMessage, history: list[Message]) -> bool:
    """Draw the unanswered message (unless the history already shows it) and its error, with a way to send it
    again: Retry (same request) when waiting may help, else an editable copy. True when the user resends."""
    last = history[-1] if history else None
    if not (last and last.role == "user" and last.content == pending.text):
        with st.chat_message("user"):
            show_markdown(pending.text)
    if pending.error is None:
        return False
    show_error(pending.error)
    if pending.error.retryable:
        return st.button("Retry", icon=":material/refresh:", type="primary", key="retry_send")
    with st.form("edit_message", border=False):
        edited = st.text_area("Edit your message", value=pending.text, max_chars=MAX_MESSAGE_CHARS)
        if not st.form_submit_button("Send edited message", type="primary") or not edited.strip():
            return False
    # An edited message is a new request: a new idempotency key.
    st.session_state.pending = PendingMessage(pending.conversation_id, edited.strip(), new_idempotency_key())
    return True


def _send(pending: PendingMessage) -> None:
    with st.chat_message("assistant"):
        try:
            if pending.conversation_id is None:
                created = call_api(
                    "Starting a conversation…",
                    lambda api: api.create_conversation(title=_title_from(pending.text)),
                )
                pending.conversation_id = created.id
                st.session_state.conversation_id = created.id
                st.session_state.conversations = None
            # Stop reruns the page, which ends this run and drops the stream (the message stays unanswered).
            st.button("Stop", icon=":material/stop:", key="stop_answer", on_click=_stop, args=(pending,))
            pieces = call_api(
                "Thinking…",
                lambda api: _first_piece_read(
                    api.stream_message(pending.conversation_id, pending.text, idempotency_key=pending.idempotency_key)
                ),
            )
            shown, text = st.empty(), ""
            for piece in pieces:  # drawn as it arrives, with the same image escaping as every answer
                text += piece
                with shown.container():
                    show_markdown(text)
        except ApiError as error:
            pending.error = error
            if error.status == 404 and pending.conversation_id:
                # The conversation was deleted elsewhere: keep the message, to start a new conversation with it.
                _forget_conversation_data(pending.conversation_id)
                pending.conversation_id = st.session_state.conversation_id = None
            st.rerun()
    del st.session_state.pending
    _forget_conversation_data(pending.conversation_id)
    st.rerun()


def _first_piece_read(pieces: Iterator[str]) -> Iterator[str]:
    """Read the first piece now, so that what fails before the answer starts fails inside call_api (sign-in
    renewal, the spinner), then hand over the stream."""
    first = next(pieces, "")

    def rest() -> Iterator[str]:
        yield first
        yield from pieces

    return rest()


def _stop(pending: PendingMessage) -> None:
    pending.error = ApiError(STOPPED, "You stopped the answer; it was not saved.")
    # The message itself was stored: the conversation list (and this page's header count) is re-read.
    st.session_state.conversations = None


def _retry_stored(conversation_id: str) -> None:
    with st.chat_message("assistant"):
        try:
            call_api("Thinking…", lambda api: api.retry_last_message(conversation_id))
        except ApiError as error:
            show_error(error)
            return
    _forget_conversation_data(conversation_id)
    st.rerun()


def _forget_conversation_data(conversation_id: str) -> None:
    """After a change on the server, drop what this page cached about the conversation so it is re-read."""
    st.session_state.get("messages", {}).pop(conversation_id, None)
    st.session_state.get("summaries", {}).pop(conversation_id, None)
    st.session_state.conversations = None


def _title_from(text: str) -> str:
    words = text.split()
    title = " ".join(words[:TITLE_WORDS])[:MAX_TITLE_CHARS]
    return title if title == " ".join(words) else title + "…"
