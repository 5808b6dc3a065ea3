"""The real local stack (moto, local endpoint, gateway with the real handlers, S3 pipeline poller) for UI tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from local.stack import LocalStack, Ports


@contextmanager
def running_local_stack() -> Iterator[LocalStack]:
    """Every server on a free loopback port. LocalStack points this process's boto3 at moto through os.environ
    (the handlers run in-process); the environment is restored afterwards so later tests are not affected."""
    saved_environment = dict(os.environ)
    stack = LocalStack(ports=Ports.ephemeral(), with_ui=False)
    try:
        yield stack.start()
    finally:
        stack.stop()
        os.environ.clear()
        os.environ.update(saved_environment)


def point_boto3_at(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Undo, for one test, tests/conftest.py's removal of endpoint overrides: the in-process handlers that the
    gateway and poller run must reach this stack's moto and endpoint."""
    for name, value in stack.environment.items():
        monkeypatch.setenv(name, value)
