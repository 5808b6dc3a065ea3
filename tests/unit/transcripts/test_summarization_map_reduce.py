"""Chunking on turn boundaries and map-reduce summarization (never truncation)."""

import pytest
from chatbot.inference import InputTooLongError, ModelUnavailableError
from chatbot.summarization import SummarizationError, Turn, chunk_turns, summarize_turns
from chatbot.tokens import estimate_tokens


def first_sentence_summarizer(calls: list[list[str]]):
    """A stand-in summarizer: the first line of each text, cut to 12 words; records every call."""

    def summarize(texts: list[str]) -> list[str]:
        calls.append(list(texts))
        return [" ".join(text.splitlines()[0].split()[:12]) for text in texts]

    return summarize


def long_call(turn_count: int) -> list[Turn]:
    speakers = ("Agent", "Customer")
    return [
        Turn(speakers[index % 2], f"Turn {index}: my router keeps dropping the connection every evening.")
        for index in range(turn_count)
    ]


def test_short_conversation_is_one_chunk_of_speaker_lines():
    # Given
    turns = [Turn("Agent", "Hello, how can I help?"), Turn("Customer", "My bill is wrong.")]

    # When
    chunks = chunk_turns(turns, max_tokens=1000)

    # Then
    assert chunks == ["Agent: Hello, how can I help?\nCustomer: My bill is wrong."]


def test_chunks_break_on_turn_boundaries_and_fit_the_limit():
    # Given
    turns = long_call(200)

    # When
    chunks = chunk_turns(turns, max_tokens=120)

    # Then every chunk fits, no turn is cut, and all turns are there in order
    assert len(chunks) > 1
    assert all(estimate_tokens(chunk) <= 120 for chunk in chunks)
    lines = [line for chunk in chunks for line in chunk.split("\n")]
    assert lines == [f"{turn.speaker}: {turn.text}" for turn in turns]


def test_one_over_long_turn_is_split_on_sentence_boundaries_keeping_its_speaker():
    # Given a monologue of 60 sentences
    sentences = [f"Sentence number {index} explains the billing problem in detail." for index in range(60)]
    turns = [Turn("Customer", " ".join(sentences))]

    # When
    chunks = chunk_turns(turns, max_tokens=100)

    # Then each piece is labelled, fits, ends on a sentence end, and nothing is lost
    assert len(chunks) > 1
    assert all(chunk.startswith("Customer: ") and chunk.endswith(".") for chunk in chunks)
    assert all(estimate_tokens(chunk) <= 100 for chunk in chunks)
    assert " ".join(chunk.removeprefix("Customer: ") for chunk in chunks) == " ".join(sentences)


def test_a_sentence_longer_than_the_limit_is_split_on_words_and_a_giant_word_on_characters():
    # Given one sentence of many words followed by one unbroken 3,000-character token
    giant = "x" * 3000
    text = " ".join(["word"] * 400) + " " + giant
    turns = [Turn("Agent", text)]

    # When
    chunks = chunk_turns(turns, max_tokens=64)

    # Then every piece fits and all characters survive
    assert all(estimate_tokens(chunk) <= 64 for chunk in chunks)
    rejoined = "".join(chunk.removeprefix("Agent: ").replace(" ", "") for chunk in chunks)
    assert rejoined == text.replace(" ", "")


def test_blank_turns_are_skipped_and_whitespace_is_collapsed():
    # Given
    turns = [Turn("Agent", "  \n "), Turn("Customer", "line one\r\nline   two")]

    # When / Then
    assert chunk_turns(turns, max_tokens=100) == ["Customer: line one line two"]


def test_map_reduce_of_ten_thousand_turns_ends_in_one_summary_within_the_limit_each_call():
    # Given a 10,000-turn transcript and a summarizer that records its inputs
    calls: list[list[str]] = []
    turns = long_call(10_000)

    # When
    result = summarize_turns(turns, first_sentence_summarizer(calls), max_input_tokens=1024)

    # Then several rounds ran, every input fitted, and one short summary came out
    assert result.rounds >= 2
    assert result.chunk_count == len(chunk_turns(turns, 1024 - 8))
    assert all(estimate_tokens(text) <= 1024 for call in calls for text in call)
    assert all(len(call) <= 8 for call in calls)
    assert result.summary.startswith("Agent: Turn 0")


def test_every_turn_reaches_the_summarizer_in_the_first_round():
    # Given
    calls: list[list[str]] = []
    turns = long_call(500)

    # When
    result = summarize_turns(turns, first_sentence_summarizer(calls), max_input_tokens=256)

    # Then the first-round inputs hold every turn exactly once, in order
    first_round = [text for call in calls[: -(-result.chunk_count // 8)] for text in call][: result.chunk_count]
    lines = [line for text in first_round for line in text.split("\n")]
    assert lines == [f"{turn.speaker}: {turn.text}" for turn in turns]


def test_a_chunk_the_model_rejects_as_too_long_is_split_and_retried():
    # Given a summarizer whose real limit is stricter than our estimate
    seen: list[str] = []

    def strict_summarizer(texts: list[str]) -> list[str]:
        if any(len(text) > 400 for text in texts):
            raise InputTooLongError("input is 300 tokens; the model reads at most 100")
        seen.extend(texts)
        return [text[:40] for text in texts]

    turns = long_call(40)

    # When
    result = summarize_turns(turns, strict_summarizer, max_input_tokens=1024)

    # Then it still produced one summary, from inputs the model accepted, covering every turn
    assert result.summary
    assert all(len(text) <= 400 for text in seen)
    assert all(any(f"Turn {index}:" in text for text in seen) for index in range(40))


def test_transient_errors_propagate_to_the_caller():
    # Given
    def unavailable(texts: list[str]) -> list[str]:
        raise ModelUnavailableError("throttled", retry_after_s=3)

    # When / Then
    with pytest.raises(ModelUnavailableError):
        summarize_turns(long_call(3), unavailable)


def test_a_summarizer_that_never_shortens_anything_fails_clearly_instead_of_looping():
    # Given a summarizer that returns its input unchanged
    # When / Then
    with pytest.raises(SummarizationError):
        summarize_turns(long_call(2000), lambda texts: list(texts), max_input_tokens=256)


def test_a_summarizer_returning_the_wrong_number_of_summaries_is_an_error():
    # Given / When / Then
    with pytest.raises(SummarizationError):
        summarize_turns(long_call(3), lambda texts: [], max_input_tokens=256)


def test_nothing_to_summarize_is_a_value_error():
    # Given / When / Then
    with pytest.raises(ValueError, match="no turns"):
        summarize_turns([Turn("Agent", "   ")], lambda texts: texts)
