"""Per-function settings: each function's class holds exactly the variables its template entry sets."""

import pytest
from chatbot.conversations.policy import ChatPolicy
from chatbot.settings import (
    BatchSummarizeSettings,
    ConversationCleanupSettings,
    ConversationsSettings,
    ConversationSummarySettings,
    OrphanSweepSettings,
    SettingsError,
    TranscriptsApiSettings,
)

from local.lambda_runtime import FunctionDefinition

SETTINGS_OF_FUNCTION = {
    "ConversationsFunction": ConversationsSettings,
    "ConversationsStreamFunction": ConversationsSettings,
    "TranscriptsApiFunction": TranscriptsApiSettings,
    "BatchSummarizeFunction": BatchSummarizeSettings,
    "ConversationCleanupFunction": ConversationCleanupSettings,
    "OrphanSweepFunction": OrphanSweepSettings,
    "SummarizeConversationFunction": ConversationSummarySettings,
}


@pytest.mark.parametrize(("function", "settings_class"), SETTINGS_OF_FUNCTION.items())
def test_each_settings_class_reads_exactly_what_its_template_entry_sets(template, function, settings_class):
    # Given the function's environment as the template resolves it (Globals + its own Environment)
    environment = FunctionDefinition.from_template(template, function).environment
    read = {field.alias for field in settings_class.model_fields.values()}

    # Then the class reads every variable the template sets (other than Powertools' and Lambda's), and nothing else
    assert read == {name for name in environment if not name.startswith(("POWERTOOLS_", "AWS_LAMBDA_"))}
    # And loading that environment works
    assert settings_class.from_environment(environment).table_name == environment["TABLE_NAME"]


def test_the_batch_function_keeps_its_longer_model_budget(template):
    environment = FunctionDefinition.from_template(template, "BatchSummarizeFunction").environment
    settings = BatchSummarizeSettings.from_environment(environment)
    assert (settings.model_timeout_s, settings.model_max_attempts) == (120.0, 5)
    # while the API's model calls keep the 24 s / 2 attempts that fit API Gateway's 29 s
    assert (ChatPolicy().model_timeout_s, ChatPolicy().model_max_attempts) == (24.0, 2)


def test_numbers_are_parsed_from_strings():
    environment = {
        "TABLE_NAME": "genai-chatbot-test",
        "SAGEMAKER_ENDPOINT_NAME": "genai-chatbot",
        "CHAT_COMPONENT_NAME": "chat",
        "SUMMARIZER_COMPONENT_NAME": "summarizer",
        "CONVERSATION_TTL_DAYS": "7",
        "TRANSCRIPTS_BUCKET": "genai-chatbot-transcripts",
        "SUMMARY_QUEUE_URL": "genai-chatbot-summary-requests",
    }
    assert ConversationsSettings.from_environment(environment).conversation_ttl_days == 7


def test_missing_and_invalid_variables_are_all_named():
    # Given a missing table name and a negative TTL
    environment = {
        "SAGEMAKER_ENDPOINT_NAME": "genai-chatbot",
        "CHAT_COMPONENT_NAME": "chat",
        "SUMMARIZER_COMPONENT_NAME": "summarizer",
        "CONVERSATION_TTL_DAYS": "-1",
    }
    # When loading
    with pytest.raises(SettingsError) as error:
        ConversationsSettings.from_environment(environment)
    # Then both problems are reported by their environment variable names
    assert "TABLE_NAME" in str(error.value)
    assert "CONVERSATION_TTL_DAYS" in str(error.value)


def test_answer_budget_must_leave_room_for_the_prompt():
    with pytest.raises(ValueError, match="chat_max_new_tokens"):
        ChatPolicy(chat_context_tokens=1024, chat_max_new_tokens=900)
