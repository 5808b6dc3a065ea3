"""The real local stack (moto, local endpoint, gateway with the real handlers, S3 pipeline poller) for UI tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from local.endpoint.runtime import BackendFactory
from local.stack import LocalStack, Ports


@contextmanager
def running_local_stack(backend_factory: BackendFactory | None = None) -> Iterator[LocalStack]:
    """Every server on a free loopback port (the handlers run in their own environments). LocalStack points this
    process's boto3 at moto through os.environ to create the resources; that is restored afterwards."""
    saved_environment = dict(os.environ)
    stack = LocalStack(ports=Ports.ephemeral(), with_ui=False, backend_factory=backend_factory)
    try:
        yield stack.start()
    finally:
        stack.stop()
        os.environ.clear()
        os.environ.update(saved_environment)
