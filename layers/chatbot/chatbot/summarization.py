"""Map-reduce summarization of speaker turns within a summarizer's input limit, never by truncation.

Turns are packed into chunks of "Speaker: text" lines on turn boundaries (a turn too long on its own is
split on sentence boundaries, then words, then characters), each chunk is summarized, and the chunk
summaries are packed and summarized again until one summary remains.
"""

import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from chatbot.inference import InputTooLongError
from chatbot.tokens import estimate_tokens, fits, prefix_end

# Room for the special tokens the model's tokenizer adds around every input (BOS/EOS and friends).
SPECIAL_TOKENS_RESERVE = 8
# Texts per summarize call: one endpoint request should stay well inside its timeout.
DEFAULT_BATCH_SIZE = 8
# Each round must shrink the text; this bounds the rounds even for a summarizer that barely does.
MAX_ROUNDS = 12
# A speaker label is repeated on every piece of a split turn, so it must leave most of a chunk for text.
_MAX_SPEAKER_SHARE = 4

# BART reads at most 1,024 tokens: longer inputs are chunked, never truncated.
SUMMARIZER_MAX_INPUT_TOKENS = 1024
# What a plan assumes one summary costs when it is summarized again: the summarizer's length cap (the transcript
# pipeline asks for at most 160 tokens; BART's own generation default is shorter).
PLANNED_SUMMARY_TOKENS = 160

# Where text may be split between sentences, and what the newline joining two pieces costs (call_context too).
SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
NEWLINE_TOKENS = estimate_tokens("\n")


@dataclass(frozen=True, slots=True)
class Turn:
    speaker: str
    text: str
    start_s: float | None = None  # offsets into the recording, where the format has them
    end_s: float | None = None


@dataclass(frozen=True, slots=True)
class SummaryResult:
    summary: str
    chunk_count: int
    rounds: int


@dataclass(frozen=True, slots=True)
class SummaryPlan:
    """The work `summarize_turns` will do, known before any summarizer call."""

    chunk_count: int
    calls: int  # summarizer calls (one per batch of up to `batch_size` texts), over every round
    rounds: int


class SummarizationError(Exception):
    """The texts could not be summarized into one (bad summarizer output or no progress between rounds)."""


Summarize = Callable[[list[str]], list[str]]


def chunk_turns(turns: Iterable[Turn], max_tokens: int) -> list[str]:
    """Pack turns into chunks of "Speaker: text" lines, each estimated at most `max_tokens` tokens."""
    if max_tokens < 8:
        raise ValueError(f"max_tokens must be at least 8, got {max_tokens}")
    lines = (line for turn in turns for line in _turn_lines(turn, max_tokens))
    return _pack(lines, max_tokens)


def plan_summary(
    turns: Sequence[Turn],
    *,
    max_input_tokens: int = SUMMARIZER_MAX_INPUT_TOKENS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    summary_tokens: int = PLANNED_SUMMARY_TOKENS,
) -> SummaryPlan:
    """The summarizer calls `summarize_turns` makes for `turns`, from token estimates only (no model call).

    The first round is exact: the same chunks. Later rounds pack the summaries the way the real run does, each
    assumed `summary_tokens` long, so the plan is an upper bound while the summarizer keeps within that cap.
    Raises ValueError when there is nothing to summarize."""
    budget = max_input_tokens - SPECIAL_TOKENS_RESERVE
    texts = len(chunk_turns(turns, budget))
    if not texts:
        raise ValueError("there are no turns with text to summarize")
    chunk_count, calls, rounds = texts, math.ceil(texts / batch_size), 1
    summary_tokens = min(summary_tokens, budget)
    while texts > 1 and rounds < MAX_ROUNDS:
        reduced = len(_group_sizes([summary_tokens] * texts, budget, NEWLINE_TOKENS))
        if reduced >= texts:
            raise ValueError(f"summaries of {summary_tokens} tokens cannot be packed within {budget} tokens")
        texts, calls, rounds = reduced, calls + math.ceil(reduced / batch_size), rounds + 1
    return SummaryPlan(chunk_count=chunk_count, calls=calls, rounds=rounds)


