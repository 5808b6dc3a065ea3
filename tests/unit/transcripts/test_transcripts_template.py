"""template.yaml's transcript pipeline: the wiring the code relies on, and the reliability settings."""

from pathlib import Path

import pytest
from chatbot.summarization import SUMMARIZER_MAX_INPUT_TOKENS, summarize_turns
from chatbot.tokens import estimate_tokens
from chatbot.transcript_jobs.keys import (
    ASSUMED_SUMMARIZER_CALL_S,
    FAILED_PREFIX,
    INCOMING_PREFIX,
    SUMMARIES_PREFIX,
    TRANSCRIPT_MAX_BYTES,
    TRANSCRIPT_MAX_TOKENS,
)
from chatbot.transcript_parsing import parse_transcript
from chatbot.wiring import OUTCOME_WRITE_RESERVE_MS

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "transcripts"


@pytest.fixture
def resources(template):
    return template.raw["Resources"]


def test_the_bucket_notifies_the_queue_for_new_objects_under_incoming(template, resources):
    # Given
    bucket = resources["TranscriptsBucket"]["Properties"]

    # When
    (notification,) = bucket["NotificationConfiguration"]["QueueConfigurations"]

    # Then the filter prefix is the one the code summarizes
    assert notification["Event"] == "s3:ObjectCreated:*"
    assert notification["Queue"] == {"Fn::GetAtt": ["TranscriptsQueue", "Arn"]}
    assert notification["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": INCOMING_PREFIX}]


def test_the_queue_policy_names_the_bucket_by_a_literal_arn_to_avoid_a_dependency_cycle(template, resources):
    # Given
    (statement,) = resources["TranscriptsQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    source_arn = statement["Condition"]["ArnEquals"]["aws:SourceArn"]

    # When / Then: no reference to the bucket resource, yet the same ARN once resolved
    assert "TranscriptsBucket" not in str(source_arn)
    assert template.resolve(source_arn) == f"arn:aws:s3:::{template.physical_name('TranscriptsBucket')}"
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"} and statement["Action"] == "sqs:SendMessage"
    assert resources["TranscriptsBucket"]["DependsOn"] == "TranscriptsQueuePolicy"


def test_the_bucket_is_encrypted_private_and_tls_only(resources):
    # Given
    bucket = resources["TranscriptsBucket"]["Properties"]
    (deny,) = resources["TranscriptsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]

    # Then
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert all(bucket["PublicAccessBlockConfiguration"].values()) and len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_retries_end_in_the_dlq_and_the_visibility_timeout_covers_six_function_timeouts(template, resources):
    # Given
    queue = resources["TranscriptsQueue"]["Properties"]
    dead_letter_queue = resources["TranscriptsDeadLetterQueue"]["Properties"]
    function_timeout = template.function_property("BatchSummarizeFunction", "Timeout")

    # Then
    assert queue["VisibilityTimeout"] >= 6 * function_timeout
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["TranscriptsDeadLetterQueue", "Arn"]}
    assert 2 <= queue["RedrivePolicy"]["maxReceiveCount"] <= 5
    assert dead_letter_queue["MessageRetentionPeriod"] > queue["MessageRetentionPeriod"]


def test_the_batch_function_reports_partial_failures_with_bounded_concurrency(template):
    # Given
    function = template.resolve(template.resources["BatchSummarizeFunction"]["Properties"])
    event = function["Events"]["TranscriptNotifications"]["Properties"]

    # Then
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert int(event["ScalingConfig"]["MaximumConcurrency"]) >= 2
    assert function["Timeout"] > template.function_property("TranscriptsApiFunction", "Timeout")
    environment = template.function_environment("BatchSummarizeFunction")
    # A job lease outlives the function, so a running worker is never taken over.
    assert int(environment["JOB_LEASE_S"]) > function["Timeout"]
    assert float(environment["MODEL_TIMEOUT_S"]) < function["Timeout"]


@pytest.mark.parametrize("function", ["BatchSummarizeFunction", "TranscriptsApiFunction"])
def test_function_permissions_are_scoped_to_prefixes_and_named_actions(template, function):
    # Given
    (policy,) = template.resolve(template.resources[function]["Properties"]["Policies"])

    # Then no wildcard actions, and S3 access only below the prefixes the function uses
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in action for action in actions)
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for resource in resources:
            if resource.startswith("arn:aws:s3:::") and "/" not in resource:
                # bucket-level (listing): only with the keys limited to those prefixes
                prefixes = statement["Condition"]["StringLike"]["s3:prefix"]
                assert {prefix.removesuffix("*") for prefix in prefixes} <= {
                    INCOMING_PREFIX,
                    SUMMARIES_PREFIX,
                    FAILED_PREFIX,
                }
            elif resource.startswith("arn:aws:s3:::"):
                prefix = resource.split("/", 1)[1]
                assert prefix.removesuffix("*") in (
                    INCOMING_PREFIX,
                    f"{INCOMING_PREFIX}uploads/",
                    SUMMARIES_PREFIX,
                    FAILED_PREFIX,
                )


