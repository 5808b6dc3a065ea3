"""The conversations use cases: create, list, read, send a turn, retry, clear, delete, summarize.

Plain methods of (caller, ids, values) returning JSON-ready views; the Lambda handler only maps HTTP onto
them. They work on the store's typed records (ConversationRecord, MessageRecord) and never see the table's
keys. Ownership is checked on every call: someone else's conversation is "not found".
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError

from chatbot.call_context import CallContext, build_call_context
from chatbot.clock import iso_utc, parse_iso
from chatbot.conversations.memory import (
    ContextPlan,
    chat_messages,
    fixed_tokens,
    fold_calls,
    fold_step,
    fold_turns,
    max_system_prompt_tokens,
    message_tokens,
    plan_context,
)
from chatbot.conversations.policy import ChatPolicy
from chatbot.conversations.store import (
    ConditionFailedError,
    ConversationRecord,
    ConversationStore,
    DeletionIncompleteError,
    IdempotencyKeyTakenError,
    MessageRecord,
    TransactionConflictError,
)
from chatbot.conversations.summary_requests import (
    SummaryFailure,
    SummaryMessage,
    SummaryQueue,
    parse_summary_message,
)
from chatbot.errors import (
    ConflictError,
    DomainError,
    IdempotencyKeyReusedError,
    NotFoundError,
    SystemPromptTooLongError,
    TooLargeError,
)
from chatbot.inference import InferenceClient, InferenceError, ModelUnavailableError
from chatbot.quotas import UserQuota
from chatbot.summarization import SummarizationError, Summarize, Turn, plan_summary, summarize_turns
from chatbot.tokens import estimate_tokens
from chatbot.transcript_jobs.calls import CallNotFoundError, CallTranscripts
from chatbot.transcript_jobs.keys import ASSUMED_SUMMARIZER_CALL_S

logger = Logger(child=True)
metrics = Metrics()
tracer = Tracer()

TURN_ATTEMPTS = 12  # optimistic-locking attempts before a sender gets 409 (>= senders expected at once)
GAP_READ_LIMIT = 200  # unsummarized messages read beyond the window in one turn (only after failed folds)
FOLD_MARGIN_MS = 1_000  # left after the fold's summarizer calls, for its writes and the response
_EDITABLE = frozenset({"title", "system_prompt"})  # conversation attributes a caller may change
CALL_INSTRUCTIONS = (
    "Answer the user's questions about the call below from its summary and turns only. Cite the turns you rely on "
    "as [turn N]. When the call does not say, say so."
)
# The instructions and the blank lines around them, within the call's share of the prompt.
_CALL_INSTRUCTIONS_TOKENS = estimate_tokens(f"\n\n{CALL_INSTRUCTIONS}\n\n")
_CALL_RECENT_MESSAGES = 4  # earlier messages whose words also rank the call's turns (follow-up questions)
SUMMARY_POLL_INTERVAL_S = 5  # Retry-After of a pending background summary (a few summarizer calls' time)
# A clear deletes what it cleared inline only while the request has this much time left (the rest is the stream
# clean-up's job).
CLEAR_INLINE_RESERVE_MS = 3000


class _Prompt(NamedTuple):
    plan: ContextPlan  # which earlier messages are sent, and which leave the window (to fold)
    messages: list[dict[str, str]]  # the chat request
    call: CallContext | None  # the call's context, in a conversation about a call


class ConversationService:
    def __init__(
        self,
        store: ConversationStore,
        inference: InferenceClient,
        policy: ChatPolicy,
        *,
        fold_inference: Callable[[], InferenceClient] | None = None,
        calls: CallTranscripts | None = None,
        summary_queue: SummaryQueue | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        quota: UserQuota | None = None,
    ):
        self._store = store
        self._calls = calls
        self._summary_queue = summary_queue
        self._inference = inference
        self._policy = policy
        self._fold_inference_factory = fold_inference or (lambda: inference)
        self._fold_client: InferenceClient | None = None
        self._clock = clock
        self._quota = quota
        # Newest unsummarized messages read per turn: the window plus the turns that may arrive meanwhile.
        self._turn_read_limit = policy.chat_window_messages + 8

    # -- conversations ------------------------------------------------------------------------------

    def create_conversation(
        self, owner: str, title: str | None, system_prompt: str | None, call: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        now = self._clock()
        conversation_id = str(uuid.uuid4())
        conversation: ConversationRecord = {
            "conversation_id": conversation_id,
            "owner": owner,
            "title": title,
            "system_prompt": system_prompt,
            "created_at": iso_utc(now),
            "last_active_at": iso_utc(now),
            "turn_count": 0,
            "message_count": 0,
            "version": 0,
            "generation": 0,
            "summarized_through": 0,
            "expires_at": self._expires_at(now),
            "call": call,
        }
        self._check_system_prompt(conversation)
        self._store.create_conversation(conversation)
        logger.info("conversation created", extra={"conversation_id": conversation_id})
        return self._conversation_view(conversation)

    def create_call_conversation(
        self, owner: str, job_id: str, title: str | None, system_prompt: str | None
    ) -> dict[str, Any]:
        """A conversation about one of the owner's summarized calls: each answer is grounded in the call."""
        call = self._require_calls().load(owner, job_id)
        title = title or f"About {call.filename or call.job_id}"
        return self.create_conversation(owner, title, system_prompt, {"job_id": call.job_id, "filename": call.filename})

    def list_conversations(self, owner: str, limit: int, cursor: str | None) -> dict[str, Any]:
        page = self._store.list_conversations(owner, limit, cursor)
        return {"items": [self._conversation_view(item) for item in page.items], "next_cursor": page.next_cursor}

    def get_conversation(self, owner: str, conversation_id: str) -> dict[str, Any]:
        return self._conversation_view(self._owned(owner, conversation_id))

    def update_conversation(
        self, owner: str, conversation_id: str, changes: Mapping[str, str | None]
    ) -> dict[str, Any]:
        """Change the title and/or system prompt (None removes the prompt). Not activity: the conversation
        keeps its place in the list and its expiry, and its messages and summaries are untouched."""
        unknown = set(changes) - _EDITABLE
        if unknown:
            raise ValueError(f"not editable: {sorted(unknown)}")
        if not changes:
            return self.get_conversation(owner, conversation_id)
        if changes.get("system_prompt") is not None:
            self._check_system_prompt(
                {**self._owned(owner, conversation_id), "system_prompt": changes["system_prompt"]}
            )
        try:
            item = self._store.update_details(conversation_id, owner, dict(changes))
        except ConditionFailedError:
            raise self._not_found() from None
        logger.info("conversation updated", extra={"conversation_id": conversation_id, "fields": sorted(changes)})
        return self._conversation_view(item)

    def delete_conversation(self, owner: str, conversation_id: str) -> None:
        self._owned(owner, conversation_id)
        try:
            self._store.delete_conversation(conversation_id, owner)
        except ConditionFailedError:
            raise self._not_found() from None
        deleted = self._delete_dead_messages(conversation_id, lambda: self._store.delete_messages(conversation_id))
        logger.info("conversation deleted", extra={"conversation_id": conversation_id, "deleted_messages": deleted})

    def clear_conversation(
        self, owner: str, conversation_id: str, remaining_ms: Callable[[], int] | None = None
    ) -> None:
        """Clear the messages and summaries; the conversation itself stays. The reset alone is the clear:
        from then on reads skip what it cleared, and a send stored after it survives."""
        for attempt in range(TURN_ATTEMPTS):
            conversation = self._owned(owner, conversation_id)
            now = self._clock()
            try:
                self._store.reset_conversation(conversation, iso_utc(now), self._expires_at(now))
                break
            except (ConditionFailedError, TransactionConflictError):
                self._backoff(attempt)
        else:
            raise ConflictError("The conversation kept changing while it was being cleared; retry.")
        cleared_through, generation = 2 * conversation["turn_count"], conversation["generation"] + 1
        deleted = self._delete_dead_messages(
            conversation_id,
            lambda: self._store.delete_cleared(
                conversation_id, cleared_through, generation, keep_going=lambda: _time_left(remaining_ms)
            ),
        )
        logger.info(
            "conversation cleared",
            extra={"conversation_id": conversation_id, "cleared_through": cleared_through, "deleted_messages": deleted},
        )

    @staticmethod
    def _delete_dead_messages(conversation_id: str, delete: Callable[[], int]) -> int:
        """Run `delete` (of messages a delete or a clear already made dead and unreadable); returns the count.
        The stream clean-up (ConversationCleanupFunction, on the META item's change) is what guarantees deletion,
        with retries and a failure queue; deleting in passing leaves the table tidy at once for the common small
        conversation, and a failure here only leaves the rest to it: the caller's request has succeeded."""
        try:
            return delete()
        except (ClientError, DeletionIncompleteError) as exc:
            logger.warning(
                "dead messages left to the stream clean-up",
                extra={"conversation_id": conversation_id, "error": str(exc)},
            )
            return 0

    # -- messages -----------------------------------------------------------------------------------

    def list_messages(
        self, owner: str, conversation_id: str, limit: int, cursor: str | None, newest_first: bool
    ) -> dict[str, Any]:
        conversation = self._owned(owner, conversation_id)
        page = self._store.message_page(
            conversation_id, limit=limit, cursor=cursor, newest_first=newest_first, after_seq=_cleared(conversation)
        )
        return {"items": [self._message_view(item) for item in page.items], "next_cursor": page.next_cursor}

    @tracer.capture_method(capture_response=False)
    def send_message(
        self,
        owner: str,
        conversation_id: str,
        content: str,
        remaining_ms: Callable[[], int] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Store the user's message, ask the chat model, store its answer.

        With an `idempotency_key`, the key names the message it was first sent with: a resend answers that
        message if the model failed on it, or returns the stored exchange if it was answered. Otherwise
        sending again the text of the newest unanswered message answers that message instead of storing it
        twice (and a new key then names that message)."""
        turn = self._turn_for(owner, conversation_id, content, idempotency_key)
        if isinstance(turn, dict):
            return turn
        return self._answer(*turn, remaining_ms)

    def stream_message(
        self,
        owner: str,
        conversation_id: str,
        content: str,
        remaining_ms: Callable[[], int] | None = None,
        idempotency_key: str | None = None,
    ) -> Iterator[str | dict[str, Any]]:
        """`send_message`, with the answer's text yielded as the model produces it, then the stored exchange.

        Same semantics: the user's message is stored before the model is called and the answer once, whole,
        when the stream ends. A model failure, or the consumer closing the stream (the client went away),
        leaves the message unanswered for messages/retry, and the partial text is dropped: only whole answers
        are stored, so the history the model reads later never holds a cut-off turn. A resend of an answered
        exchange yields its answer as one piece. Everything that can fail before the model's first piece
        (ownership, limits, idempotency, a model that refuses the call) raises on the first `next()`."""
        turn = self._turn_for(owner, conversation_id, content, idempotency_key)
        if isinstance(turn, dict):
            yield turn["assistant_message"]["content"]
            yield turn
            return
        conversation, question, history, history_truncated = turn
        prompt = self._prompt(conversation, question, history)
        started = time.perf_counter()
        pieces: list[str] = []
        try:
            for piece in self._inference.chat_stream(
                prompt.messages,
                max_new_tokens=self._policy.chat_max_new_tokens,
                temperature=self._policy.chat_temperature,
            ):
                pieces.append(piece)
                yield piece
        except (InferenceError, GeneratorExit):  # GeneratorExit: the consumer stopped reading mid-answer
            self._leave_unanswered(conversation, question)
            raise
        finally:
            metrics.add_metric(name="ModelLatency", unit=MetricUnit.Milliseconds, value=_ms_since(started))
        yield self._finish(conversation, question, "".join(pieces), prompt, history_truncated, remaining_ms)

    def _turn_for(
        self, owner: str, conversation_id: str, content: str, idempotency_key: str | None
    ) -> dict[str, Any] | tuple[ConversationRecord, MessageRecord, list[MessageRecord], bool]:
        """The stored exchange of an answered resend, or (conversation, question, history, history truncated)
        with the user's message stored (or found, for a resend of an unanswered one)."""
        if len(content) > self._policy.max_message_chars:
            raise TooLargeError(
                f"The message has {len(content)} characters; the limit is {self._policy.max_message_chars}."
            )
        conversation = self._owned(owner, conversation_id)
        question = None
        if idempotency_key is not None:
            question = self._question_sent_with(conversation, idempotency_key, content)
            if question is not None and self._status(question) == "answered":
                return self._stored_exchange(conversation, question)
        page = self._store.newest_messages(
            conversation_id, after_seq=_history_start(conversation), limit=self._turn_read_limit
        )
        history = sorted(page.items, key=lambda message: message["seq"])
        if question is None:
            question = self._unanswered_question(history, content)
            if question is not None and idempotency_key is not None:
                self._remember_key(conversation, idempotency_key, question["seq"])
        if question is None:
            self._check_fits(conversation, content)
        self._take_quota(owner)  # before the message is stored: a refused send leaves nothing behind
        if question is None:
            conversation, question = self._start_turn(conversation, content, idempotency_key)
        return conversation, question, history, page.has_more

    def retry_last_message(
        self, owner: str, conversation_id: str, remaining_ms: Callable[[], int] | None = None
    ) -> dict[str, Any]:
        """Answer the newest user message if it is unanswered (the model failed on it)."""
        conversation = self._owned(owner, conversation_id)
        page = self._store.newest_messages(
            conversation_id, after_seq=_history_start(conversation), limit=self._turn_read_limit
        )
        history = sorted(page.items, key=lambda message: message["seq"])
        users = [message for message in history if message["role"] == "user"]
        if not users or self._status(users[-1]) != "unanswered":
            raise ConflictError("There is no unanswered message to retry in this conversation.")
        self._take_quota(owner)
        return self._answer(conversation, users[-1], history, page.has_more, remaining_ms)

    # -- whole-conversation summaries (long ones in the background) ----------------------------------

    def summarize_conversation(
        self, owner: str, conversation_id: str, user_label: str = "User", assistant_label: str = "AI"
    ) -> dict[str, Any]:
        """The summary (`status` ready) when its planned summarizer calls fit the API's time budget
        (`ChatPolicy.summary_sync_max_calls`); otherwise a background request (`status` pending) to poll with
        `summary_status`. A pending request for the same version and labels is not queued twice."""
        conversation = self._owned(owner, conversation_id)
        labels = {"user": user_label, "assistant": assistant_label}
        cached = conversation.get("cached_summary")
        if cached and cached.get("version") == conversation["version"] and _labels_of(cached) == labels:
            return self._summary_view(conversation_id, cached, cached=True)
        request = self._current_request(conversation)
        if (
            request
            and request["status"] == "pending"
            and request["version"] == conversation["version"]
            and _labels_of(request) == labels
        ):
            return self._pending_view(conversation_id, request)
        turns = self._summary_turns(conversation, labels)
        if not turns:
            raise ConflictError("The conversation has no messages to summarize.")
        self._take_quota(owner)  # a cached summary or a pending request (above) costs no model time, so no quota
        plan = plan_summary(turns, max_input_tokens=self._policy.summarizer_max_input_tokens)
        if plan.calls <= self._policy.summary_sync_max_calls:
            try:
                record = self._make_summary(
                    conversation, turns, labels, _CallLimit(self._inference.summarize, plan.calls)
                )
                return self._summary_view(conversation_id, record, cached=False)
            except _CallLimitReached:  # the estimate was short of the model's tokens: finish in the background
                logger.info("summary continues in the background", extra={"conversation_id": conversation_id})
        return self._request_summary(conversation, labels, plan.calls)

    def summary_status(self, owner: str, conversation_id: str) -> dict[str, Any]:
        """The newest summary: the background request's state (pending, ready, failed), else the cached summary.
        A summary made for an earlier version says `stale` (the conversation moved on since it was requested).
        NotFoundError when none was made or requested since the conversation was last cleared."""
        conversation = self._owned(owner, conversation_id)
        request = self._current_request(conversation)
        if request is None:
            cached = conversation.get("cached_summary")
            if not cached:
                raise NotFoundError("No summary was requested for this conversation; POST to request one.")
            return self._summary_view(conversation_id, cached, cached=True, current_version=conversation["version"])
        if request["status"] == "pending":
            return self._pending_view(conversation_id, request)
        if request["status"] == "failed":
            return {
                "conversation_id": conversation_id,
                "status": "failed",
                "requested_at": request["requested_at"],
                "error": {"code": request["error_code"], "message": SummaryFailure(request["error_code"]).message},
            }
        return self._summary_view(
            conversation_id, request["result"], cached=True, current_version=conversation["version"]
        )

    def complete_summary_request(
        self,
        message_body: str,
        *,
        final_attempt: bool = False,
        remaining_ms: Callable[[], int] | None = None,
    ) -> str:
        """The background worker: make the summary a queued request asks for, cache it (if the conversation has
        not changed) and mark the request ready. A permanent failure marks it failed; a transient one is raised
        for the queue to retry, after marking it failed on the message's last receive, so none stays pending.
        Returns what happened: ready, failed, or superseded (replaced, finished, cleared or deleted)."""
        try:
            message = parse_summary_message(message_body)
        except ValueError:
            logger.error("summary request message dropped: not a summary request")
            return "failed"
        conversation = self._store.get_conversation(message.conversation_id)
        request = self._current_request(conversation) if conversation else None
        if not request or request["request_id"] != message.request_id or request["status"] != "pending":
            return "superseded"
        labels = _labels_of(request)
        try:
            turns = self._summary_turns(conversation, labels)
            plan = plan_summary(turns, max_input_tokens=self._policy.summarizer_max_input_tokens)
            if remaining_ms is not None and plan.calls * ASSUMED_SUMMARIZER_CALL_S * 1000 > remaining_ms():
                return self._fail_request(message, SummaryFailure.TOO_LONG)
            record = self._make_summary(conversation, turns, labels, self._inference.summarize)
        except ModelUnavailableError:
            if final_attempt:
                self._fail_request(message, SummaryFailure.SUMMARIZER_UNAVAILABLE)
            raise
        except (InferenceError, SummarizationError, ValueError):
            logger.exception("background summary failed", extra={"conversation_id": message.conversation_id})
            return self._fail_request(message, SummaryFailure.SUMMARIZER_FAILED)
        except Exception:
            if final_attempt:
                self._fail_request(message, SummaryFailure.INTERNAL)
            raise
        finished = self._store.finish_summary_request(
            message.conversation_id, message.request_id, {"status": "ready", "result": record}
        )
        return "ready" if finished else "superseded"

    def _summary_turns(self, conversation: ConversationRecord, labels: dict[str, str]) -> list[Turn]:
        """The conversation's messages since its last clear, as the summarizer reads them."""
        messages = self._store.all_messages(conversation["conversation_id"], after_seq=_cleared(conversation))
        return [Turn(labels[message["role"]], message["content"]) for message in messages]

    def _make_summary(
        self,
        conversation: ConversationRecord,
        turns: list[Turn],
        labels: dict[str, str],
        summarize: Callable[[list[str]], list[str]],
    ) -> dict[str, Any]:
        """Summarize `turns` and cache the summary if no message arrived meanwhile; the cached record."""
        conversation_id = conversation["conversation_id"]
        started = time.perf_counter()
        result = summarize_turns(turns, summarize, max_input_tokens=self._policy.summarizer_max_input_tokens)
        metrics.add_metric(name="SummaryLatency", unit=MetricUnit.Milliseconds, value=_ms_since(started))
        record = {
            "summary": result.summary,
            "version": conversation["version"],
            "message_count": len(turns),
            "chunk_count": result.chunk_count,
            "rounds": result.rounds,
            "user_label": labels["user"],
            "assistant_label": labels["assistant"],
            "created_at": iso_utc(self._clock()),
        }
        self._store.save_cached_summary(conversation_id, record, expected_version=conversation["version"])
        logger.info(
            "conversation summarized",
            extra={"conversation_id": conversation_id, "chunks": result.chunk_count, "rounds": result.rounds},
        )
        return record

    def _request_summary(
        self, conversation: ConversationRecord, labels: dict[str, str], planned_calls: int
    ) -> dict[str, Any]:
        """Store a pending request on the conversation and queue it; the pending view."""
        conversation_id = conversation["conversation_id"]
        request = {
            "request_id": str(uuid.uuid4()),
            "status": "pending",
            "version": conversation["version"],
            "generation": conversation["generation"],
            "user_label": labels["user"],
            "assistant_label": labels["assistant"],
            "requested_at": iso_utc(self._clock()),
            "planned_calls": planned_calls,
        }
        try:
            self._store.save_summary_request(conversation_id, request)
        except ConditionFailedError:
            raise self._not_found() from None
        message = SummaryMessage(conversation_id, request["request_id"])
        try:
            self._require_summary_queue().send(message)
        except Exception:
            self._fail_request(message, SummaryFailure.NOT_QUEUED)
            raise
        metrics.add_metric(name="SummariesQueued", unit=MetricUnit.Count, value=1)
        logger.info("summary queued", extra={"conversation_id": conversation_id, "planned_calls": planned_calls})
        return self._pending_view(conversation_id, request)

    def _fail_request(self, message: SummaryMessage, code: SummaryFailure) -> str:
        outcome = {"status": "failed", "error_code": code.value, "failed_at": iso_utc(self._clock())}
        self._store.finish_summary_request(message.conversation_id, message.request_id, outcome)
        logger.warning("summary request failed", extra={"conversation_id": message.conversation_id, "code": code})
        return "failed"

    @staticmethod
    def _current_request(conversation: ConversationRecord) -> dict[str, Any] | None:
        """The background summary request, unless it predates the last clear (its summary would show cleared
        messages)."""
        request = conversation.get("summary_request")
        return request if request and request.get("generation") == conversation["generation"] else None

    def _require_summary_queue(self) -> SummaryQueue:
        if self._summary_queue is None:
            raise RuntimeError("this service was built without the summary requests queue")
        return self._summary_queue

    @staticmethod
    def _pending_view(conversation_id: str, request: dict[str, Any]) -> dict[str, Any]:
        return {
            "conversation_id": conversation_id,
            "status": "pending",
            "requested_at": request["requested_at"],
            "user_label": request["user_label"],
            "assistant_label": request["assistant_label"],
            "retry_after_s": SUMMARY_POLL_INTERVAL_S,
        }

    # -- a turn -------------------------------------------------------------------------------------

    def _take_quota(self, owner: str) -> None:
        """Count a request that is about to reach the model (QuotaExceededError when the owner's is used up)."""
        if self._quota:
            self._quota.take(owner)

    def _check_fits(self, conversation: ConversationRecord, content: str) -> None:
        fixed = fixed_tokens(conversation.get("system_prompt"), conversation.get("rolling_summary"))
        budget = self._policy.chat_prompt_budget_tokens - fixed - self._call_reserve(conversation)
        needed = message_tokens(content)
        if needed > budget:
            raise TooLargeError(
                f"The message is too long for the chat model's context (about {needed} tokens; at most {budget})."
            )

    def _start_turn(
        self, conversation: ConversationRecord, content: str, idempotency_key: str | None = None
    ) -> tuple[ConversationRecord, MessageRecord]:
        """Store the user's message under the next turn number; concurrent senders retry on the next one."""
        conversation_id = conversation["conversation_id"]
        for attempt in range(TURN_ATTEMPTS):
            now = self._clock()
            turn = conversation["turn_count"] + 1
            question: MessageRecord = {
                "seq": 2 * turn - 1,
                "role": "user",
                "content": content,
                "status": "pending",
                "created_at": iso_utc(now),
            }
            try:
                self._store.start_turn(conversation, question, iso_utc(now), self._expires_at(now), idempotency_key)
                return conversation, question
            except IdempotencyKeyTakenError:
                raise _key_in_progress() from None
            except (ConditionFailedError, TransactionConflictError):
                metrics.add_metric(name="TurnConflicts", unit=MetricUnit.Count, value=1)
                self._backoff(attempt)
                conversation = self._owned(conversation["owner"], conversation_id)
        raise ConflictError(
            "Too many messages are being sent to this conversation at the same time; retry.",
            retry_after_s=1,
        )

    def _answer(
        self,
        conversation: ConversationRecord,
        question: MessageRecord,
        history: list[MessageRecord],
        history_truncated: bool,
        remaining_ms: Callable[[], int] | None,
    ) -> dict[str, Any]:
        prompt = self._prompt(conversation, question, history)
        started = time.perf_counter()
        try:
            answer_text = self._inference.chat(
                prompt.messages,
                max_new_tokens=self._policy.chat_max_new_tokens,
                temperature=self._policy.chat_temperature,
            )
        except InferenceError:
            self._leave_unanswered(conversation, question)
            raise
        finally:
            metrics.add_metric(name="ModelLatency", unit=MetricUnit.Milliseconds, value=_ms_since(started))
        return self._finish(conversation, question, answer_text, prompt, history_truncated, remaining_ms)

    def _prompt(
        self, conversation: ConversationRecord, question: MessageRecord, history: list[MessageRecord]
    ) -> _Prompt:
        """The chat request for a question, and the call context it holds in a conversation about a call."""
        earlier = [message for message in history if message["seq"] < question["seq"]]
        system_prompt, summary = conversation.get("system_prompt"), conversation.get("rolling_summary")
        budget = (
            self._policy.chat_prompt_budget_tokens
            - fixed_tokens(system_prompt, summary)
            - message_tokens(question["content"])
            - self._call_reserve(conversation)
        )
        plan = plan_context(earlier, budget_tokens=budget, max_messages=self._policy.chat_window_messages)
        call = self._call_context(conversation, question, earlier)
        if call is not None:
            system_prompt = "\n\n".join(part for part in (system_prompt, CALL_INSTRUCTIONS, call.text) if part)
        return _Prompt(plan, chat_messages(system_prompt, summary, plan.window, question["content"]), call)

    def _leave_unanswered(self, conversation: ConversationRecord, question: MessageRecord) -> None:
        conversation_id = conversation["conversation_id"]
        self._store.set_message_status(conversation_id, question["seq"], "unanswered")
        logger.warning("turn left unanswered", extra={"conversation_id": conversation_id, "seq": question["seq"]})

    def _finish(
        self,
        conversation: ConversationRecord,
        question: MessageRecord,
        answer_text: str,
        prompt: _Prompt,
        history_truncated: bool,
        remaining_ms: Callable[[], int] | None,
    ) -> dict[str, Any]:
        """Store the answer, fold what left the window if time allows; the exchange as the API returns it."""
        conversation_id = conversation["conversation_id"]
        plan, messages, call = prompt
        answer = self._store_answer(conversation, question, answer_text, call)
        metrics.add_metric(name="Turns", unit=MetricUnit.Count, value=1)
        logger.info(
            "turn answered",
            extra={
                "conversation_id": conversation_id,
                "seq": question["seq"],
                "window_messages": len(plan.window),
                "prompt_messages": len(messages),
            },
        )
        fold_calls_allowed = self._fold_calls_allowed(remaining_ms)
        if plan.fold and fold_calls_allowed:
            self._fold(conversation, plan.fold, history_truncated, fold_calls_allowed)
        return {
            "conversation_id": conversation_id,
            "user_message": self._message_view({**question, "status": "answered"}),
            "assistant_message": self._message_view(answer),
        }

    def _check_system_prompt(self, conversation: ConversationRecord) -> None:
        """Refuse a system prompt that leaves the conversation too little room (max_system_prompt_tokens) in the
        prompt budget, less the call's share in a conversation about a call."""
        system_prompt = conversation.get("system_prompt")
        if not system_prompt:
            return
        tokens = estimate_tokens(system_prompt)
        limit = max_system_prompt_tokens(self._policy.chat_prompt_budget_tokens - self._call_reserve(conversation))
        if tokens > limit:
            raise SystemPromptTooLongError(
                f"The system prompt is about {tokens} tokens; the limit is {limit} tokens, so that the chat model's "
                "context keeps room for the conversation."
            )

    def _call_reserve(self, conversation: ConversationRecord) -> int:
        """Prompt tokens kept for the call's context in a conversation about a call."""
        return self._policy.call_context_tokens if conversation.get("call") else 0

    def _call_context(
        self, conversation: ConversationRecord, question: MessageRecord, earlier: list[MessageRecord]
    ) -> CallContext | None:
        """The call's summary and its turns most relevant to the question (None outside a call conversation).
        When the call cannot be read, the question is kept, unanswered, as when the model fails."""
        link = conversation.get("call")
        if not link:
            return None
        try:
            call = self._require_calls().load(conversation["owner"], link["job_id"])
        except DomainError as exc:
            self._store.set_message_status(conversation["conversation_id"], question["seq"], "unanswered")
            if isinstance(exc, CallNotFoundError):
                raise ConflictError(
                    "The call this conversation is about was deleted: its messages stay, new questions cannot be "
                    "answered."
                ) from None
            raise
        recent = [message["content"] for message in earlier[-_CALL_RECENT_MESSAGES:]]
        return build_call_context(
            call.summary,
            call.turns,
            question["content"],
            max_tokens=self._policy.call_context_tokens - _CALL_INSTRUCTIONS_TOKENS,
            recent_messages=recent,
        )

    def _require_calls(self) -> CallTranscripts:
        if self._calls is None:
            raise RuntimeError("this service was built without access to transcripts")
        return self._calls

    def _store_answer(
        self, conversation: ConversationRecord, question: MessageRecord, text: str, call: CallContext | None = None
    ) -> MessageRecord:
        conversation_id = conversation["conversation_id"]
        now = self._clock()
        answer: MessageRecord = {
            "seq": question["seq"] + 1,
            "role": "assistant",
            "content": text,
            "reply_to": question["seq"],
            "created_at": iso_utc(now),
        }
        if call is not None:
            answer["call_turns"] = [
                {"index": turn.index, "speaker": turn.speaker, "start_s": turn.start_s} for turn in call.turns
            ]
            answer["call_selection"] = call.selection
        try:
            self._store.finish_turn(
                conversation_id,
                conversation["generation"],
                question["seq"],
                answer,
                iso_utc(now),
                self._expires_at(now),
            )
        except TransactionConflictError:
            # Other writes kept holding these items (the store retried): nothing was cleared, the question stays
            # for messages/retry.
            self._leave_unanswered(conversation, question)
            raise ConflictError(
                "The conversation was too busy to store the answer; your message is saved, retry it.",
                retry_after_s=1,
            ) from None
        except ConditionFailedError as exc:
            slot_taken = bool(exc.reasons) and exc.reasons[0] == "ConditionalCheckFailed"
            existing = self._live_message(conversation, answer["seq"]) if slot_taken else None
            if existing is not None:  # a concurrent retry answered the same message first: one answer only
                return existing
            raise ConflictError(
                "The conversation was cleared or deleted while the answer was being written; the answer was dropped."
            ) from None
        return answer

    def _fold_calls_allowed(self, remaining_ms: Callable[[], int] | None) -> float:
        """Summarizer calls the fold may make before the request's deadline: the fold client gives each up after
        fold_timeout_s, so that many calls end FOLD_MARGIN_MS before it (no deadline, no limit)."""
        if remaining_ms is None:
            return math.inf
        return max(0, (remaining_ms() - FOLD_MARGIN_MS) // int(self._policy.fold_timeout_s * 1000))

    def _fold(
        self, conversation: ConversationRecord, fold: list[MessageRecord], history_truncated: bool, calls: float
    ) -> None:
        """Fold messages that left the window into the rolling summary, oldest first, one summarizer input at a
        time while `calls` last; each step moves summarized_through to its last message and the rest waits for
        later turns. Best effort: a failure leaves the messages unsummarized, and a later turn folds them."""
        conversation_id = conversation["conversation_id"]
        summarized_through = conversation["summarized_through"]
        summary = conversation.get("rolling_summary")
        if history_truncated:  # older unsummarized messages exist beyond what this turn read
            gap = self._store.messages_between(
                conversation_id, summarized_through + 1, fold[0]["seq"] - 1, GAP_READ_LIMIT
            )
            fold = gap.items if gap.has_more else gap.items + fold
        backlog = self._before_pending(fold)
        if self._fold_client is None:
            self._fold_client = self._fold_inference_factory()
        summarize = _MeteredSummarize(self._fold_client.summarize, calls)
        max_input_tokens = self._policy.summarizer_max_input_tokens
        while backlog:
            step = fold_step(backlog, summary, max_input_tokens=max_input_tokens)
            turns = fold_turns(step, summary)
            try:
                if fold_calls(turns, max_input_tokens=max_input_tokens) > summarize.calls_left:
                    raise _NoTimeToFold(f"no time left for the {len(step)} messages after seq {summarized_through}")
                result = summarize_turns(turns, summarize, max_input_tokens=max_input_tokens)
            except _NoTimeToFold as exc:
                logger.info(
                    "rolling summary left for a later turn",
                    extra={"conversation_id": conversation_id, "reason": str(exc)},
                )
                return
            except (InferenceError, SummarizationError, ValueError) as exc:
                metrics.add_metric(name="FoldFailures", unit=MetricUnit.Count, value=1)
                logger.warning(
                    "rolling summary not updated", extra={"conversation_id": conversation_id, "error": str(exc)}
                )
                return
            through = step[-1]["seq"]
            stored = self._store.save_rolling_summary(conversation_id, result.summary, through, summarized_through)
            logger.info(
                "rolling summary updated" if stored else "rolling summary already moved on",
                extra={"conversation_id": conversation_id, "summarized_through": through},
            )
            if not stored:
                return
            summary, summarized_through, backlog = result.summary, through, backlog[len(step) :]

    def _before_pending(self, messages: list[MessageRecord]) -> list[MessageRecord]:
        """The messages before the oldest question whose answer is still coming: the answer takes the next seq,
        and a rolling summary already past it would hide it from every later turn."""
        for index, message in enumerate(messages):
            if message["role"] == "user" and self._status(message) == "pending":
                return messages[:index]
        return messages

    def _question_sent_with(
        self, conversation: ConversationRecord, idempotency_key: str, content: str
    ) -> MessageRecord | None:
        """The user message first sent with this key (None if the key is new, or from before a clear)."""
        conversation_id = conversation["conversation_id"]
        key = self._store.get_idempotency_key(conversation_id, idempotency_key)
        if key is None or key["generation"] != conversation["generation"]:
            return None
        question = self._live_message(conversation, key["seq"])
        if question is None:  # cleared since the conversation was read
            raise ConflictError("The conversation is being cleared; retry.", retry_after_s=1)
        if question["content"] != content:
            raise IdempotencyKeyReusedError("This Idempotency-Key was already used with a different request body.")
        if self._status(question) == "pending":
            raise _key_in_progress()
        return question

    def _remember_key(self, conversation: ConversationRecord, idempotency_key: str, seq: int) -> None:
        try:
            self._store.add_idempotency_key(conversation, idempotency_key, seq)
        except IdempotencyKeyTakenError:
            raise _key_in_progress() from None

    def _stored_exchange(self, conversation: ConversationRecord, question: MessageRecord) -> dict[str, Any]:
        """The exchange as the first answer returned it, read back from the two stored messages."""
        conversation_id = conversation["conversation_id"]
        answer = self._live_message(conversation, question["seq"] + 1)
        if answer is None:  # answered means the answer was stored in the same transaction; cleared meanwhile
            raise ConflictError("The conversation is being cleared; retry.", retry_after_s=1)
        return {
            "conversation_id": conversation_id,
            "user_message": self._message_view(question),
            "assistant_message": self._message_view(answer),
        }

    def _unanswered_question(self, history: list[MessageRecord], content: str) -> MessageRecord | None:
        """The newest user message, if it failed and has exactly this text (a retry, not a new turn)."""
        users = [message for message in history if message["role"] == "user"]
        if users and users[-1]["content"] == content and self._status(users[-1]) == "unanswered":
            return users[-1]
        return None

    # -- helpers ------------------------------------------------------------------------------------

    def _live_message(self, conversation: ConversationRecord, seq: int) -> MessageRecord | None:
        """The message, unless a clear (as of `conversation`) covered it: cleared means gone, deleted yet or not."""
        if seq <= _cleared(conversation):
            return None
        return self._store.get_message(conversation["conversation_id"], seq)

    def _owned(self, owner: str, conversation_id: str) -> ConversationRecord:
        conversation = self._store.get_conversation(conversation_id)
        if conversation is None or conversation.get("owner") != owner:
            raise self._not_found()
        return conversation

    @staticmethod
    def _not_found() -> NotFoundError:
        return NotFoundError("Conversation not found.")

    def _expires_at(self, now: datetime) -> int:
        return int((now + timedelta(days=self._policy.conversation_ttl_days)).timestamp())

    def _status(self, message: MessageRecord) -> str | None:
        """User message status; a `pending` one older than any model call can take has failed silently."""
        status = message.get("status")
        if status == "pending":
            age = self._clock() - parse_iso(message["created_at"])
            if age.total_seconds() > self._policy.model_timeout_s + self._policy.fold_timeout_s + 5:
                return "unanswered"
        return status

    @staticmethod
    def _backoff(attempt: int) -> None:
        time.sleep(random.uniform(0, 0.02 * (attempt + 1)))

    def _conversation_view(self, item: ConversationRecord) -> dict[str, Any]:
        return {
            "id": item["conversation_id"],
            "title": item.get("title"),
            "system_prompt": item.get("system_prompt"),
            "created_at": item["created_at"],
            "last_active_at": item["last_active_at"],
            "message_count": item.get("message_count", 0),
            "expires_at": iso_utc(item["expires_at"]),
            "call": item.get("call"),
        }

    def _message_view(self, item: MessageRecord) -> dict[str, Any]:
        view = {
            "seq": item["seq"],
            "role": item["role"],
            "content": item["content"],
            "created_at": item["created_at"],
        }
        if item["role"] == "user":
            view["status"] = self._status(item)
        else:
            view["reply_to"] = item.get("reply_to")
            if "call_turns" in item:
                view["call_turns"] = item["call_turns"]
                view["call_selection"] = item["call_selection"]
        return view

    @staticmethod
    def _summary_view(
        conversation_id: str, record: dict[str, Any], *, cached: bool, current_version: int | None = None
    ) -> dict[str, Any]:
        fields = ("summary", "message_count", "chunk_count", "rounds", "user_label", "assistant_label", "created_at")
        stale = current_version is not None and record["version"] != current_version
        return {
            "conversation_id": conversation_id,
            "status": "ready",
            **{name: record[name] for name in fields},
            "cached": cached,
            "stale": stale,
        }


class _CallLimitReached(Exception):
    """A summary made within the API's time budget needs more summarizer calls than planned."""


class _CallLimit:
    """The summarizer, refusing calls beyond the number planned (the synchronous summary's bound)."""

    def __init__(self, summarize: Callable[[list[str]], list[str]], max_calls: int):
        self._summarize = summarize
        self._calls_left = max_calls

    def __call__(self, texts: list[str]) -> list[str]:
        if self._calls_left <= 0:
            raise _CallLimitReached
        self._calls_left -= 1
        return self._summarize(texts)


def _labels_of(record: Mapping[str, Any]) -> dict[str, str]:
    return {"user": record.get("user_label"), "assistant": record.get("assistant_label")}


class _NoTimeToFold(Exception):
    """The fold would need more summarizer calls than the time left to the request allows."""


class _MeteredSummarize:
    """The fold client's summarize, refusing calls beyond those the time left allows."""

    def __init__(self, summarize: Summarize, calls: float):
        self._summarize = summarize
        self.calls_left = calls

    def __call__(self, texts: list[str]) -> list[str]:
        if self.calls_left < 1:
            raise _NoTimeToFold("the fold used every summarizer call the time left allows")
        self.calls_left -= 1
        return self._summarize(texts)


def _key_in_progress() -> ConflictError:
    return ConflictError(
        "A request with this Idempotency-Key is still being processed; retry shortly.",
        retry_after_s=2,
    )


def _cleared(conversation: ConversationRecord) -> int:
    """Messages up to this seq were cleared: never shown, whether or not they are deleted yet."""
    return conversation.get("cleared_through", 0)


def _history_start(conversation: ConversationRecord) -> int:
    """The turn's history reads start after the rolling summary and after what was cleared."""
    return max(conversation["summarized_through"], _cleared(conversation))


def _time_left(remaining_ms: Callable[[], int] | None) -> bool:
    return remaining_ms is None or remaining_ms() > CLEAR_INLINE_RESERVE_MS


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
