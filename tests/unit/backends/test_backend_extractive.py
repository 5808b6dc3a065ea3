"""The weight-free extractive dialogue summarizer and the summarizer payload contract."""

from __future__ import annotations

from typing import Any

import pytest
from chatbot.tokens import estimate_tokens

from local.backends.base import PayloadError
from local.backends.extractive import ExtractiveSummarizerBackend, parse_dialogue, summarize_dialogue
from local.backends.summary_contract import parse_summary_request

SUPPORT_CALL = """\
Agent: Thank you for calling Northwind Broadband, my name is Priya. How can I help you today?
Customer: Hi Priya. My internet keeps dropping every evening since last Monday, usually around 7 pm.
Agent: I'm sorry to hear that. Can I have your account number, please?
Customer: Sure, it's 4471-2290.
Agent: Thank you. Let me check the line.
Agent: I can see your router is reporting a lot of signal errors on the line.
Customer: I work from home, so this is a real problem for my video calls.
Agent: I understand. I've reset the line profile on our side and I'm booking a technician visit for Thursday
between 9 and 12 to replace the faulty outdoor connector.
Customer: Thursday morning works for me.
Agent: Great. I've also applied a credit of 15 dollars to your next bill for the disruption.
Customer: Okay, thanks, that's helpful.
Agent: Is there anything else I can help you with?
Customer: No, that's all. Thanks for your help.
Agent: You're welcome. Have a nice evening!
"""

CLINIC_VISIT = """\
Doctor: Good morning, Mr Jones. Please have a seat.
Patient: Good morning, doctor.
Doctor: What brings you in today?
Patient: I've had a sharp pain in my lower back for about three weeks, and it gets worse when I sit at my desk.
Doctor: Does the pain go down your legs?
Patient: No, it stays in the lower back.
Doctor: Okay. From the examination it looks like a muscle strain rather than a disc problem.
Doctor: I recommend ibuprofen 400 mg three times a day with food for one week, and physiotherapy twice a week.
Patient: Alright, that sounds good.
Doctor: If it is not better in two weeks, book another appointment and we will order an MRI.
Patient: Thank you, doctor. Goodbye.
"""


@pytest.fixture
def summarizer() -> ExtractiveSummarizerBackend:
    return ExtractiveSummarizerBackend(context_tokens=1024)


def summarize(backend: ExtractiveSummarizerBackend, payload: dict[str, Any]) -> list[str]:
    [body] = backend.run_batch([backend.prepare(payload)], [None])
    return [item["summary_text"] for item in body]


def test_support_call_summary_has_the_problem_and_the_resolution(summarizer: ExtractiveSummarizerBackend):
    # Given a realistic support call
    # When it is summarized with the default budget
    [summary] = summarize(summarizer, {"inputs": SUPPORT_CALL})
    # Then the summary states the customer's problem and what the agent did about it
    assert "Customer: My internet keeps dropping every evening since last Monday" in summary
    assert "technician visit for Thursday" in summary
    assert "credit of 15 dollars" in summary
    # And leaves out greetings and pleasantries
    for pleasantry in ("Thank you for calling", "How can I help", "Have a nice evening", "anything else", "Hi Priya"):
        assert pleasantry not in summary
    # And it is much shorter than the call
    assert estimate_tokens(summary) < estimate_tokens(SUPPORT_CALL) / 2


def test_summary_keeps_speakers_and_original_order(summarizer: ExtractiveSummarizerBackend):
    # Given a clinic visit
    [summary] = summarize(summarizer, {"inputs": CLINIC_VISIT})
    lines = summary.splitlines()
    # Then every line is "Speaker: text" with a speaker of the dialogue, and lines follow the dialogue's order
    speakers = {speaker for speaker, _ in parse_dialogue(CLINIC_VISIT)}
    assert all(line.split(":", 1)[0] in speakers for line in lines)
    positions = [CLINIC_VISIT.index(line.split(": ", 1)[1].split(". ")[0]) for line in lines]
    assert positions == sorted(positions)
    # And it keeps the complaint and the treatment plan
    assert "sharp pain in my lower back" in summary
    assert "ibuprofen 400 mg" in summary
    assert "Good morning" not in summary


@pytest.mark.parametrize("budget", [20, 40, 80])
def test_summary_respects_the_length_budget(summarizer: ExtractiveSummarizerBackend, budget: int):
    # Given a max_length in tokens
    [summary] = summarize(summarizer, {"inputs": SUPPORT_CALL, "parameters": {"max_length": budget}})
    # Then the summary fits it and still says something
    assert 0 < estimate_tokens(summary) <= budget


