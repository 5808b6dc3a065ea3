"""The fake API's contract check catches what the real API would never send or accept."""

from openapi_contract import OpenApiContract

CONTRACT = OpenApiContract()
MESSAGE = {"seq": 1, "role": "user", "content": "hi", "created_at": "2026-11-25T12:00:00.000Z", "status": "answered"}
ANSWER = {"seq": 2, "role": "assistant", "content": "hello", "created_at": "2026-11-25T12:00:01.000Z", "reply_to": 1}


def test_an_exchange_as_the_api_sends_it_passes():
    exchange = {"conversation_id": "c1", "user_message": MESSAGE, "assistant_message": ANSWER}
    assert CONTRACT.problems("POST", "/v1/conversations/c1/messages", {"content": "hi"}, 201, exchange) == []


def test_a_missing_field_a_wrong_type_and_an_unknown_route_are_caught():
    # A message without its sequence number, a request with a number as content, a route the API lacks
    exchange = {"conversation_id": "c1", "user_message": {**MESSAGE, "seq": None}, "assistant_message": ANSWER}
    problems = CONTRACT.problems("POST", "/v1/conversations/c1/messages", {"content": 5}, 201, exchange)
    assert any("user_message/seq" in problem for problem in problems)
    assert any("request: content" in problem for problem in problems)
    assert CONTRACT.problems("POST", "/v1/conversations/c1/archive", None, 200, {}) != []
