"""`make loadtest` says why requests failed: each failed request's status and body go to the ledger, and the run
prints them grouped by cause, with counts and one example body each, in a table of bounded length."""

from __future__ import annotations

import json

import requests

from bench.loadtest import EXAMPLE_CHARS, MAX_CAUSES, error_causes, print_error_causes
from bench.reconcile import FAILURE_BODY_CHARS, FailedRequest, Ledger, failed_request

SEND = "POST /v1/conversations/[id]/messages"


def response(status: int, body: str) -> requests.Response:
    answer = requests.Response()
    answer.status_code = status
    answer._content = body.encode()
    return answer


def test_a_failed_request_is_recorded_with_its_status_and_body(tmp_path):
    # Given a load test ledger and a request that failed with the API's JSON error
    ledger = Ledger(tmp_path / "ledger.jsonl")
    body = json.dumps({"message": "The model is busy; retry later.", "retry_after": 2})

    # When locust reports it, and a request that got no response at all
    ledger.failure(
        failed_request("POST", "/v1/conversations/[id]/messages", response(503, body), Exception("HTTP 503"))
    )
    ledger.failure(failed_request("PUT", "S3 PUT (presigned)", response(0, ""), ConnectionError("refused")))

    # Then both are read back with what the client saw, and the ledger's other records are unaffected
    assert ledger.failures() == [
        FailedRequest(SEND, 503, body),
        FailedRequest("PUT S3 PUT (presigned)", 0, "ConnectionError('refused')"),
    ]
    assert ledger.read() == ([], [])


def test_a_huge_body_is_kept_bounded():
    # Given a failure whose body is megabytes long
    big = response(500, "x" * 5_000_000)

    # When it is recorded
    failed = failed_request("GET", "/v1/transcripts", big, Exception("HTTP 500"))

    # Then only its beginning is kept
    assert failed.body == "x" * FAILURE_BODY_CHARS


def test_failures_are_counted_by_route_status_and_message_with_one_example_each():
    # Given failures for three reasons, with request ids that differ per request (API JSON and S3 XML errors)
    busy = [
        FailedRequest(SEND, 503, json.dumps({"message": "The model is busy.", "request_id": str(n)})) for n in range(3)
    ]
    timeout = [FailedRequest(SEND, 504, '{"message": "Endpoint request timed out"}')]
    put = "PUT S3 PUT (presigned)"
    denied = [
        FailedRequest(
            put,
            403,
            f"<Error><Code>AccessDenied</Code><Message>Request has expired</Message><RequestId>{n}</RequestId></Error>",
        )
        for n in range(2)
    ]

    # When the causes are tallied
    causes = error_causes([busy[0], timeout[0], *denied, *busy[1:]])

    # Then one row per cause, most frequent first, each with its count and the first body as its example
    assert [(c.route, c.status, c.message, c.count) for c in causes] == [
        (SEND, 503, "The model is busy.", 3),
        (put, 403, "AccessDenied: Request has expired", 2),
        (SEND, 504, "Endpoint request timed out", 1),
    ]
    assert causes[0].example == busy[0].body


def test_the_printed_table_is_bounded_and_says_what_it_left_out(capsys):
    # Given many distinct causes, one with a long body
    failures = [FailedRequest(f"GET /route-{n}", 500, f"error {n}") for n in range(MAX_CAUSES + 5)]
    failures += [FailedRequest("GET /route-0", 500, "error 0")] * 2
    failures.append(FailedRequest("GET /html", 502, "<html>" + "y" * 1000))

    # When they are printed
    print_error_causes(failures)
    lines = capsys.readouterr().out.splitlines()

    # Then the most frequent cause leads, at most MAX_CAUSES rows are shown, then a count of the rest
    assert lines[0] == f"errors: {len(failures)} failed requests, {MAX_CAUSES + 6} causes"
    assert "GET /route-0: error 0" in lines[2] and lines[2].split()[0] == "3"
    assert lines[-1] == "  ... 6 more causes (6 requests)"
    assert all(len(line) < EXAMPLE_CHARS + 80 for line in lines)


def test_a_run_without_failures_says_so(capsys):
    print_error_causes([])
    assert capsys.readouterr().out == "errors: none\n"
