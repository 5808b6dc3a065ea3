"""Request and response bodies of the conversations API (they also make its OpenAPI document)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CreateConversationRequest(_Request):
    title: str | None = Field(None, min_length=1, max_length=200, description="Shown in conversation lists.")
    system_prompt: str | None = Field(
        None, min_length=1, max_length=4000, description="Instructions sent to the chat model before every turn."
    )


class UpdateConversationRequest(_Request):
    title: str = Field(min_length=1, max_length=200, description="The new title.")
    system_prompt: str | None = Field(
        None,
        min_length=1,
        max_length=4000,
        description="New instructions for the chat model; `null` removes them; absent leaves them unchanged.",
    )


class SendMessageRequest(BaseModel):
    # Not stripped: the text is stored as sent. Size is checked by the service (413, not 422).
    model_config = ConfigDict(extra="forbid")

    content: str = Field(min_length=1, description="The user's message.", pattern=r"\S")


class SummaryRequest(_Request):
    user_label: str = Field("User", min_length=1, max_length=40, description="Speaker name for the user's turns.")
    assistant_label: str = Field("AI", min_length=1, max_length=40, description="Speaker name for the answers.")


class CreateCallConversationRequest(_Request):
    title: str | None = Field(
        None, min_length=1, max_length=200, description="Shown in conversation lists; default: About <filename>."
    )
    system_prompt: str | None = Field(
        None, min_length=1, max_length=4000, description="Instructions sent to the chat model before the call."
    )


class CallLink(BaseModel):
    job_id: str = Field(description="The transcript job whose call the conversation is about.")
    filename: str | None = Field(None, description="The transcript's file name, as uploaded.")


class Conversation(BaseModel):
    id: str
    title: str | None = None
    system_prompt: str | None = None
    created_at: str
    last_active_at: str
    message_count: int
    expires_at: str = Field(description="When the conversation is deleted if it stays idle (ISO 8601, UTC).")
    call: CallLink | None = Field(None, description="The call this conversation is about; absent for other chats.")


class ConversationList(BaseModel):
    items: list[Conversation]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; absent on the last page.")


class CallTurnReference(BaseModel):
    index: int = Field(description="The turn's position in the call's transcript, from 0 (as in `transcript`).")
    speaker: str
    start_s: float | None = Field(None, description="Where the turn starts in the recording, when the format says.")


class Message(BaseModel):
    seq: int = Field(description="Position in the conversation; answers take the number after their question.")
    role: Literal["user", "assistant"]
    content: str
    created_at: str
    status: Literal["answered", "pending", "unanswered"] | None = Field(
        None, description="User messages only: `unanswered` means the model failed; send it again to retry."
    )
    reply_to: int | None = Field(None, description="Assistant messages only: the seq of the question.")
    call_turns: list[CallTurnReference] | None = Field(
        None, description="Answers about a call only: the call's turns the model was shown, in call order."
    )
    call_selection: bool | None = Field(
        None, description="Answers about a call only: true when the call was too long and only these turns were shown."
    )


class MessageList(BaseModel):
    items: list[Message]
    next_cursor: str | None = None


class Exchange(BaseModel):
    conversation_id: str
    user_message: Message
    assistant_message: Message


class Summary(BaseModel):
    conversation_id: str
    summary: str
    message_count: int
    chunk_count: int = Field(description="Chunks the conversation was split into for the summarizer.")
    rounds: int = Field(description="Map-reduce rounds it took to reach one summary.")
    user_label: str
    assistant_label: str
    cached: bool = Field(description="True when served from the cache (the conversation has not changed).")
    created_at: str
    status: Literal["ready"] = "ready"
    stale: bool = Field(
        False, description="True when messages changed after the summary was requested (POST again for a new one)."
    )


class SummaryPending(BaseModel):
    conversation_id: str
    status: Literal["pending"]
    requested_at: str
    user_label: str
    assistant_label: str
    retry_after_s: int = Field(description="Poll GET .../summary (the Location header) again after this long.")


class SummaryError(BaseModel):
    code: str = Field(description="summarizer_unavailable, summarizer_failed, too_long, not_queued or internal_error.")
    message: str


class SummaryFailed(BaseModel):
    conversation_id: str
    status: Literal["failed"]
    requested_at: str
    error: SummaryError = Field(description="Why the background summary failed; POST again to retry.")
