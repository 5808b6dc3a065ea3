"""What can go wrong in the domain, said without HTTP: the REST adapter (chatbot.api_errors) decides how each
is answered."""

from __future__ import annotations


class DomainError(Exception):
    """A failure the caller can act on; `message` is written for them."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotFoundError(DomainError):
    """Unknown resource, or one that belongs to someone else (never say which)."""


class InvalidInputError(DomainError):
    """The request is well-formed but names something that cannot be used (a cursor from another listing)."""


class TooLargeError(DomainError):
    """The content exceeds a limit (characters, or the model's context)."""


class ConflictError(DomainError):
    """The resource's state does not allow this now; `retry_after_s` when trying again soon should work."""

    def __init__(self, message: str, *, retry_after_s: int | None = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RuleViolationError(DomainError):
    """The request is well-formed and valid by the schema but breaks a rule of the service: sent again unchanged,
    it fails again."""


class IdempotencyKeyReusedError(RuleViolationError):
    """An Idempotency-Key sent again with a different request."""


class SystemPromptTooLongError(RuleViolationError):
    """A system prompt that leaves the chat model's context too little room for the conversation."""


class QuotaExceededError(DomainError):
    """The caller used up a per-user quota of model requests; the next window opens in `retry_after_s`."""

    def __init__(self, message: str, *, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s
