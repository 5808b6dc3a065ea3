"""Property-based requests generated from the committed openapi.json, sent to the local gateway:
no input may produce a server error, and every error body is JSON with a message."""

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings

from local.openapi import OPENAPI_PATH

pytestmark = pytest.mark.integration
EXAMPLES_PER_OPERATION = 12
SCHEMA = schemathesis.openapi.from_path(OPENAPI_PATH)
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_no_server_errors(api, operation):
    session = requests.Session()
    seen_statuses = set()

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def check(case):
        response = case.call(
            base_url=api, session=session, headers={"Authorization": "Bearer local-fuzzer"}, timeout=30
        )
        seen_statuses.add(response.status_code)
        assert response.status_code < 500, f"{response.status_code} {response.text}\n{case.as_curl_command()}"
        if response.status_code >= 400:
            assert response.json()["message"]

    check()
    assert seen_statuses  # the operation was exercised
