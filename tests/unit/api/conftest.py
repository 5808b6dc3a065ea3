"""The conversations handler loaded as Lambda loads it, on moto, with the endpoint stubbed by botocore.

The stubbed sagemaker-runtime client reaches the handler through the function's wiring
(`chatbot.wiring.conversations_service`), the same function the handler builds its service with."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from chatbot.wiring import conversations_service


@pytest.fixture
def sagemaker_runtime():
    # As the deployed client retries: adaptive, at most two attempts per call.
    config = Config(retries={"mode": "adaptive", "total_max_attempts": 2})
    return boto3.client("sagemaker-runtime", region_name="us-east-1", config=config)


@pytest.fixture
def endpoint(sagemaker_runtime):
    """Stubber on the client the handler's service calls the endpoint with: queue answers or errors per test."""
    with Stubber(sagemaker_runtime) as stubber:
        yield stubber


@pytest.fixture
def handler_module(moto_table, load_handler, monkeypatch, sagemaker_runtime):
    module = load_handler("ConversationsFunction")
    monkeypatch.setattr(module, "service", conversations_service(module.settings, sagemaker_runtime=sagemaker_runtime))
    return module
