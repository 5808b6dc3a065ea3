"""The streamed send: the buffered send's semantics, with the answer's text yielded as it arrives."""

import pytest
from chatbot.errors import NotFoundError
from chatbot.inference import ModelInvocationError, ModelUnavailableError

ALICE, BOB = "alice-sub", "bob-sub"


def _messages(service, conversation_id):
    return service.list_messages(ALICE, conversation_id, 50, None, newest_first=False)["items"]


def test_pieces_then_the_stored_exchange(service):
    conversation_id = service.create_conversation(ALICE, None, None)["id"]
    # When Alice streams a message
    *pieces, exchange = service.stream_message(ALICE, conversation_id, "Why two charges?")
    # Then the pieces join to the stored answer, and the last item is the buffered route's exchange
    assert "".join(pieces) == "answer to: Why two charges?" and len(pieces) > 1
    assert exchange["assistant_message"]["content"] == "".join(pieces)
    assert [(m["seq"], m["role"], m.get("status")) for m in _messages(service, conversation_id)] == [
        (1, "user", "answered"),
        (2, "assistant", None),
    ]


def test_the_question_is_stored_before_the_model_answers(service):
    conversation_id = service.create_conversation(ALICE, None, None)["id"]
    stream = service.stream_message(ALICE, conversation_id, "Hello?")
    # When the first piece has arrived
    next(stream)
    # Then the question is stored, pending, and no answer is stored yet
    assert [(m["role"], m["status"]) for m in _messages(service, conversation_id)] == [("user", "pending")]
    stream.close()


def test_a_model_error_mid_stream_leaves_the_message_unanswered_and_retry_answers_it(service, inference):
    conversation_id = service.create_conversation(ALICE, None, None)["id"]
    # Given the model fails after two pieces
    inference.stream_failures_after[2] = ModelInvocationError("stream broke")
    stream = service.stream_message(ALICE, conversation_id, "Hello there?")
    assert [next(stream), next(stream)] == ["answer", " to:"]
    # When the failure arrives
    with pytest.raises(ModelInvocationError):
        next(stream)
    # Then the partial text is not stored and the question is unanswered
    assert [(m["role"], m["status"]) for m in _messages(service, conversation_id)] == [("user", "unanswered")]
    # And messages/retry answers it
    exchange = service.retry_last_message(ALICE, conversation_id)
    assert exchange["assistant_message"]["content"] == "answer to: Hello there?"


def test_a_client_that_goes_away_leaves_the_message_unanswered(service):
    conversation_id = service.create_conversation(ALICE, None, None)["id"]
    stream = service.stream_message(ALICE, conversation_id, "Long answer please")
    next(stream)
    # When the consumer stops reading mid-answer
    stream.close()
    # Then nothing partial is stored and the question waits for a retry
    assert [(m["role"], m["status"]) for m in _messages(service, conversation_id)] == [("user", "unanswered")]
    assert service.retry_last_message(ALICE, conversation_id)["user_message"]["status"] == "answered"


def test_a_refusal_before_any_text_raises_on_the_first_read(service, inference):
    conversation_id = service.create_conversation(ALICE, None, None)["id"]
    inference.failures.append(ModelUnavailableError("no capacity", 60))
    # When the model refuses before its first piece, Then the first read raises (an ordinary HTTP error)
    with pytest.raises(ModelUnavailableError):
        next(service.stream_message(ALICE, conversation_id, "Hi"))
    assert [m["status"] for m in _messages(service, conversation_id)] == ["unanswered"]


def test_an_idempotent_resend_of_a_finished_exchange_is_one_piece_then_the_exchange(service, inference):
    conversation_id = service.create_conversation(ALICE, None, None)["id"]
    first = list(service.stream_message(ALICE, conversation_id, "Hi", idempotency_key="k-1"))[-1]
    # When the same request is resent with the same key
    resent = list(service.stream_message(ALICE, conversation_id, "Hi", idempotency_key="k-1"))
    # Then the stored answer comes back as one piece plus the same exchange, without asking the model again
    assert resent == [first["assistant_message"]["content"], first]
    assert len(inference.chat_calls) == 1


def test_streamed_and_buffered_sends_share_one_turn_order(service):
    conversation_id = service.create_conversation(ALICE, None, None)["id"]
    # Given a streamed send in progress (its question stored)
    stream = service.stream_message(ALICE, conversation_id, "first")
    next(stream)
    # When a buffered send arrives meanwhile, and then the stream finishes
    buffered = service.send_message(ALICE, conversation_id, "second")
    streamed = list(stream)[-1]
    # Then each question has its own turn and each answer follows its question
    assert (streamed["user_message"]["seq"], streamed["assistant_message"]["seq"]) == (1, 2)
    assert (buffered["user_message"]["seq"], buffered["assistant_message"]["seq"]) == (3, 4)


def test_someone_elses_conversation_is_not_found_before_any_text(service):
    conversation_id = service.create_conversation(ALICE, None, None)["id"]
    with pytest.raises(NotFoundError):
        next(service.stream_message(BOB, conversation_id, "hi"))
