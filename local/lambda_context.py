"""The Lambda context object the local stack passes to handlers (local gateway and S3 pipeline poller alike)."""

from __future__ import annotations

import time
import uuid

from local.template import LOCAL_ACCOUNT_ID, LOCAL_REGION


class LocalLambdaContext:
    """What Lambda passes as `context` for one invocation: names, memory, a fresh request id, and the time left
    before the function's timeout (counted from when the invocation starts)."""

    def __init__(self, function_name: str, timeout_s: float, memory_mb: int):
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:function:{function_name}"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))
