"""The conversations handler refuses a system prompt too long for the chat model's context with a 422 that states
the limit in tokens, on create and on PATCH; a prompt at the limit is accepted and a send then works."""

import re

from api_event_helpers import call, model_answer, sample_event

ANSWER = {"choices": [{"message": {"role": "assistant", "content": "Your plan is Basic."}}]}
DENSE_PROMPT = "7" * 4000  # a digit is a token: 4,000 tokens, more than the 3,584-token prompt budget


def stated_limit(body: dict) -> int:
    return int(re.search(r"the limit is (\d+) tokens", body["message"]).group(1))


def test_a_prompt_too_long_for_the_model_is_422_on_create_and_patch(handler_module, endpoint, lambda_context):
    # When a conversation is created with a prompt longer than the model's prompt budget
    create = sample_event("create-conversation", body={"title": "Billing", "system_prompt": DENSE_PROMPT})
    status, headers, body = call(handler_module, create, lambda_context)
    # Then it is refused as unprocessable, with the limit in tokens
    assert (status, headers["Content-Type"]) == (422, "application/json")
    limit = stated_limit(body)
    # And nothing was created
    _, _, listed = call(handler_module, sample_event("list-conversations"), lambda_context)
    assert listed["items"] == []
    # When a conversation is created with a prompt at the limit, Then it is created
    at_limit = sample_event("create-conversation", body={"title": "Billing", "system_prompt": "7" * limit})
    status, _, conversation = call(handler_module, at_limit, lambda_context)
    assert status == 201
    # And a send is answered
    endpoint.add_response("invoke_endpoint", model_answer(ANSWER))
    send = sample_event("send-message", conversation["id"], body={"content": "Which plan am I on?"})
    status, _, exchange = call(handler_module, send, lambda_context)
    assert (status, exchange["assistant_message"]["content"]) == (201, "Your plan is Basic.")
    # When its prompt is changed to one token over the limit, Then that is refused with the same limit
    rename = sample_event(
        "rename-conversation", conversation["id"], body={"title": "Billing", "system_prompt": "7" * (limit + 1)}
    )
    status, _, body = call(handler_module, rename, lambda_context)
    assert (status, stated_limit(body)) == (422, limit)
    # And the conversation keeps its prompt
    _, _, stored = call(handler_module, sample_event("get-conversation", conversation["id"]), lambda_context)
    assert stored["system_prompt"] == "7" * limit
    endpoint.assert_no_pending_responses()
