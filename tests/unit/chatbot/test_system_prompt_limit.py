"""A system prompt must leave the chat model's context room for the conversation: refused (422) when a conversation
is created or its prompt changed, rather than making every send a 413."""

import re

import pytest
from chatbot.conversations.policy import ChatPolicy
from chatbot.errors import SystemPromptTooLongError

ALICE = "alice-sub"
CALL = {"job_id": "job-1", "filename": "call.vtt"}
POLICY = ChatPolicy()


def dense_prompt(tokens: int) -> str:
    """A prompt of exactly `tokens` estimated tokens (a digit is one token)."""
    return "7" * tokens


def refused_limit(call) -> int:
    """The limit in tokens that the refusal states."""
    with pytest.raises(SystemPromptTooLongError) as refusal:
        call()
    return int(re.search(r"the limit is (\d+) tokens", refusal.value.message).group(1))


def test_a_prompt_beyond_the_limit_is_refused_and_one_at_the_limit_leaves_room_to_talk(service, inference):
    # Given a prompt longer than the whole prompt budget
    whole_budget = dense_prompt(POLICY.chat_prompt_budget_tokens + 1)
    # When a conversation is created with it, Then it is refused with the limit, well under the budget, and not stored
    limit = refused_limit(lambda: service.create_conversation(ALICE, None, whole_budget))
    assert 0 < limit < POLICY.chat_prompt_budget_tokens
    assert service.list_conversations(ALICE, 10, None)["items"] == []
    # And one token over the limit is refused too
    assert refused_limit(lambda: service.create_conversation(ALICE, None, dense_prompt(limit + 1))) == limit
    # When the prompt is exactly at the limit, Then the conversation is created
    conversation_id = service.create_conversation(ALICE, None, dense_prompt(limit))["id"]
    # And two turns are answered, the second with the first in its memory
    service.send_message(ALICE, conversation_id, "Which plan am I on?")
    exchange = service.send_message(ALICE, conversation_id, "And what does it cost?")
    assert exchange["assistant_message"]["content"] == "answer to: And what does it cost?"
    assert [message["role"] for message in inference.chat_calls[-1]] == ["system", "user", "assistant", "user"]


def test_a_conversation_about_a_call_keeps_the_call_share_free(service):
    # Given the limit of an ordinary conversation
    limit = refused_limit(lambda: service.create_conversation(ALICE, None, dense_prompt(4000)))
    # When a conversation about a call is created with a prompt at that limit, Then it is refused with a lower limit
    call_limit = refused_limit(lambda: service.create_conversation(ALICE, None, dense_prompt(limit), CALL))
    assert call_limit == limit - POLICY.call_context_tokens
    # And a prompt at the lower limit is accepted
    created = service.create_conversation(ALICE, None, dense_prompt(call_limit), CALL)
    assert created["call"] == CALL


def test_a_prompt_change_beyond_the_limit_is_refused_and_changes_nothing(service):
    # Given an ordinary conversation and one about a call
    limit = refused_limit(lambda: service.create_conversation(ALICE, None, dense_prompt(4000)))
    plain = service.create_conversation(ALICE, "Plain", "Be brief.")
    about_call = service.create_conversation(ALICE, "Call", "Be brief.", CALL)
    call_limit = limit - POLICY.call_context_tokens
    # When their prompts are changed to one token over their limits, Then both are refused and keep their prompts
    for conversation, too_long in ((plain, limit + 1), (about_call, call_limit + 1)):
        change = {"title": "Renamed", "system_prompt": dense_prompt(too_long)}
        with pytest.raises(SystemPromptTooLongError, match="tokens"):
            service.update_conversation(ALICE, conversation["id"], change)
        assert service.get_conversation(ALICE, conversation["id"]) == conversation
    # When they are changed to prompts at their limits, Then the changes are stored
    for conversation, at_limit in ((plain, limit), (about_call, call_limit)):
        change = {"title": "Renamed", "system_prompt": dense_prompt(at_limit)}
        updated = service.update_conversation(ALICE, conversation["id"], change)
        assert updated["system_prompt"] == dense_prompt(at_limit)
