"""What every page shares: the signed-in session, API calls under a spinner, readable errors, times."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import streamlit as st

from ui import auth
from ui.api_client import ACCEPTED, BACKGROUND_FAILED, NO_RESPONSE, STOPPED, ApiError, ChatbotApiClient
from ui.settings import UISettings

T = TypeVar("T")

_AUTH_KEY = "auth_session"
_NOTICE_KEY = "notice"


def settings() -> UISettings:
    if "ui_settings" not in st.session_state:
        st.session_state.ui_settings = UISettings.from_env()
    return st.session_state.ui_settings


def current_session() -> auth.AuthSession | None:
    return st.session_state.get(_AUTH_KEY)


def start_session(session: auth.AuthSession) -> None:
    st.session_state[_AUTH_KEY] = session


def sign_out(notice: str | None = None) -> None:
    """Forget everything about the signed-in user (their conversations, jobs, drafts), keep the settings."""
    for key in list(st.session_state.keys()):
        if key != "ui_settings":
            del st.session_state[key]
    if notice:
        notify(notice)


def notify(text: str) -> None:
    """A one-time notice shown at the top of the next page run (e.g. after an action and st.rerun)."""
    st.session_state[_NOTICE_KEY] = text


def show_notice() -> None:
    notice = st.session_state.pop(_NOTICE_KEY, None)
    if notice:
        st.info(notice, icon=":material/info:")


def api() -> ChatbotApiClient:
    session = current_session()
    if session is None:
        raise RuntimeError("api() called before sign-in")
    client = st.session_state.get("api_client")
    if client is None or client.token != session.token:
        client = ChatbotApiClient(settings().api_url, session.token, timeout_s=settings().request_timeout_s)
        st.session_state.api_client = client
    return client


def call_api(spinner_text: str, action: Callable[[ChatbotApiClient], T]) -> T:
    """Run one API call under a spinner. An expired sign-in is renewed once, or the user is sent back to
    sign in; every other ApiError is raised for the page to show where it belongs."""
    with st.spinner(spinner_text):
        try:
            return action(api())
        except ApiError as error:
            if error.status != 401:
                raise
            renewed = auth.refresh(settings(), current_session())
            if renewed is None:
                sign_out("Your session has ended. Sign in again to continue.")
                st.rerun()
            start_session(renewed)
            return action(api())


def describe_error(error: ApiError) -> str:
    """One readable sentence or two for the person using the page; never a stack trace."""
    wait = _wait_hint(error.retry_after_s)
    detail = error.message.rstrip(". ")
    if error.status == NO_RESPONSE:
        return f"{detail}. Check your connection and that the chatbot API is running, then try again."
    if error.status == STOPPED:
        return "You stopped the answer; nothing of it was saved. Retry to get a whole answer."
    if error.status in (ACCEPTED, BACKGROUND_FAILED):  # a long summary being made, or failed, in the background
        return f"{detail}."
    # The API's own 5xx messages are written for API clients; people get these sentences instead.
    if error.status == 502:
        return "The model could not produce an answer. Try again."
    if error.status == 503:
        return f"The model is busy right now (throttled or scaling up). Try again{wait}."
    if error.status == 500:
        return "Something went wrong on the server. Try again; if it keeps failing, tell the team that runs it."
    if error.status == 429:
        return f"Too many requests right now. Try again{wait}."
    if error.status == 504:
        return "The answer took too long to arrive. Try again; a shorter message may help."
    if error.status == 404:
        return f"Not found ({detail}); it may have been deleted in another window."
    if error.status == 413:
        return f"That is too large: {detail}. Shorten it and send it again."
    if error.status == 409:
        return f"Something else changed this at the same moment ({detail}). Try again{wait}."
    if error.status in (400, 422):
        fields = ", ".join(_field_name(item) for item in error.field_errors if _field_name(item))
        return f"The request was not accepted: {detail}" + (f" (check: {fields})." if fields else ".")
    if error.status == 403:
        return f"Not allowed: {detail}."
    return f"The API answered with an error ({error.status}): {detail}."


def show_error(error: ApiError) -> None:
    st.error(describe_error(error), icon=":material/error:")


def _wait_hint(retry_after_s: float | None) -> str:
    if retry_after_s is None:
        return " in a moment"
    seconds = max(1, round(retry_after_s))
    return f" in {seconds} second{'s' if seconds != 1 else ''}"


def _field_name(item: dict) -> str:
    location = item.get("field") or item.get("loc") or item.get("name") or ""
    if isinstance(location, list | tuple):
        location = ".".join(str(part) for part in location if part not in ("body", "query", "path"))
    return str(location)


def format_time(iso_time: str | None) -> str:
    """An API timestamp in the browser's time zone when known, else UTC, to the minute."""
    if not iso_time:
        return "unknown time"
    try:
        moment = datetime.fromisoformat(iso_time.replace("Z", "+00:00"))
    except ValueError:
        return iso_time
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    zone_name = st.context.timezone
    try:
        zone = ZoneInfo(zone_name) if zone_name else UTC
    except (ZoneInfoNotFoundError, ValueError):
        zone = UTC
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def with_line_breaks(text: str) -> str:
    """Markdown joins single newlines; summaries made of "Speaker: text" lines must keep them."""
    return text.replace("\r\n", "\n").replace("\n", "  \n")
