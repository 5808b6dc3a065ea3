"""Call context benchmark: building the context of one question about a 10,000-turn call.

A synthetic call (two speakers, sentences drawn from a 2,000-word vocabulary, times on every turn) and 50
questions of three to six words from the same vocabulary. Each question's context is built from scratch
(the BM25 index included) within half the chat prompt budget of the default settings. Two baselines are
measured on the same call in the same run:
- counting the transcript's tokens once (estimate_tokens of every turn line), which any context that
  respects a token budget must at least do;
- a naive relevance scan: lowercase and split every turn, count the question's words in each, sort.
The figures are the ratios, so they compare across machines; the token figure is the share of the full
transcript's tokens that one question's context uses.

Run: `python -m bench.call_context` (or `make bench`).
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable

from chatbot.call_context import CallTurn, build_call_context
from chatbot.conversations.policy import ChatPolicy
from chatbot.tokens import estimate_tokens

TURNS = 10_000
QUESTIONS = 50
SEED = 15
# The largest share of the default prompt budget a call's context may take (ChatPolicy allows at most a half).
BUDGET = ChatPolicy().chat_prompt_budget_tokens // 2


def synthetic_call(turns: int = TURNS, seed: int = SEED) -> tuple[list[CallTurn], list[str]]:
    """A call of `turns` turns and QUESTIONS questions drawn from the same vocabulary."""
    rng = random.Random(seed)
    syllables = ("ra", "to", "mi", "ken", "lo", "su", "var", "dex", "po", "lin")
    # Zipf-like use of the vocabulary, as in speech: a few words everywhere, most words rare.
    vocabulary = [rng.choice(syllables) + rng.choice(syllables) + rng.choice(syllables) for _ in range(2_000)]
    weights = [1 / rank for rank in range(1, len(vocabulary) + 1)]
    call = []
    clock = 0.0
    for index in range(turns):
        words = rng.choices(vocabulary, weights, k=rng.randint(4, 60))
        text = " ".join(words).capitalize() + "."
        duration = len(words) * 0.4
        call.append(CallTurn(index, ("Agent", "Customer")[index % 2], text, start_s=clock, end_s=clock + duration))
        clock += duration + 0.5
    questions = [" ".join(rng.choices(vocabulary, k=rng.randint(3, 6))) + "?" for _ in range(QUESTIONS)]
    return call, questions


def _seconds(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def _count_tokens(call: list[CallTurn]) -> int:
    return sum(estimate_tokens(f"[turn {turn.index}] {turn.speaker}: {turn.text}") for turn in call)


def _naive_scan(call: list[CallTurn], question: str) -> list[int]:
    words = set(question.lower().rstrip("?").split())
    counts = [(sum(word in words for word in turn.text.lower().split()), turn.index) for turn in call]
    return [index for count, index in sorted(counts, reverse=True) if count]


def main() -> None:
    call, questions = synthetic_call()
    summary = "The customer called about a billing error; the agent corrected the invoice."
    full_tokens = _count_tokens(call)
    build_times, naive_times, used_tokens, quoted = [], [], [], []
    for question in questions:
        naive_times.append(_seconds(lambda question=question: _naive_scan(call, question)))
        started = time.perf_counter()
        context = build_call_context(summary, call, question, max_tokens=BUDGET)
        build_times.append(time.perf_counter() - started)
        used_tokens.append(context.tokens)
        quoted.append(len(context.turns))
    count_times = [_seconds(lambda: _count_tokens(call)) for _ in range(5)]

    def quantiles(values: list[float]) -> tuple[float, float]:
        cuts = statistics.quantiles(values, n=20)
        return statistics.median(values), cuts[18]

    build_p50, build_p95 = quantiles(build_times)
    naive_p50, naive_p95 = quantiles(naive_times)
    count_p50 = statistics.median(count_times)
    print(f"call_context: {TURNS:,} turns ({full_tokens:,} tokens), {QUESTIONS} questions, budget {BUDGET} tokens")
    print(f"  {'':34} {'p50 ms':>9} {'p95 ms':>9} {'p50 vs count':>13} {'p50 vs naive':>13}")
    rows = (
        ("build_call_context (BM25 index)", build_p50, build_p95),
        ("baseline: count tokens once", count_p50, max(count_times)),
        ("baseline: naive word-count scan", naive_p50, naive_p95),
    )
    for label, p50, p95 in rows:
        print(f"  {label:34} {p50 * 1e3:9.1f} {p95 * 1e3:9.1f} {p50 / count_p50:12.2f}x {p50 / naive_p50:12.2f}x")
    print(
        f"  tokens per question: median {statistics.median(used_tokens):,.0f} of {full_tokens:,} "
        f"({statistics.median(used_tokens) / full_tokens:.2%} of the transcript), "
        f"median {statistics.median(quoted):.0f} turns quoted"
    )


if __name__ == "__main__":
    main()
