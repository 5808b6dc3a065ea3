"""Conversations REST API: HTTP onto chatbot.conversations.service (all logic lives in the layer)."""

from http import HTTPStatus
from typing import Annotated, Literal

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query
from aws_lambda_powertools.utilities.typing import LambdaContext
from chatbot.api_errors import QUOTA_EXCEEDED_RESPONSE, ErrorMessage, caller_id, quota_limited, register_error_handlers
from chatbot.conversations.models import (
    Conversation,
    ConversationList,
    CreateCallConversationRequest,
    CreateConversationRequest,
    Exchange,
    MessageList,
    SendMessageRequest,
    Summary,
    SummaryFailed,
    SummaryPending,
    SummaryRequest,
    UpdateConversationRequest,
)
from chatbot.event_stream import CONTENT_TYPE as EVENT_STREAM
from chatbot.event_stream import SEND_MESSAGE_DESCRIPTION, StreamEvent, sse_events, started, wants_event_stream
from chatbot.settings import ConversationsSettings
from chatbot.wiring import conversations_service

logger = Logger()
tracer = Tracer()
metrics = Metrics()
settings = ConversationsSettings.from_environment()
service = conversations_service(settings)

cors = CORSConfig(
    allow_origin=settings.cors_allow_origin,
    allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
    expose_headers=["Retry-After"],
    max_age=600,
)
app = APIGatewayRestResolver(enable_validation=True, cors=cors)
register_error_handlers(app)

ConversationId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")]
JobId = Annotated[str, Path(min_length=1, max_length=128, description="A transcript job of the caller's.")]
Limit = Annotated[int, Query(ge=1, le=100, description="Page size.")]
Cursor = Annotated[str | None, Query(max_length=2048, description="`next_cursor` of the previous page.")]
Accept = Annotated[
    str | None, Header(alias="Accept", max_length=1024, description="`text/event-stream` streams the answer.")
]
IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255, description="Retry-safe sending.")
]


@app.post("/v1/conversations", status_code=HTTPStatus.CREATED, summary="Start a conversation")
def create_conversation(body: CreateConversationRequest) -> Conversation:
    return service.create_conversation(caller_id(app), body.title, body.system_prompt)


@app.post(
    "/v1/transcripts/<job_id>/conversations",
    status_code=HTTPStatus.CREATED,
    summary="Start a conversation about a summarized call",
)
def create_call_conversation(job_id: JobId, body: CreateCallConversationRequest | None = None) -> Conversation:
    details = body or CreateCallConversationRequest()
    return service.create_call_conversation(caller_id(app), job_id, details.title, details.system_prompt)


@app.get("/v1/conversations", summary="The caller's conversations, most recently active first")
def list_conversations(limit: Limit = 20, cursor: Cursor = None) -> ConversationList:
    return service.list_conversations(caller_id(app), limit, cursor)


@app.get("/v1/conversations/<conversation_id>", summary="One conversation's metadata")
def get_conversation(conversation_id: ConversationId) -> Conversation:
    return service.get_conversation(caller_id(app), conversation_id)


@app.patch("/v1/conversations/<conversation_id>", summary="Rename a conversation (and optionally change its prompt)")
def update_conversation(conversation_id: ConversationId, body: UpdateConversationRequest) -> Conversation:
    # Only the fields sent change; an explicit `"system_prompt": null` removes the prompt.
    return service.update_conversation(caller_id(app), conversation_id, body.model_dump(exclude_unset=True))


@app.delete("/v1/conversations/<conversation_id>", status_code=HTTPStatus.NO_CONTENT, summary="Delete everything")
def delete_conversation(conversation_id: ConversationId) -> Response[None]:
    service.delete_conversation(caller_id(app), conversation_id)
    return Response(status_code=HTTPStatus.NO_CONTENT)


@app.get("/v1/conversations/<conversation_id>/messages", summary="Messages, oldest first unless order=desc")
def list_messages(
    conversation_id: ConversationId, limit: Limit = 50, cursor: Cursor = None, order: Literal["asc", "desc"] = "asc"
) -> MessageList:
    return service.list_messages(caller_id(app), conversation_id, limit, cursor, newest_first=order == "desc")


