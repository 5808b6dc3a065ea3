"""What the chat model sees each turn: system prompt + rolling summary + the newest messages in budget.

Pure functions over message dicts (`seq`, `role`, `content`, `status`), so the rules are testable
without DynamoDB. Token counts are chatbot.tokens estimates (over-estimates), plus a per-message
allowance for the chat template's role markup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chatbot.summarization import DEFAULT_BATCH_SIZE, SPECIAL_TOKENS_RESERVE, Turn, chunk_turns
from chatbot.tokens import estimate_tokens

MESSAGE_OVERHEAD_TOKENS = 8  # Llama-2's [INST] ... [/INST] and BOS/EOS around each message
# Room kept for the rolling summary, which is rewritten when messages are folded into it.
SUMMARY_RESERVE_TOKENS = 384
# When messages must be folded, fold down to this share of the budget so the summarizer
# is called once every few turns rather than on every turn.
FOLD_TARGET_SHARE = 0.75
SUMMARY_HEADING = "Summary of the earlier conversation:"
# A system prompt must leave room for MIN_WINDOW_MESSAGES messages of MIN_MESSAGE_TOKENS (about two sentences): a
# question and the exchange before it, the least that lets a follow-up see what it follows up on. Room for longer
# ones cannot be promised anyway (a message may have 8,000 characters), and this much still fits a 1,024-token context.
MIN_MESSAGE_TOKENS = 64
MIN_WINDOW_MESSAGES = 3
# How the summarizer reads the messages it folds, and the rolling summary they are folded into.
FOLD_LABELS = {"user": "User", "assistant": "AI"}
EARLIER_LABEL = "Earlier"


@dataclass(frozen=True)
class ContextPlan:
    window: list[dict[str, Any]]  # messages sent verbatim, oldest first
    fold: list[dict[str, Any]]  # older unsummarized messages to fold into the rolling summary, oldest first

    @property
    def summarized_through(self) -> int | None:
        """The seq the rolling summary covers once all of `fold` is folded (None when nothing is to fold); a turn
        short of time folds a prefix only."""
        return self.fold[-1]["seq"] if self.fold else None


def system_content(system_prompt: str | None, rolling_summary: str | None) -> str | None:
    parts = [
        part for part in (system_prompt, f"{SUMMARY_HEADING} {rolling_summary}" if rolling_summary else None) if part
    ]
    return "\n\n".join(parts) or None


def message_tokens(content: str) -> int:
    return estimate_tokens(content) + MESSAGE_OVERHEAD_TOKENS


def fixed_tokens(system_prompt: str | None, rolling_summary: str | None) -> int:
    """Tokens of everything but the messages, with room for the summary to grow."""
    system = estimate_tokens(system_prompt or "") + MESSAGE_OVERHEAD_TOKENS
    return system + max(estimate_tokens(rolling_summary or ""), SUMMARY_RESERVE_TOKENS)


def max_system_prompt_tokens(budget_tokens: int) -> int:
    """The most tokens a system prompt may have within `budget_tokens` of prompt: what fixed_tokens counts besides
    the prompt (the rolling summary's room) and MIN_WINDOW_MESSAGES short messages must still fit. A longer prompt
    leaves the conversation no memory, and beyond that makes every send a 413."""
    messages = MIN_WINDOW_MESSAGES * (MIN_MESSAGE_TOKENS + MESSAGE_OVERHEAD_TOKENS)
    return budget_tokens - MESSAGE_OVERHEAD_TOKENS - SUMMARY_RESERVE_TOKENS - messages


def _in_window(message: dict[str, Any]) -> bool:
    # Unanswered questions of other turns are left out so user and assistant keep alternating.
    return message["role"] == "assistant" or message.get("status") == "answered"


def _newest_fitting(eligible: Sequence[dict[str, Any]], budget: int, max_messages: int) -> list[dict[str, Any]]:
    window: list[dict[str, Any]] = []
    used = 0
    for message in reversed(eligible):
        cost = message_tokens(message["content"])
        if used + cost > budget or len(window) >= max_messages:
            break
        window.append(message)
        used += cost
    window.reverse()
    while window and window[0]["role"] != "user":  # a chat must open with a user message
        window.pop(0)
    return window


def plan_context(
    history: Sequence[dict[str, Any]],
    *,
    budget_tokens: int,
    max_messages: int,
) -> ContextPlan:
    """Choose the window among `history` (unsummarized messages before this turn, oldest first) within
    `budget_tokens` for messages; whatever is older than the window is folded."""
    eligible = [message for message in history if _in_window(message)]
    window = _newest_fitting(eligible, budget_tokens, max_messages)
    first_kept = window[0]["seq"] if window else None
    overflow = [message for message in history if first_kept is None or message["seq"] < first_kept]
    if not overflow:
        return ContextPlan(window=window, fold=[])
    window = _newest_fitting(
        eligible, int(budget_tokens * FOLD_TARGET_SHARE), max(1, int(max_messages * FOLD_TARGET_SHARE))
    )
    first_kept = window[0]["seq"] if window else None
    fold = [message for message in history if first_kept is None or message["seq"] < first_kept]
    return ContextPlan(window=window, fold=fold)


def chat_messages(
    system_prompt: str | None, rolling_summary: str | None, window: Sequence[dict[str, Any]], question: str
) -> list[dict[str, str]]:
    """The chat payload's messages: system (prompt + summary), the window, then the question."""
    messages = []
    system = system_content(system_prompt, rolling_summary)
    if system:
        messages.append({"role": "system", "content": system})
    messages.extend({"role": message["role"], "content": message["content"]} for message in window)
    messages.append({"role": "user", "content": question})
    return messages


def fold_turns(messages: Sequence[dict[str, Any]], rolling_summary: str | None) -> list[Turn]:
    """The summarizer's input for folding `messages` into the rolling summary: the summary first, then each message."""
    turns = [Turn(FOLD_LABELS[message["role"]], message["content"]) for message in messages]
    return [Turn(EARLIER_LABEL, rolling_summary), *turns] if rolling_summary else turns


def fold_step(
    backlog: Sequence[dict[str, Any]], rolling_summary: str | None, *, max_input_tokens: int
) -> list[dict[str, Any]]:
    """The oldest messages of `backlog` that one summarizer input holds together with the rolling summary, so that
    folding them is one summarizer call. At least the oldest message: one too long for an input is folded alone."""
    budget = max_input_tokens - SPECIAL_TOKENS_RESERVE
    end = 1
    while end < len(backlog) and len(chunk_turns(fold_turns(backlog[: end + 1], rolling_summary), budget)) == 1:
        end += 1
    return list(backlog[:end])


def fold_calls(turns: Sequence[Turn], *, max_input_tokens: int) -> int:
    """The fewest summarizer calls summarize_turns makes for `turns`: one per batch of DEFAULT_BATCH_SIZE inputs,
    then at least one to reduce their summaries when there are several."""
    inputs = len(chunk_turns(turns, max_input_tokens - SPECIAL_TOKENS_RESERVE))
    return 1 if inputs <= 1 else math.ceil(inputs / DEFAULT_BATCH_SIZE) + 1
