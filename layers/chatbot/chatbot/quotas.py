"""Per-user quotas on requests that reach the model, so one account cannot monopolise the GPU.

API Gateway's usage plans count per API key, not per Cognito user, and the stage throttle is shared by every
caller; so each user's requests are counted here, in fixed windows, in the shared table:

    quota counter  pk=QUOTA#<sub>  sk=<kind>#<window start, epoch s>  count=<requests taken>  expires_at=<window end>

One conditional UpdateItem per request adds 1 while the count is under the limit (the first request of a window
creates the item); DynamoDB's TTL removes the item after its window.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError

from chatbot.dynamodb import is_throttled, serialize
from chatbot.errors import QuotaExceededError

logger = Logger(child=True)
metrics = Metrics()

QUOTA_PREFIX = "QUOTA#"


@dataclass(frozen=True)
class QuotaLimit:
    kind: str  # part of the counter's sort key, e.g. CHAT
    per_window: int  # requests a user may make in one window; 0: no quota
    window_s: int
    description: str  # how the caller is told, e.g. "chat requests per minute"


def chat_requests_per_minute(limit: int) -> QuotaLimit:
    """Chat sends (buffered or streamed), retries and conversation summaries: each one is a model request."""
    return QuotaLimit("CHAT", limit, 60, "chat requests per minute")


def transcript_uploads_per_hour(limit: int) -> QuotaLimit:
    """Upload forms for transcripts: each upload becomes summarizer work."""
    return QuotaLimit("TRANSCRIPT_UPLOAD", limit, 3600, "transcript uploads per hour")


def quota_pk(user: str) -> str:
    return f"{QUOTA_PREFIX}{user}"


class UserQuota:
    """One limit, counted per user in the table."""

    def __init__(self, table_name: str, dynamodb: Any, limit: QuotaLimit, clock: Callable[[], float] = time.time):
        self._table_name = table_name
        self._dynamodb = dynamodb
        self._limit = limit
        self._clock = clock

    def take(self, user: str) -> None:
        """Count one request of `user`; QuotaExceededError when the window's limit is reached already."""
        if self._limit.per_window <= 0:
            return
        now = self._clock()
        window_start = int(now // self._limit.window_s) * self._limit.window_s
        window_end = window_start + self._limit.window_s
        try:
            self._dynamodb.update_item(
                TableName=self._table_name,
                Key=serialize({"pk": quota_pk(user), "sk": f"{self._limit.kind}#{window_start}"}),
                UpdateExpression="ADD #count :one SET expires_at = :window_end",
                ConditionExpression="attribute_not_exists(#count) OR #count < :limit",
                ExpressionAttributeNames={"#count": "count"},
                ExpressionAttributeValues=serialize(
                    {":one": 1, ":limit": self._limit.per_window, ":window_end": window_end}
                ),
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                metrics.add_metric(name="QuotaExceeded", unit=MetricUnit.Count, value=1)
                raise QuotaExceededError(
                    f"You have used your {self._limit.per_window} {self._limit.description}; "
                    "retry after the time in Retry-After.",
                    retry_after_s=max(1, math.ceil(window_end - now)),
                ) from None
            if not is_throttled(exc):
                raise
            # Fail open: a throttled counter means the table is overloaded, not that this user is; the stage
            # throttle and the reserved concurrency still bound the endpoint, and the request's own writes meet
            # the same throttling (503) if it lasts. Failing closed would refuse everyone for a counter's sake.
            metrics.add_metric(name="QuotaCheckSkipped", unit=MetricUnit.Count, value=1)
            logger.warning("quota counter throttled; request allowed", extra={"kind": self._limit.kind})