@app.post(
    "/v1/conversations/<conversation_id>/messages",
    status_code=HTTPStatus.CREATED,
    summary="Send a message, get the answer (whole, or streamed as Server-Sent Events)",
    description=SEND_MESSAGE_DESCRIPTION,
    responses={
        201: {
            "description": "The stored exchange; with `Accept: text/event-stream`, a 200 event stream instead.",
            "content": {"application/json": {"model": Exchange}},
        },
        200: {
            "description": "With `Accept: text/event-stream`: `delta` events, then one `done` or `error`.",
            "content": {"text/event-stream": {"model": StreamEvent}},
        },
        429: QUOTA_EXCEEDED_RESPONSE,
    },
)
# No return annotation (Powertools would validate a stream as an Exchange): the buffered answer is validated here.
def send_message(
    conversation_id: ConversationId,
    body: SendMessageRequest,
    idempotency_key: IdempotencyKey = None,
    accept: Accept = None,
):
    # The key is stored with the message itself, so a resend after a failure or a success is exact.
    arguments = (caller_id(app), conversation_id, body.content, app.lambda_context.get_remaining_time_in_millis)
    if not wants_event_stream(accept):
        return Exchange.model_validate(service.send_message(*arguments, idempotency_key=idempotency_key))
    items = started(service.stream_message(*arguments, idempotency_key=idempotency_key))
    return Response(
        status_code=HTTPStatus.OK,
        content_type=EVENT_STREAM,
        body=sse_events(items),
        headers={"Cache-Control": "no-cache"},
    )


@app.post(
    "/v1/conversations/<conversation_id>/messages/retry",
    status_code=HTTPStatus.CREATED,
    summary="Answer the newest message if the model failed on it",
    responses=quota_limited(HTTPStatus.CREATED, Exchange),
)
def retry_message(conversation_id: ConversationId) -> Exchange:
    return service.retry_last_message(caller_id(app), conversation_id, app.lambda_context.get_remaining_time_in_millis)


@app.delete(
    "/v1/conversations/<conversation_id>/messages", status_code=HTTPStatus.NO_CONTENT, summary="Clear the conversation"
)
def clear_conversation(conversation_id: ConversationId) -> Response[None]:
    service.clear_conversation(caller_id(app), conversation_id, app.lambda_context.get_remaining_time_in_millis)
    return Response(status_code=HTTPStatus.NO_CONTENT)


SUMMARY_PENDING = {
    "description": "Too long to summarize within the request: made in the background; poll the Location header.",
    "content": {"application/json": {"model": SummaryPending}},
}


@app.post(
    "/v1/conversations/<conversation_id>/summary",
    summary="Summarize the whole conversation (cached; long ones in the background)",
    responses={
        200: {"description": "The summary, made now or cached.", "content": {"application/json": {"model": Summary}}},
        202: SUMMARY_PENDING,
        429: QUOTA_EXCEEDED_RESPONSE,
    },
)
def summarize_conversation(conversation_id: ConversationId, body: SummaryRequest | None = None):
    labels = body or SummaryRequest()
    result = service.summarize_conversation(caller_id(app), conversation_id, labels.user_label, labels.assistant_label)
    return summary_response(result)


@app.get(
    "/v1/conversations/<conversation_id>/summary",
    summary="The newest summary, or the state of one being made in the background",
    responses={
        200: {
            "description": "The summary (`stale` if messages changed since it was requested), or `failed` with why.",
            "content": {"application/json": {"model": Summary | SummaryFailed}},
        },
        202: SUMMARY_PENDING,
        404: {
            "description": "No such conversation, or no summary requested since it was created or cleared.",
            "content": {"application/json": {"model": ErrorMessage}},
        },
    },
)
def get_summary(conversation_id: ConversationId):
    return summary_response(service.summary_status(caller_id(app), conversation_id))


def summary_response(result: dict):
    """200 with a summary or a failure, 202 with where to poll while the summary is made in the background."""
    if result["status"] == "pending":
        # Relative to the request's URL (GET on the same resource), so it holds behind any stage or base path.
        headers = {"Location": "summary", "Retry-After": str(result["retry_after_s"])}
        body = SummaryPending.model_validate(result).model_dump()
        return Response(HTTPStatus.ACCEPTED, content_type="application/json", body=body, headers=headers)
    return SummaryFailed.model_validate(result) if result["status"] == "failed" else Summary.model_validate(result)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