def summarize_turns(
    turns: Sequence[Turn],
    summarize: Summarize,
    *,
    max_input_tokens: int = SUMMARIZER_MAX_INPUT_TOKENS,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> SummaryResult:
    """Summarize `turns` map-reduce style with `summarize` (one summary per text, in order).

    Raises ValueError when there is nothing to summarize, SummarizationError when the summaries stop
    getting shorter, and whatever `summarize` raises other than InputTooLongError (which splits the text).
    """
    budget = max_input_tokens - SPECIAL_TOKENS_RESERVE
    chunks = chunk_turns(turns, budget)
    if not chunks:
        raise ValueError("there are no turns with text to summarize")
    summaries = _summarize_all(chunks, summarize, batch_size)
    chunk_count = len(summaries)
    rounds = 1
    while len(summaries) > 1:
        if rounds >= MAX_ROUNDS:
            raise SummarizationError(f"{len(summaries)} summaries still left after {rounds} rounds")
        packed = _pack((line for summary in summaries for line in _text_lines(summary, budget)), budget)
        reduced = _summarize_all(packed, summarize, batch_size)
        if len(reduced) >= len(summaries) and _total_tokens(reduced) >= _total_tokens(summaries):
            raise SummarizationError("the summaries are not getting shorter; the summarizer makes no progress")
        summaries = reduced
        rounds += 1
    return SummaryResult(summary=summaries[0], chunk_count=chunk_count, rounds=rounds)


def _turn_lines(turn: Turn, max_tokens: int) -> Iterator[str]:
    """One "Speaker: text" line per turn, or several when the turn alone exceeds `max_tokens`."""
    text = " ".join(turn.text.split())
    if not text:
        return
    speaker = " ".join(turn.speaker.split()) or "Speaker"
    line = f"{speaker}: {text}"
    if fits(line, max_tokens):
        yield line
        return
    prefix = f"{speaker}: "
    if estimate_tokens(prefix) > max_tokens // _MAX_SPEAKER_SHARE:
        prefix = f"{speaker[: prefix_end(speaker, max_tokens // _MAX_SPEAKER_SHARE - 2)]}…: "
    text_budget = max_tokens - estimate_tokens(prefix)
    for piece in _pack(_split_text(text, text_budget), text_budget, separator=" "):
        yield prefix + piece


def _text_lines(text: str, max_tokens: int) -> Iterator[str]:
    """A summary as one line, or as sentence-sized pieces when it alone exceeds `max_tokens`."""
    text = " ".join(text.split())
    if not text:
        return
    if fits(text, max_tokens):
        yield text
    else:
        yield from _split_text(text, max_tokens)


def _split_text(text: str, max_tokens: int) -> Iterator[str]:
    """Split text into pieces within `max_tokens`: on sentence ends, else on spaces, else between characters."""
    for sentence in SENTENCE_END.split(text):
        if fits(sentence, max_tokens):
            yield sentence
            continue
        for word in sentence.split(" "):
            if fits(word, max_tokens):
                yield word
            else:
                yield from _split_characters(word, max_tokens)


def _split_characters(word: str, max_tokens: int) -> Iterator[str]:
    start = 0
    while start < len(word):
        end = prefix_end(word, max_tokens, start)
        yield word[start:end]
        start = end


def _pack(pieces: Iterable[str], max_tokens: int, separator: str = "\n") -> list[str]:
    """Greedily join pieces (each within `max_tokens`) into as few texts within `max_tokens` as possible."""
    pieces = list(pieces)
    separator_tokens = NEWLINE_TOKENS if separator == "\n" else 0
    packed: list[str] = []
    start = 0
    for size in _group_sizes([estimate_tokens(piece) for piece in pieces], max_tokens, separator_tokens):
        packed.append(separator.join(pieces[start : start + size]))
        start += size
    return packed


def _group_sizes(token_counts: list[int], max_tokens: int, separator_tokens: int) -> list[int]:
    """How many consecutive pieces each packed text takes, packing greedily within `max_tokens` (shared by the
    real packing and the plan, so the two cannot disagree)."""
    sizes: list[int] = []
    current = current_tokens = 0
    for tokens in token_counts:
        if current and current_tokens + separator_tokens + tokens > max_tokens:
            sizes.append(current)
            current = current_tokens = 0
        current_tokens += tokens + (separator_tokens if current else 0)
        current += 1
    if current:
        sizes.append(current)
    return sizes


def _summarize_all(texts: list[str], summarize: Summarize, batch_size: int) -> list[str]:
    summaries: list[str] = []
    for start in range(0, len(texts), batch_size):
        summaries.extend(_summarize_batch(texts[start : start + batch_size], summarize))
    return summaries


def _summarize_batch(texts: list[str], summarize: Summarize) -> list[str]:
    """Summarize a batch; when the summarizer finds a text too long, split that text and summarize the halves."""
    try:
        summaries = summarize(texts)
    except InputTooLongError:
        if len(texts) > 1:
            return [summary for text in texts for summary in _summarize_batch([text], summarize)]
        halves = _halves(texts[0])
        if halves is None:
            raise
        return [summary for half in halves for summary in _summarize_batch([half], summarize)]
    if len(summaries) != len(texts):
        raise SummarizationError(f"the summarizer returned {len(summaries)} summaries for {len(texts)} texts")
    return [str(summary) for summary in summaries]


def _halves(text: str) -> tuple[str, str] | None:
    """Split text in two near its middle on a line, sentence or word boundary (else between characters)."""
    for pattern in (r"\n", r"(?<=[.!?…])\s+", r"\s+"):
        boundaries = [match for match in re.finditer(pattern, text) if 0 < match.start() < len(text)]
        if boundaries:
            middle = min(boundaries, key=lambda match: abs(match.start() - len(text) // 2))
            return text[: middle.start()], text[middle.end() :]
    if len(text) < 2:
        return None
    return text[: len(text) // 2], text[len(text) // 2 :]


def _total_tokens(texts: list[str]) -> int:
    return sum(estimate_tokens(text) for text in texts)
