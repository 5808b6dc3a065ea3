from __future__ import annotations

from collections.abc import Iterator

import pytest
from endpoint_fakes import EchoFactory, client, endpoint_config

from local.endpoint import RunningEndpoint, start_endpoint


@pytest.fixture
def echo_factory() -> Iterator[EchoFactory]:
    factory = EchoFactory()
    yield factory
    factory.gates.open_all()  # never leave a backend waiting


@pytest.fixture
def running(echo_factory: EchoFactory) -> Iterator[RunningEndpoint]:
    with start_endpoint(endpoint_config(), port=0, backend_factory=echo_factory) as endpoint:
        yield endpoint
        echo_factory.gates.open_all()


@pytest.fixture
def runtime(running: RunningEndpoint):
    return client("sagemaker-runtime", running.url)


@pytest.fixture
def control(running: RunningEndpoint):
    return client("sagemaker", running.url)
