import pytest
from chatbot.settings import SettingsError, load_settings

REQUIRED = {
    "TABLE_NAME": "genai-chatbot-test",
    "SAGEMAKER_ENDPOINT_NAME": "genai-chatbot",
    "CHAT_COMPONENT_NAME": "chat",
    "SUMMARIZER_COMPONENT_NAME": "summarizer",
}


def test_required_names_come_from_the_template_variables():
    # Given only the variables template.yaml's Globals set
    # When settings are loaded
    settings = load_settings(REQUIRED)
    # Then the names are taken and the rest has working defaults
    assert (settings.table_name, settings.endpoint_name) == ("genai-chatbot-test", "genai-chatbot")
    assert (settings.chat_component_name, settings.summarizer_component_name) == ("chat", "summarizer")
    assert settings.chat_prompt_budget_tokens == settings.chat_context_tokens - settings.chat_max_new_tokens


def test_numbers_are_parsed_from_strings():
    settings = load_settings({**REQUIRED, "CONVERSATION_TTL_DAYS": "7", "CHAT_TEMPERATURE": "0.2"})
    assert settings.conversation_ttl_days == 7
    assert settings.chat_temperature == pytest.approx(0.2)


def test_missing_and_invalid_variables_are_all_named():
    # Given a missing table name and a negative TTL
    environ = {key: value for key, value in REQUIRED.items() if key != "TABLE_NAME"}
    # When loading
    with pytest.raises(SettingsError) as error:
        load_settings({**environ, "CONVERSATION_TTL_DAYS": "-1"})
    # Then both problems are reported by their environment variable names
    assert "TABLE_NAME" in str(error.value)
    assert "CONVERSATION_TTL_DAYS" in str(error.value)


def test_answer_budget_must_leave_room_for_the_prompt():
    with pytest.raises(SettingsError, match="CHAT_MAX_NEW_TOKENS"):
        load_settings({**REQUIRED, "CHAT_CONTEXT_TOKENS": "1024", "CHAT_MAX_NEW_TOKENS": "900"})
