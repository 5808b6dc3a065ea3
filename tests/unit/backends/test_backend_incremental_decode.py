"""Incremental decoding: the text of every prefix of the tokens, from a bounded window of tokens per step."""

from __future__ import annotations

from collections.abc import Sequence

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from local.backends.hf_causal import HuggingFaceCausalBackend, IncrementalDecoder

TEXT = "Grüße aus Köln! 東京の天気は晴れです。 Naïve café — 😀👍🏽 the end. " * 8


class CountingDecode:
    """Wraps a decode function and records how many tokens each call decoded."""

    def __init__(self, decode):
        self.decode = decode
        self.sizes: list[int] = []

    def __call__(self, token_ids: Sequence[int]) -> str:
        self.sizes.append(len(token_ids))
        return self.decode(list(token_ids))


def feed(decoder: IncrementalDecoder, token_ids: list[int]) -> list[str]:
    return [decoder.add(token) for token in token_ids]


def test_byte_level_text_equals_a_full_decode_at_every_step(causal_backend: HuggingFaceCausalBackend):
    # Given the smoke model's byte-level tokenizer and a long text with multi-byte characters
    tokenizer = causal_backend.tokenizer
    token_ids = tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    counting = CountingDecode(lambda ids: tokenizer.decode(ids, skip_special_tokens=True))
    # When it is fed one token at a time
    texts = feed(IncrementalDecoder(counting), token_ids)
    # Then after every token the text is what decoding all tokens so far gives
    assert texts == [tokenizer.decode(token_ids[: n + 1], skip_special_tokens=True) for n in range(len(token_ids))]
    # And no decode call saw more than a few tokens (a cut emoji plus its window), however long the text grew
    assert len(token_ids) > 300
    assert max(counting.sizes) <= 9


def test_a_tokenizer_that_drops_the_leading_space_keeps_every_space():
    # Given a SentencePiece-style tokenizer ("▁" marks spaces; decoding drops the very first one)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.train_from_iterator([TEXT], trainers.BpeTrainer(vocab_size=120, show_progress=False))
    token_ids = tokenizer.encode(TEXT.strip()).ids

    # When it is fed one token at a time
    texts = feed(IncrementalDecoder(tokenizer.decode), token_ids)

    # Then every word keeps its space, as a full decode has it
    assert texts == [tokenizer.decode(token_ids[: n + 1]) for n in range(len(token_ids))]
    assert texts[-1] == TEXT.strip()


def test_a_token_that_changes_how_the_one_before_reads_is_taken_into_account():
    # Given a tokenizer that cleans up " n't" into "n't" (as clean_up_tokenization_spaces does)
    vocabulary = ["do", " n", "'t", " go", " now"]

    def decode(token_ids: Sequence[int]) -> str:
        return "".join(vocabulary[token] for token in token_ids).replace(" n't", "n't")

    token_ids = [0, 1, 2, 3, 4]
    # When fed one token at a time
    texts = feed(IncrementalDecoder(decode), token_ids)
    # Then the text always equals a full decode
    assert texts == [decode(token_ids[: n + 1]) for n in range(len(token_ids))]
    assert texts[-1] == "don't go now"
