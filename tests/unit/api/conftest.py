"""The conversations handler loaded as Lambda loads it, on moto, with the endpoint stubbed by botocore."""

from __future__ import annotations

import pytest
from botocore.stub import Stubber
from chatbot.settings import get_settings


@pytest.fixture
def handler_module(moto_table, load_handler, monkeypatch):
    monkeypatch.setenv("TABLE_NAME", moto_table)
    monkeypatch.setenv("SAGEMAKER_ENDPOINT_NAME", "genai-chatbot")
    monkeypatch.setenv("CHAT_COMPONENT_NAME", "chat")
    monkeypatch.setenv("SUMMARIZER_COMPONENT_NAME", "summarizer")
    get_settings.cache_clear()
    yield load_handler("ConversationsFunction")
    get_settings.cache_clear()


@pytest.fixture
def endpoint(handler_module):
    """Stubber on the handler's sagemaker-runtime client: queue answers or errors per test."""
    with Stubber(handler_module.service._inference._client) as stubber:
        yield stubber
