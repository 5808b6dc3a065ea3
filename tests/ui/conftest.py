from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_api import FakeApi
from streamlit.testing.v1 import AppTest

APP_PATH = Path(__file__).resolve().parents[2] / "ui" / "app.py"
# A bound, not a speed claim: one script run against the loopback fake API takes well under a second.
RUN_TIMEOUT_S = 30


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApi]:
    api = FakeApi().start()
    monkeypatch.setenv("CHATBOT_API_URL", api.url)
    monkeypatch.setenv("CHATBOT_AUTH_MODE", "local")
    yield api
    api.stop()
    assert api.state.contract_violations == [], "the fake API drifted from openapi.json"


@pytest.fixture
def app() -> AppTest:
    return AppTest.from_file(str(APP_PATH), default_timeout=RUN_TIMEOUT_S)
