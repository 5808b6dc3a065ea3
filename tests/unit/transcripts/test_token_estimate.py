"""estimate_tokens: a conservative count without tokenizer files."""

from chatbot.tokens import estimate_tokens, prefix_end
from hypothesis import given
from hypothesis import strategies as st


def test_empty_text_has_no_tokens():
    # Given / When / Then
    assert estimate_tokens("") == 0


def test_english_sentence_costs_at_least_one_token_per_word_and_punctuation_mark():
    # Given a sentence whose real BPE count is one token per word plus the punctuation
    sentence = "Thanks for calling, how can I help you today?"

    # When
    tokens = estimate_tokens(sentence)

    # Then it is never below that count, nor absurdly above it
    words_and_marks = len(sentence.split()) + 2
    assert words_and_marks <= tokens <= 3 * words_and_marks


def test_digits_count_one_token_each_as_llama_splits_them():
    # Given an account number
    number = "4111111111111111"

    # When / Then
    assert estimate_tokens(number) == len(number)


def test_non_ascii_characters_cost_up_to_their_utf8_bytes():
    # Given characters that may fall back to byte tokens
    text = "東京"

    # When / Then
    assert estimate_tokens(text) == len(text.encode("utf-8"))


def test_capitals_cost_more_than_the_same_word_in_lower_case():
    # Given / When / Then
    assert estimate_tokens("ACCOUNTNUMBER") > estimate_tokens("accountnumber")


@given(st.text(max_size=200), st.text(max_size=200))
def test_estimate_of_lines_joined_by_a_newline_is_the_sum_plus_the_newline(first, second):
    # Given two arbitrary lines (chunking relies on this additivity)
    first, second = first.replace("\n", " "), second.replace("\n", " ")

    # When
    joined = estimate_tokens(first + "\n" + second)

    # Then
    assert joined <= estimate_tokens(first) + estimate_tokens(second) + estimate_tokens("\n")


@given(st.text(max_size=300))
def test_estimate_is_never_below_the_number_of_non_space_runs(text):
    # Given arbitrary text, every whitespace-separated run is at least one token
    # When / Then
    assert estimate_tokens(text) >= len(text.split())


@given(st.text(max_size=400), st.integers(1, 60), st.data())
def test_prefix_end_cuts_the_longest_prefix_within_the_budget(text, max_tokens, data):
    # Given arbitrary text and a start inside it
    start = data.draw(st.integers(0, max(0, len(text) - 1)))

    # When
    end = prefix_end(text, max_tokens, start)

    # Then the prefix fits (or is the one character that must be taken), and one more character would not
    assert start < end <= len(text) or (text == "" and end == 0)
    assert estimate_tokens(text[start:end]) <= max_tokens or end == start + 1
    if end < len(text) and estimate_tokens(text[start:end]) < max_tokens - 4:
        assert estimate_tokens(text[start : end + 1]) > max_tokens or text[end - 1 : end + 1].isspace()


def test_prefix_end_is_linear_in_the_prefix_not_the_text():
    # Given a 5 MB unbroken string, cut into pieces from ever later starts
    text = "a:" * 2_500_000

    # When
    ends = [prefix_end(text, 100, start) for start in range(0, len(text), len(text) // 50)]

    # Then each cut is a short prefix (it never scanned to the end)
    assert all(0 < end - start <= 200 for end, start in zip(ends, range(0, len(text), len(text) // 50), strict=True))
