"""Streamlit entry point of the web UI: `streamlit run ui/app.py` (or `ui.server.start_ui`)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui.settings import UISettingsError
from ui.views.common import current_session, settings, sign_out

SCREENS = Path(__file__).parent / "screens"


def main() -> None:
    st.set_page_config(page_title="GenAI chatbot", page_icon=":material/forum:", layout="centered")
    try:
        settings()
    except UISettingsError as error:
        st.error(f"The UI is misconfigured: {error}", icon=":material/error:")
        st.stop()

    session = current_session()
    if session is None:
        st.navigation([st.Page(SCREENS / "sign_in.py", title="Sign in", url_path="sign-in")], position="hidden").run()
        return

    pages = [
        st.Page(SCREENS / "chat.py", title="Chat", icon=":material/chat:", url_path="chat", default=True),
        st.Page(SCREENS / "transcripts.py", title="Transcripts", icon=":material/description:", url_path="transcripts"),
    ]
    page = st.navigation(pages, position="top")
    with st.sidebar:
        st.caption(f"Signed in as **{session.user}**")
        if st.button("Sign out", icon=":material/logout:", key="sign_out"):
            sign_out("You are signed out.")
            st.rerun()
    page.run()


main()