def test_a_bigger_budget_keeps_more(summarizer: ExtractiveSummarizerBackend):
    # Given the same call summarized with a small and a large budget
    [short] = summarize(summarizer, {"inputs": SUPPORT_CALL, "parameters": {"max_length": 40}})
    [long] = summarize(summarizer, {"inputs": SUPPORT_CALL, "parameters": {"max_length": 120}})
    # Then the larger summary has more lines
    assert len(long.splitlines()) > len(short.splitlines())


def test_a_list_of_inputs_gets_one_summary_each_in_order(summarizer: ExtractiveSummarizerBackend):
    # Given two dialogues in one request and one more request in the same batch
    first = summarizer.prepare({"inputs": [CLINIC_VISIT, SUPPORT_CALL]})
    second = summarizer.prepare({"inputs": SUPPORT_CALL})
    # When the batch is served
    first_body, second_body = summarizer.run_batch([first, second], [None, None])
    # Then each summary belongs to its own input, in order
    assert len(first_body) == 2 and len(second_body) == 1
    assert "Doctor:" in first_body[0]["summary_text"] and "Customer:" in first_body[1]["summary_text"]
    assert first_body[1] == second_body[0]


def test_prose_without_speakers_is_summarized_as_sentences():
    # Given meeting notes without speaker names
    notes = (
        "The team met on Tuesday to review the launch. Lunch was served. "
        "We decided to move the launch to 14 March because the payment provider needs two more weeks. "
        "Everyone enjoyed the coffee. Anna will update the customers by Friday."
    )
    # When summarized within 60 tokens
    summary = summarize_dialogue(notes, budget_tokens=60)
    # Then the decision is kept and the small talk is not
    assert "move the launch to 14 March" in summary
    assert "coffee" not in summary and "Lunch" not in summary


def test_input_over_the_context_is_refused_not_truncated(summarizer: ExtractiveSummarizerBackend):
    # Given a list whose second input is longer than the component reads
    long_text = "Customer: " + "my order has not arrived yet " * 200
    # When it is prepared, then it is refused, naming the input and both numbers
    with pytest.raises(PayloadError) as caught:
        summarizer.prepare({"inputs": ["Agent: hello there, how are you", long_text]})
    message = str(caught.value)
    assert f"inputs[1]: input is {estimate_tokens(long_text)} tokens; the model reads at most 1024" in message
    assert "too long" in message


def test_streamed_request_gets_the_json_as_one_part(summarizer: ExtractiveSummarizerBackend):
    # Given a streamed summarizer request
    parts: list[bytes] = []
    [result] = summarizer.run_batch([summarizer.prepare({"inputs": CLINIC_VISIT})], [parts.append])
    # Then the sink got the whole JSON response once
    assert result is None and len(parts) == 1 and parts[0].startswith(b'[{"summary_text": ')


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("text", "must be a JSON object"),
        ({"text": "x"}, "unsupported request field(s) ['text']"),
        ({"parameters": {}}, "missing `inputs`"),
        ({"inputs": []}, "`inputs` is an empty list"),
        ({"inputs": ["ok", 3]}, "`inputs[1]` must be a string"),
        ({"inputs": " "}, "`inputs` is empty"),
        ({"inputs": "x", "parameters": "max"}, "`parameters` must be an object"),
        ({"inputs": "x", "parameters": {"truncation": True}}, "never truncates"),
        ({"inputs": "x", "parameters": {"beams": 2}}, "unsupported parameter(s) ['beams']"),
        ({"inputs": "x", "parameters": {"max_length": 0}}, "`parameters.max_length` must be an integer >= 1"),
        ({"inputs": "x", "parameters": {"num_beams": 2.5}}, "`parameters.num_beams` must be an integer >= 1"),
        ({"inputs": "x", "parameters": {"temperature": 0}}, "`parameters.temperature` must be a number > 0"),
        ({"inputs": "x", "parameters": {"length_penalty": "1"}}, "`parameters.length_penalty` must be a number"),
        ({"inputs": "x", "parameters": {"do_sample": 1}}, "`parameters.do_sample` must be true or false"),
        ({"inputs": "x", "parameters": {"top_p": 1.5}}, "`parameters.top_p` must be in (0, 1]"),
        ({"inputs": "x", "parameters": {"min_length": 50, "max_length": 10}}, "`parameters.min_length` (50) exceeds"),
    ],
)
def test_bad_summary_requests_get_a_precise_error(payload: Any, message: str):
    # Given a request that breaks the summarizer contract, when parsed, then the error says what is wrong
    with pytest.raises(PayloadError) as caught:
        parse_summary_request(payload)
    assert message in str(caught.value)
