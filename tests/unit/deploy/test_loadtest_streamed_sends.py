"""The load test reads each streamed send to its end and gives its ledger entry the status the buffered send would
have answered, so the reconciliation's rules (201 must be stored once and answered, ...) apply unchanged."""

from __future__ import annotations

import json

from bench.reconcile import sse_events, streamed_outcome


def stream(*events: tuple[str, dict]) -> list[str]:
    """The lines of an SSE body as requests' iter_lines gives them (blank line after each event)."""
    lines = []
    for event, data in events:
        lines += [f"event: {event}", f"data: {json.dumps(data)}", ""]
    return lines


DELTAS = (("delta", {"text": "Let me "}), ("delta", {"text": "check."}))
DONE = ("done", {"conversation_id": "c", "user_message": {"seq": 1}, "assistant_message": {"seq": 2}})


def outcome(lines: list[str]) -> tuple[tuple[int, str | None], int]:
    first_tokens = []
    result = streamed_outcome(sse_events(lines), lambda: first_tokens.append(1))
    return result, len(first_tokens)


def test_a_stream_that_ends_with_done_is_a_201_with_one_first_token_entry():
    # Given / When an answer streamed whole
    result, first_tokens = outcome(stream(*DELTAS, DONE))
    # Then it counts as a stored exchange, and its first delta was timed once
    assert result == (201, None)
    assert first_tokens == 1


def test_an_error_event_gives_the_status_the_buffered_send_would_have_answered():
    # Given / When a stream the model broke off
    result, first_tokens = outcome(stream(DELTAS[0], ("error", {"error": {"code": 502, "message": "Model failed."}})))
    # Then the entry says 502 (stored, unanswered: the reconciliation checks that), with the event as the failure
    assert result == (502, "event: error 502: Model failed.")
    assert first_tokens == 1


def test_a_stream_cut_before_done_or_error_is_a_dropped_connection():
    # Given / When a stream that ended after its first piece, with neither done nor error
    result, first_tokens = outcome(stream(DELTAS[0]))
    # Then it is recorded as no answer (status 0), not as a 201
    assert result == (0, "the stream ended without done or error")
    assert first_tokens == 1


def test_events_are_read_whole_whatever_their_data():
    # Given an event whose data holds an SSE-looking line inside its JSON text
    lines = stream(("delta", {"text": "event: done\ndata: {}"}), DONE)
    # When / Then each event comes out once, with its data decoded
    assert list(sse_events(lines)) == [("delta", {"text": "event: done\ndata: {}"}), DONE]
