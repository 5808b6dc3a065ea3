"""Readers and actions over an AppTest's element tree, so tests say what a person sees and does."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Block, Button

_TEXT_ELEMENTS = ("title", "subheader", "markdown", "caption", "error", "warning", "info", "success")


def sign_in(app: AppTest, user: str = "alice") -> AppTest:
    app.run()
    app.text_input[0].input(user)
    return click(app, "Sign in")


def button(app: AppTest | Block, label: str) -> Button:
    matches = [candidate for candidate in app.button if candidate.label == label]
    assert len(matches) == 1, f"expected one button {label!r}, found {[b.label for b in app.button]}"
    return matches[0]


def click(app: AppTest, label: str) -> AppTest:
    button(app, label).click()
    return app.run()


def texts(app: AppTest | Block) -> list[str]:
    """Every visible text, in page order within each kind."""
    found = []
    for kind in _TEXT_ELEMENTS:
        found.extend(str(element.value) for element in getattr(app, kind))
    return found


def page_text(app: AppTest | Block) -> str:
    return "\n".join(texts(app))


def errors(app: AppTest) -> list[str]:
    return [element.value for element in app.error]


def bubbles(app: AppTest) -> list[tuple[str, str]]:
    """Chat bubbles as (role, markdown text) in order."""
    return [(message.name, "\n".join(m.value for m in message.markdown)) for message in app.chat_message]


def sidebar_buttons(app: AppTest) -> list[str]:
    return [candidate.label for candidate in app.sidebar.button]


def send(app: AppTest, text: str) -> AppTest:
    app.chat_input[0].set_value(text)
    return app.run()
