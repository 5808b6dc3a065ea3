"""How the conversations API uses the chat model: token budgets, message limits, memory window, timeouts.

Defaults fit the reference deployment (Llama-2-7B-chat with a 4,096-token context, BART with a 1,024-token
input) and API Gateway's 29 s integration timeout. The template sets none of these; tests and benchmarks
pass their own.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The longest message the API accepts (characters). The UI reads its limit from the API's OpenAPI document.
MAX_MESSAGE_CHARS = 8_000


@dataclass(frozen=True)
class ChatPolicy:
    # The prompt (system + rolling summary + newest messages) must fit chat_context_tokens - chat_max_new_tokens,
    # counted with chatbot.tokens.estimate_tokens.
    chat_context_tokens: int = 4096
    chat_max_new_tokens: int = 512
    chat_temperature: float | None = None
    summarizer_max_input_tokens: int = 1024
    # A longer message is refused as too large (title and system prompt limits live in the request models).
    max_message_chars: int = MAX_MESSAGE_CHARS
    # In a conversation about a call, this share of the prompt budget holds the call's summary and most relevant
    # turns (and how to use them); the conversation's own memory has the rest.
    call_context_share: float = 0.4
    # Most messages sent verbatim per turn; bounds the DynamoDB read per turn.
    chat_window_messages: int = 12
    conversation_ttl_days: int = 30
    # The whole model call, retries included, must end before API Gateway's 29 s integration timeout.
    model_timeout_s: float = 24.0
    model_max_attempts: int = 2
    # Folding old messages into the rolling summary runs after the answer, only if this much time is left.
    fold_timeout_s: float = 8.0
    # A whole-conversation summary planned at more summarizer calls than this is made in the background (202, then
    # poll): at the assumed 8 s a call (chatbot.transcript_jobs.keys.ASSUMED_SUMMARIZER_CALL_S) 2 calls are 16 s,
    # inside API Gateway's 29 s with the reads and writes around them.
    summary_sync_max_calls: int = 2

    def __post_init__(self) -> None:
        if self.chat_max_new_tokens >= self.chat_context_tokens // 2:
            raise ValueError("chat_max_new_tokens must be under half of chat_context_tokens (room for the prompt)")
        if not 0 < self.call_context_share <= 0.5:
            raise ValueError("call_context_share must be above 0 and at most half (room for the messages)")
        if not 2 <= self.chat_window_messages <= 200:
            raise ValueError("chat_window_messages must be between 2 and 200")

    @property
    def chat_prompt_budget_tokens(self) -> int:
        """Tokens available for system prompt, rolling summary and recent messages."""
        return self.chat_context_tokens - self.chat_max_new_tokens

    @property
    def call_context_tokens(self) -> int:
        """Tokens of the prompt for the call's context, in a conversation about a call."""
        return int(self.chat_prompt_budget_tokens * self.call_context_share)
