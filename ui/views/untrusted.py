"""Text the model or an uploaded transcript wrote, shown as Markdown but never with an image.

The browser fetches a Markdown image as soon as it is drawn, so an answer steered by an injected prompt could send
conversation data to any server inside an image URL. Streamlit already shows raw HTML (`<img>`) as text; every
Markdown image starts with `![`, so escaping that bracket (`!\\[`) keeps the words and drops the image. Inside code
an escape would show, so a fenced code block that contains `![` is drawn with st.code, which interprets nothing.
"""

from __future__ import annotations

import re

import streamlit as st

from ui.views.common import with_line_breaks

# A CommonMark code fence: up to 3 spaces, then 3 or more backticks or tildes, then the info string.
_FENCE_OPEN = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_IMAGE_START = "!["


def without_images(text: str) -> str:
    """`text` with every image opener escaped: the same words as Markdown, no image."""
    return text.replace(_IMAGE_START, "!\\[")


def show_markdown(text: str, *, line_breaks: bool = False) -> None:
    """Draw untrusted Markdown without images; `line_breaks` keeps single newlines (summaries' "Speaker: text")."""
    for code, language, part in _split_code_with_images(text):
        if code:
            st.code(part, language=language)
        elif part.strip():
            part = without_images(part)
            st.markdown(with_line_breaks(part) if line_breaks else part)


def _split_code_with_images(text: str) -> list[tuple[bool, str | None, str]]:
    """(is_code, language, text) parts: fenced code blocks that contain `![` apart, everything else as it was."""
    parts: list[tuple[bool, str | None, str]] = []
    lines = text.splitlines(keepends=True)
    prose: list[str] = []
    index = 0
    while index < len(lines):
        opening = _FENCE_OPEN.match(lines[index].rstrip("\r\n"))
        if opening is None or (opening["fence"][0] == "`" and "`" in opening["info"]):
            prose.append(lines[index])
            index += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        end = next((j for j in range(index + 1, len(lines)) if closing.match(lines[j].rstrip("\r\n"))), len(lines))
        block = lines[index : end + 1]
        body = "".join(_dedent(line, indent) for line in lines[index + 1 : end])
        if _IMAGE_START in body:
            if prose:
                parts.append((False, None, "".join(prose)))
                prose = []
            parts.append((True, opening["info"].strip().split(" ")[0] or None, body.rstrip("\r\n")))
        else:
            prose.extend(block)
        index = end + 1
    if prose:
        parts.append((False, None, "".join(prose)))
    return parts


def _dedent(line: str, indent: int) -> str:
    """A code line without the fence's own indentation (at most that many spaces), as CommonMark reads it."""
    stripped = len(line) - len(line.lstrip(" "))
    return line[min(stripped, indent) :]