def test_the_batch_function_knows_the_queues_max_receive_count(resources):
    # Given / When
    redrive = resources["TranscriptsQueue"]["Properties"]["RedrivePolicy"]
    environment = resources["BatchSummarizeFunction"]["Properties"]["Environment"]["Variables"]

    # Then the function recognises a message's last receive as the queue defines it
    assert int(environment["QUEUE_MAX_RECEIVE_COUNT"]) == redrive["maxReceiveCount"]


def test_each_invocation_summarizes_one_transcript(resources):
    # Given / When
    events = resources["BatchSummarizeFunction"]["Properties"]["Events"]["TranscriptNotifications"]["Properties"]

    # Then one slow transcript cannot time out others in its batch, and its failure is reported alone
    assert events["BatchSize"] == 1
    assert events["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


SAMPLE = (FIXTURES / "plain_text.txt").read_bytes()
# The sample repeated up to the byte limit (cut after a whole line), and up to the token limit.
AT_THE_BYTE_LIMIT = SAMPLE * (TRANSCRIPT_MAX_BYTES // len(SAMPLE)) + SAMPLE[: TRANSCRIPT_MAX_BYTES % len(SAMPLE)]
AT_THE_BYTE_LIMIT = AT_THE_BYTE_LIMIT[: AT_THE_BYTE_LIMIT.rfind(b"\n") + 1]
AT_THE_TOKEN_LIMIT = SAMPLE * (TRANSCRIPT_MAX_TOKENS // estimate_tokens(SAMPLE.decode()))


@pytest.mark.parametrize(
    "data",
    [AT_THE_BYTE_LIMIT, AT_THE_TOKEN_LIMIT],
    ids=["largest-allowed-file", "longest-allowed-transcript"],
)
def test_the_largest_allowed_file_finishes_within_the_timeout_at_the_assumed_summarizer_speed(resources, data):
    # Given the worst case per byte and per token, plain "Speaker: text" lines, as large (or as long) as allowed,
    # and summaries as long as the batch function asks for (160 tokens)
    calls = []

    def summarize(texts):
        calls.append(len(texts))
        return [" ".join(["the customer reported that the router keeps dropping"] * 12) for _ in texts]

    # When it is parsed and summarized map-reduce, counting the summarizer's calls
    summarize_turns(parse_transcript(data).turns, summarize, max_input_tokens=SUMMARIZER_MAX_INPUT_TOKENS)

    # Then at the assumed speed, the calls fit in the timeout less the reserve kept for the last call and the writes
    function = resources["BatchSummarizeFunction"]["Properties"]
    reserve_s = float(function["Environment"]["Variables"]["MODEL_TIMEOUT_S"]) + OUTCOME_WRITE_RESERVE_MS / 1000
    assert len(calls) * ASSUMED_SUMMARIZER_CALL_S <= function["Timeout"] - reserve_s - 10  # 10 s: download, parse
