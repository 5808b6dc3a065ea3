"""Real browser against the real local stack: Debian's Chromium driven by Playwright opens the served UI, chats,
summarizes, uploads a transcript and reads its summary, at desktop and at phone width, and stops an answer while it
streams (the stack's chat model can hold an answer mid-stream: AppTest runs a script to its end, so only a browser
can click Stop during a run); screenshots go to test-artifacts/ui/ (look at them: they are the check that the page
looks right)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_api import FakeApi, InjectedFailure
from local_stack import running_local_stack
from playwright.sync_api import Browser, Page, expect, sync_playwright

from local.backends import create_backend
from local.backends.base import Backend
from local.stack import LocalStack
from ui import UIHandle, start_ui
from ui.api_client import ChatbotApiClient

CHROMIUM = "/usr/bin/chromium"
# Flags from shared/reference/environment.md; Playwright adds --headless and a fresh profile itself.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}  # a common phone viewport in CSS pixels
WAIT_MS = 30_000  # bound on each wait for the page; the steps themselves take about a second
TRANSCRIPT = (
    "Agent: Good morning, Contoso Bikes, Priya speaking.\n"
    "Customer: Hello, the chain on my new bike slips in the highest gear.\n"
    "Agent: That usually means the derailleur needs adjusting; bring it in and we fix it for free.\n"
    "Customer: Great, I will come by on Saturday.\n"
)
HELD_AFTER_PARTS = 2  # a streamed answer's first two parts: vLLM's role chunk, then the first word
# After a held answer is let go, its parts come this far apart: time for the gateway to see that its reader left.
HELD_PART_PAUSE_S = 0.25
SERVER_WAIT_S = 15  # bound on waiting for the streaming function to notice a dropped stream (about a second)


class HeldStreams:
    """A switch on the local stack's chat model: after `hold_next`, the next streamed answer sends its first word,
    then waits for `release` (so a test can act while an answer is surely mid-stream), then goes on slowly."""

    def __init__(self) -> None:
        self._armed = False
        self._lock = threading.Lock()
        self._released = threading.Event()

    def hold_next(self) -> None:
        with self._lock:
            self._armed = True
            self._released.clear()

    def release(self) -> None:
        self._released.set()

    def take(self) -> bool:
        with self._lock:
            armed, self._armed = self._armed, False
            return armed

    def holding(self, sink: Any) -> Any:
        sent = 0

        def forward(part: bytes, content_type: str | None = None) -> None:
            nonlocal sent
            if sent == HELD_AFTER_PARTS:
                self._released.wait(WAIT_MS / 1000)  # bounded: a failing test never blocks the endpoint for good
            elif sent > HELD_AFTER_PARTS:
                time.sleep(HELD_PART_PAUSE_S)
            sent += 1
            sink(part, content_type)

        return forward


class HoldableChat(Backend):
    """The real chat backend, whose streamed answer is held when its HeldStreams switch says so."""

    def __init__(self, inner: Backend, switch: HeldStreams):
        self.inner = inner
        self.switch = switch
        self.label = inner.label
        self.content_type = inner.content_type

    def prepare(self, payload: Any) -> Any:
        return self.switch.take(), self.inner.prepare(payload)

    def run_batch(self, prepared: list[Any], sinks: list) -> list[Any]:
        held_sinks = [
            self.switch.holding(sink) if held and sink is not None else sink
            for (held, _), sink in zip(prepared, sinks, strict=True)
        ]
        return self.inner.run_batch([item for _, item in prepared], held_sinks)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture(scope="module")
def held_streams() -> Iterator[HeldStreams]:
    switch = HeldStreams()
    yield switch
    switch.release()


@pytest.fixture(scope="module")
def stack(held_streams: HeldStreams) -> Iterator[LocalStack]:
    def holdable_chat(component_name: str, component: Any) -> Backend:
        backend = create_backend(component_name, component)
        return HoldableChat(backend, held_streams) if component_name == "chat" else backend

    with running_local_stack(backend_factory=holdable_chat) as running:
        yield running


@pytest.fixture(scope="module")
def served_ui(stack: LocalStack) -> Iterator[UIHandle]:
    with start_ui(stack.urls["api"], "127.0.0.1", 0) as handle:
        yield handle


@pytest.fixture
def ui_on_fake_api(fake_api: FakeApi) -> Iterator[UIHandle]:
    with start_ui(fake_api.url, "127.0.0.1", 0) as handle:
        yield handle


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


def _screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


def _sign_in(page: Page, url: str, user: str) -> None:
    page.goto(url)
    page.get_by_label("User name").fill(user)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text(f"Signed in as {user}")).to_be_visible(timeout=WAIT_MS)


def _chat_and_summarize(page: Page) -> None:
    page.get_by_placeholder("Message the assistant").fill("My bike chain slips in top gear")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="My bike chain slips in top gear")).to_be_visible(timeout=WAIT_MS)
    answer = page.get_by_test_id("stChatMessage").filter(has=page.get_by_test_id("stChatMessageAvatarAssistant"))
    expect(answer).to_have_count(1, timeout=WAIT_MS)
    expect(answer).not_to_be_empty()
    page.get_by_role("button", name="Summarize conversation").click()
    expect(page.get_by_text(re.compile(r"^Made \d{4}-\d\d-\d\d"))).to_be_visible(timeout=WAIT_MS)


def _open_transcripts(page: Page, phone: bool) -> None:
    # At phone width the page links live in the sidebar: open it, pick the page, close it again.
    if phone:
        page.get_by_role("button", name="Expand sidebar").click()
    page.get_by_role("link", name="Transcripts").click()
    if phone:
        page.get_by_role("button", name="Collapse sidebar").click()


def _upload_transcript(page: Page, tmp_path: Path, phone: bool) -> None:
    _open_transcripts(page, phone)
    expect(page.get_by_role("heading", name="Transcripts")).to_be_visible(timeout=WAIT_MS)
    transcript = tmp_path / "bike-call.txt"
    transcript.write_text(TRANSCRIPT)
    page.locator("input[type=file]").set_input_files(transcript)
    upload = page.get_by_role("button", name="Upload and summarize")
    expect(upload).to_be_enabled(timeout=WAIT_MS)
    upload.click()
    expect(page.get_by_text("bike-call.txt: uploaded")).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_text("All jobs finished.")).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_text("speakers: Agent, Customer · 4 turns")).to_be_visible(timeout=WAIT_MS)
    # The last turn, as its own line in the transcript column (the summary may quote it too)
    expect(page.get_by_text("Customer: Great, I will come by on Saturday.", exact=True).last).to_be_visible()


def _unnamed_controls(page: Page) -> list[str]:
    """Buttons, links and form fields a screen reader could not name."""
    return page.evaluate(
        """() => [...document.querySelectorAll('button, a[href], input:not([type=hidden]), textarea, select')]
            .filter(el => el.offsetParent !== null)
            .filter(el => !(el.getAttribute('aria-label') || el.labels?.length || el.textContent.trim()
                            || el.getAttribute('title') || el.getAttribute('aria-labelledby')))
            .map(el => el.outerHTML.slice(0, 120))"""
    )


@pytest.mark.parametrize("viewport_name", ["desktop", "phone"])
def test_a_person_chats_summarizes_and_reads_a_transcript_summary_in_chromium(
    served_ui, browser, tmp_path, viewport_name
):
    # Given Chromium at desktop or phone width on the served UI
    viewport = DESKTOP if viewport_name == "desktop" else PHONE
    context = browser.new_context(
        viewport=viewport, is_mobile=viewport_name == "phone", has_touch=viewport_name == "phone"
    )
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    # When the person signs in
    _sign_in(page, served_ui.url, f"rider-{viewport_name}")
    # Then every control on the page has an accessible name
    assert _unnamed_controls(page) == []
    # When they send a message, then click Summarize
    _chat_and_summarize(page)
    _screenshot(page, f"chat-{viewport_name}")
    # And upload a transcript
    _upload_transcript(page, tmp_path, phone=viewport_name == "phone")
    _screenshot(page, f"transcripts-{viewport_name}")
    page.get_by_role("heading", name="Summaries").evaluate("heading => heading.scrollIntoView({block: 'start'})")
    _screenshot(page, f"transcript-summary-{viewport_name}")
    # Then nothing on the way showed a Python traceback
    assert page.get_by_text("Traceback").count() == 0
    context.close()


def test_a_throttled_answer_reads_as_a_message_with_retry_at_phone_width(fake_api, ui_on_fake_api, browser):
    # Given a phone on the UI, and an API whose model is throttled for the next message
    fake_api.add_conversation("pat", "Delivery")
    fake_api.fail_next("send", InjectedFailure(503, "Model is throttled", retry_after_s=5, stores_message=True))
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    _sign_in(page, ui_on_fake_api.url, "pat")
    # When a message is sent
    page.get_by_placeholder("Message the assistant").fill("Where is parcel 4471?")
    page.keyboard.press("Enter")
    # Then a readable message says when to retry, the typed message is still there, and Retry is offered
    expect(
        page.get_by_text("The model is busy right now (throttled or scaling up). Try again in 5 seconds.")
    ).to_be_visible()
    expect(page.get_by_text("Where is parcel 4471?", exact=True)).to_be_visible()
    _screenshot(page, "chat-error-phone")
    # When Retry is tapped
    page.get_by_role("button", name="Retry").click()
    # Then the answer arrives and the error is gone
    # Once: while the page reruns, the streamed bubble and the reloaded history may show it twice for a moment
    expect(page.get_by_text("You said: Where is parcel 4471?")).to_have_count(1)
    expect(page.get_by_text("The model is busy right now")).to_have_count(0)
    context.close()


def test_an_answer_appears_word_by_word_with_stop_until_it_is_complete(fake_api, ui_on_fake_api, browser):
    # Given an API that streams its answers a word a second
    fake_api.add_conversation("sam", "Parcels")
    fake_api.state.stream_word_pause_s = 1.0
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    _sign_in(page, ui_on_fake_api.url, "sam")
    # When a message is sent
    page.get_by_placeholder("Message the assistant").fill("Where is parcel 4471 today?")
    page.keyboard.press("Enter")
    # Then the first words show while the answer is still arriving (Stop is offered, the last word is not there)
    expect(page.get_by_text(re.compile(r"^You said:"))).to_be_visible()
    expect(page.get_by_role("button", name="Stop")).to_be_visible()
    assert page.get_by_text("You said: Where is parcel 4471 today?", exact=True).count() == 0
    _screenshot(page, "chat-streaming")
    # And the whole answer ends the stream, and Stop goes away
    expect(page.get_by_text("You said: Where is parcel 4471 today?", exact=True)).to_be_visible(timeout=20_000)
    expect(page.get_by_role("button", name="Stop")).to_have_count(0)
    context.close()


def _stored(api: ChatbotApiClient, conversation_id: str) -> list[tuple[str, str, str | None]]:
    return [(m.role, m.content, m.status) for m in api.list_messages(conversation_id).items]


def test_stop_mid_answer_keeps_nothing_partial_and_retry_answers_the_message(stack, served_ui, browser, held_streams):
    # Given a person with a conversation on the real local stack, whose next answer is held after its first word
    api = ChatbotApiClient(stack.urls["api"], "local-stopper")
    conversation = api.create_conversation(title="Opening hours")
    held_streams.hold_next()
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    _sign_in(page, served_ui.url, "stopper")
    expect(page.get_by_role("heading", name="Opening hours")).to_be_visible()
    # When they send a message and click Stop while the answer is arriving
    page.get_by_placeholder("Message the assistant").fill("When do you open on Sunday?")
    page.keyboard.press("Enter")
    answer = page.get_by_test_id("stChatMessage").filter(has=page.get_by_test_id("stChatMessageAvatarAssistant"))
    expect(answer.get_by_text(re.compile(r"^This\b"))).to_be_visible(timeout=WAIT_MS)
    _screenshot(page, "chat-stop-before")
    page.get_by_role("button", name="Stop").click()
    held_streams.release()
    # Then the page says the answer was stopped and not saved, offers Retry, and shows no partial answer
    notice = "You stopped the answer; nothing of it was saved. Retry to get a whole answer."
    expect(page.get_by_text(notice)).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_role("button", name="Retry")).to_be_visible()
    expect(page.get_by_role("button", name="Stop")).to_have_count(0)
    expect(answer).to_have_count(0)
    expect(page.get_by_text("When do you open on Sunday?", exact=True)).to_have_count(1)
    # And the header counts the message, which was stored before the model was called
    expect(page.get_by_text(re.compile(r"^1 message · last active"))).to_be_visible()
    _screenshot(page, "chat-stop-after")
    # And the server keeps the message unanswered, with no partial answer, once the function sees the stream gone
    deadline = time.monotonic() + SERVER_WAIT_S
    while _stored(api, conversation.id)[0][2] != "unanswered" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _stored(api, conversation.id) == [("user", "When do you open on Sunday?", "unanswered")]
    # When they click Retry
    page.get_by_role("button", name="Retry").click()
    # Then the whole answer is shown once, the notice is gone, and the server stored exactly that answer
    expect(page.get_by_text(notice)).to_have_count(0, timeout=WAIT_MS)
    expect(answer).to_have_count(1, timeout=WAIT_MS)
    expect(page.get_by_role("button", name="Retry")).to_have_count(0)
    stored = _stored(api, conversation.id)
    assert [(role, status) for role, _, status in stored] == [("user", "answered"), ("assistant", None)]
    expect(answer).to_contain_text(stored[1][1])
    assert page.get_by_text("Traceback").count() == 0
    context.close()
