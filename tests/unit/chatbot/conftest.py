"""A conversation service on the template's table in moto, with a scripted stand-in for the endpoint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from chatbot.conversations.policy import ChatPolicy
from chatbot.conversations.service import ConversationService
from chatbot.conversations.store import ConversationStore
from chatbot.inference import InferenceError

from bench.read_units import ReadUnitMeter


class ScriptedInference:
    """Records every call; answers deterministically; fails when told to."""

    def __init__(self) -> None:
        self.chat_calls: list[list[dict]] = []
        self.summarize_calls: list[list[str]] = []
        self.failures: list[InferenceError] = []
        self.stream_failures_after: dict[int, InferenceError] = {}  # piece index -> failure raised there

    def chat(self, messages, *, max_new_tokens, temperature=None, **parameters):
        self.chat_calls.append(messages)
        if self.failures:
            raise self.failures.pop(0)
        return f"answer to: {messages[-1]['content']}"

    def chat_stream(self, messages, *, max_new_tokens, temperature=None, **parameters):
        """The same answer as `chat`, a word at a time; fails before any piece, or after as many as told."""
        answer = self.chat(messages, max_new_tokens=max_new_tokens, temperature=temperature)
        for index, word in enumerate(answer.split(" ")):
            if index in self.stream_failures_after:
                raise self.stream_failures_after.pop(index)
            yield word if index == 0 else " " + word

    def summarize(self, texts, **parameters):
        self.summarize_calls.append(list(texts))
        return [f"summary of {len(text)} characters" for text in texts]


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def inference() -> ScriptedInference:
    return ScriptedInference()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def dynamodb(moto_table):
    return boto3.client("dynamodb", region_name="us-east-1")


@pytest.fixture
def store(moto_table, dynamodb) -> ConversationStore:
    return ConversationStore(moto_table, dynamodb)


@pytest.fixture
def read_meter(dynamodb) -> ReadUnitMeter:
    """Read units of every read the store makes, as DynamoDB would bill them."""
    return ReadUnitMeter(dynamodb)


@pytest.fixture
def make_service(store, inference, clock):
    def build(**policy: int) -> ConversationService:
        return ConversationService(store, inference, ChatPolicy(**policy), clock=clock)

    return build


@pytest.fixture
def service(make_service) -> ConversationService:
    return make_service()
