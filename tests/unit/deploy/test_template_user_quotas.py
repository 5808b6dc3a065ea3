"""template.yaml: the per-user quotas of model requests reach the functions that count them, which may write
their counters; and the counters' TTL removals do not trigger conversation cleanup."""

from __future__ import annotations

import pytest
from chatbot.quotas import quota_pk
from chatbot.settings import ConversationsSettings, TranscriptsApiSettings

from bench.loadtest import LOAD_TEST_PARAMETERS
from local.events import ttl_removal_stream_event
from local.lambda_runtime import FunctionDefinition
from local.stack import LocalStack, endpoint_parameters
from local.streams import filter_patterns, matches
from local.template import DEFAULT_TEMPLATE_PATH, Template

CHAT_FUNCTIONS = ["ConversationsFunction", "ConversationsStreamFunction"]


@pytest.mark.parametrize("function", CHAT_FUNCTIONS)
@pytest.mark.parametrize(("overrides", "limit"), [({}, 20), ({"UserChatRequestsPerMinute": "7"}, 7)])
def test_the_chat_quota_reaches_every_function_that_sends(function, overrides, limit):
    # Given the stage's parameters
    template = Template(DEFAULT_TEMPLATE_PATH, overrides)
    # When the function's environment is resolved
    environment = FunctionDefinition.from_template(template, function).environment
    # Then its settings hold the stage's quota
    assert ConversationsSettings.from_environment(environment).user_chat_requests_per_minute == limit


@pytest.mark.parametrize(("overrides", "limit"), [({}, 30), ({"UserTranscriptUploadsPerHour": "0"}, 0)])
def test_the_upload_quota_reaches_the_transcripts_api(overrides, limit):
    template = Template(DEFAULT_TEMPLATE_PATH, overrides)
    environment = FunctionDefinition.from_template(template, "TranscriptsApiFunction").environment
    assert TranscriptsApiSettings.from_environment(environment).user_transcript_uploads_per_hour == limit


def test_the_transcripts_api_may_update_quota_counters_only():
    # Given the transcripts API's policy
    template = Template()
    (policy,) = template.resolve(template.resources["TranscriptsApiFunction"]["Properties"]["Policies"])
    # Then it may update items, but only under the quota counters' partition keys
    (updates,) = [statement for statement in policy["Statement"] if "dynamodb:UpdateItem" in statement["Action"]]
    assert updates["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["QUOTA#*"]}}
    assert quota_pk("some-sub").startswith("QUOTA#")


def test_the_ttl_removal_of_a_quota_counter_does_not_start_a_conversation_cleanup():
    # Given the cleanup function's stream filters (as local.streams applies them)
    patterns = filter_patterns(Template(), "ConversationCleanupFunction")
    conversation, counter = ttl_removal_stream_event(["a-conversation", "x"])["Records"]
    counter["dynamodb"]["Keys"] = {"pk": {"S": quota_pk("some-sub")}, "sk": {"S": "CHAT#1764590400"}}
    # Then an expired conversation passes one and an expired quota counter passes none
    assert any(matches(pattern, conversation) for pattern in patterns)
    assert not any(matches(pattern, counter) for pattern in patterns)


def test_the_load_test_stack_keeps_the_quotas_on_but_out_of_reach():
    # Given the local stack the load test starts (each locust user stands for many people)
    stack = LocalStack(parameters=LOAD_TEST_PARAMETERS)
    # When its functions' environments are resolved
    template = Template(DEFAULT_TEMPLATE_PATH, stack.template_parameters())
    chat = FunctionDefinition.from_template(template, "ConversationsStreamFunction").environment
    uploads = FunctionDefinition.from_template(template, "TranscriptsApiFunction").environment
    # Then the quotas are counted, with limits far above the run's pace, and the endpoint's names are kept
    assert ConversationsSettings.from_environment(chat).user_chat_requests_per_minute >= 10_000
    assert TranscriptsApiSettings.from_environment(uploads).user_transcript_uploads_per_hour >= 10_000
    assert stack.template_parameters()["EndpointName"] == endpoint_parameters(stack.config)["EndpointName"]
