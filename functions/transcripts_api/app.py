"""Transcripts REST API: HTTP onto chatbot.transcript_jobs.api (all logic lives in the layer)."""

from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.utilities.typing import LambdaContext
from chatbot.api_errors import caller_id, quota_limited, register_error_handlers
from chatbot.settings import TranscriptsApiSettings
from chatbot.transcript_jobs.api import Job, JobList, UploadRequest, UploadResponse
from chatbot.wiring import transcripts_api_service

logger = Logger()
tracer = Tracer()
metrics = Metrics()
settings = TranscriptsApiSettings.from_environment()
service = transcripts_api_service(settings)

cors = CORSConfig(
    allow_origin=settings.cors_allow_origin,
    allow_headers=["Authorization", "Content-Type"],
    expose_headers=["Retry-After"],  # of a 429 (per-user upload quota)
    max_age=600,
)
app = APIGatewayRestResolver(enable_validation=True, cors=cors)
register_error_handlers(app)

Limit = Annotated[int, Query(ge=1, le=100, description="Page size.")]
Cursor = Annotated[str | None, Query(max_length=2048, description="`next_cursor` of the previous page.")]


@app.post(
    "/v1/transcripts",
    status_code=HTTPStatus.CREATED,
    summary="Request a presigned upload form for a transcript",
    responses=quota_limited(HTTPStatus.CREATED, UploadResponse),
)
def request_upload(body: UploadRequest) -> UploadResponse:
    return service.request_upload(caller_id(app), body.filename)


@app.get("/v1/transcripts", summary="The caller's transcript jobs, newest first")
def list_jobs(limit: Limit = 20, cursor: Cursor = None) -> JobList:
    return service.list_jobs(caller_id(app), limit, cursor)


@app.get("/v1/transcripts/<job_id>", summary="One transcript job, with its summary when it succeeded")
def get_job(job_id: str) -> Job:
    return service.get_job(caller_id(app), job_id)


@app.delete(
    "/v1/transcripts/<job_id>",
    status_code=HTTPStatus.NO_CONTENT,
    summary="Delete a transcript job with its upload, summary and failure record",
)
def delete_job(job_id: str) -> Response[None]:
    service.delete_job(caller_id(app), job_id)
    return Response(status_code=HTTPStatus.NO_CONTENT)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
