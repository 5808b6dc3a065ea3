"""The sign-in form: a user name locally, user name and password against Cognito in AWS."""

from __future__ import annotations

import streamlit as st

from ui import auth
from ui.settings import AuthMode
from ui.views.common import settings, show_notice, start_session


def render() -> None:
    st.title("GenAI chatbot")
    show_notice()
    local = settings().auth_mode is AuthMode.LOCAL
    if local:
        st.caption(f"Local stack at {settings().api_url}: any user name signs you in as that user.")
    with st.form("sign_in", border=True):
        st.subheader("Sign in")
        user = st.text_input("User name", autocomplete="username", max_chars=128)
        password = "" if local else st.text_input("Password", type="password", autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if not submitted:
        return
    try:
        with st.spinner("Signing in…"):
            session = auth.sign_in(settings(), user, password)
    except auth.SignInError as error:
        st.error(str(error), icon=":material/error:")
        return
    start_session(session)
    st.rerun()
