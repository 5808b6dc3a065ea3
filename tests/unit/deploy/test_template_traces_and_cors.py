"""template.yaml: what the functions send to X-Ray (no content), and CORS for every function behind the API."""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Any

import pytest
from aws_lambda_powertools import Tracer

from local.template import DEFAULT_TEMPLATE_PATH, Template

FUNCTION = "AWS::Serverless::Function"


def functions(template: Template) -> list[str]:
    return sorted(template.resources_of_type(FUNCTION))


def api_functions(template: Template) -> list[str]:
    return [
        name
        for name in functions(template)
        if any(
            event.get("Type") == "Api"
            for event in ((template.resources[name].get("Properties") or {}).get("Events") or {}).values()
        )
    ]


def test_no_function_sends_handler_responses_or_exceptions_to_xray(template):
    # Given every function of the stack, traced
    names = functions(template)
    assert names

    # When their environments are read (Globals merged with their own)
    environments = {name: template.function_environment(name) for name in names}

    # Then tracing stays on, but Powertools records neither handler responses nor exceptions as trace metadata
    for name, environment in environments.items():
        assert template.function_property(name, "Tracing") == "Active", name
        assert environment.get("POWERTOOLS_TRACER_CAPTURE_RESPONSE") == "false", name
        assert environment.get("POWERTOOLS_TRACER_CAPTURE_ERROR") == "false", name


class RecordingSegment:
    """Keeps what a tracer would send to X-Ray."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        self.sent.append((key, value))

    def put_annotation(self, key: str, value: Any) -> None:
        self.sent.append((key, value))


class RecordingProvider:
    def __init__(self, segment: RecordingSegment) -> None:
        self.segment = segment

    @contextmanager
    def in_subsegment(self, name=None, **kwargs):
        yield self.segment


def test_with_the_templates_environment_powertools_records_no_answer_and_no_error_text(template, monkeypatch):
    # Given a function's environment from the template, and a tracer that keeps what it would send
    for name, value in template.function_environment("ConversationsFunction").items():
        if name.startswith("POWERTOOLS_TRACER_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setattr(Tracer, "_config", copy.copy(Tracer._default_config))  # tracer settings are shared
    segment = RecordingSegment()
    tracer = Tracer(service="test", disabled=False, auto_patch=False, provider=RecordingProvider(segment))

    @tracer.capture_lambda_handler
    def answer(event, context):
        return {"statusCode": 201, "body": "the model's secret answer"}

    @tracer.capture_method
    def summarize():
        raise ValueError("could not summarize: the customer's secret words")

    # When a handler answers and a traced method fails
    answer({}, None)
    with pytest.raises(ValueError):
        summarize()

    # Then the trace got its annotations, but neither the answer nor the exception (Powertools' part only: the X-Ray
    # SDK itself still records the message of an exception that escapes a traced function as the fault's cause)
    assert segment.sent
    assert "secret" not in repr(segment.sent)


def test_every_api_function_allows_only_the_configured_origin():
    # Given a stage whose UI lives at one origin
    template = Template(DEFAULT_TEMPLATE_PATH, {"CorsAllowOrigin": "https://chat.example.com"})

    # When the environments of the functions behind the API are read
    names = api_functions(template)
    environments = {name: template.function_environment(name) for name in names}

    # Then each one answers CORS for that origin, not the default "*"
    assert {"ConversationsFunction", "TranscriptsApiFunction"} <= set(names)
    assert {name: env.get("CORS_ALLOW_ORIGIN") for name, env in environments.items()} == dict.fromkeys(
        names, "https://chat.example.com"
    )
