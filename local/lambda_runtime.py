"""Lambda-faithful local execution environments for the functions of template.yaml.

Each function gets environments of its own: separate processes of this venv's Python
(`python -m local.lambda_bootstrap`), started in the function's CodeUri with exactly the environment Lambda
would give it, i.e. the template's Globals plus the function's own Environment (intrinsics resolved by
`local.template`), Lambda's reserved variables, and the local platform variables (AWS_ENDPOINT_URL_*
pointing boto3 at moto and the local endpoint, dummy credentials). Nothing is shared between functions or
between environments: each imports the handler once (a cold start, logged) and builds its own clients.

An environment serves one invocation at a time. An invocation takes an idle environment or, when none is
idle, starts another one, up to the function's ReservedConcurrentExecutions (or `default_concurrency`);
beyond that it waits for one to become free (deployed Lambda would throttle instead). An invocation that
outlives the function's Timeout kills its environment, as Lambda does. What the functions print and log goes
to this process's stderr, or to `logs` (a file, or subprocess.DEVNULL), as Lambda sends it to CloudWatch.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local.template import LOCAL_REGION, Template

logger = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 8
# What a local environment gets on top of its function's variables: no X-Ray daemon here, and no EMF lines
# in a developer's terminal (set POWERTOOLS_METRICS_DISABLED=false in `platform_environment` to see them).
LOCAL_DEFAULTS = {"POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_METRICS_DISABLED": "true"}
_INHERITED = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT")
_STOP_GRACE_S = 2.0


class InvocationError(RuntimeError):
    """The handler raised, or its environment failed or timed out; carries Lambda's error payload."""

    def __init__(self, function: str, payload: Mapping[str, Any]):
        self.error_type = str(payload.get("errorType", "Unknown"))
        self.error_message = str(payload.get("errorMessage", ""))
        self.stack_trace = list(payload.get("stackTrace") or [])
        super().__init__(f"{function}: {self.error_type}: {self.error_message}")


@dataclass(frozen=True)
class FunctionDefinition:
    """What the runtime needs to know about one function, read from the template."""

    logical_id: str
    code_dir: Path
    handler: str  # module.function, relative to code_dir
    environment: dict[str, str]  # Globals + the function's own Environment, resolved
    timeout_s: float
    memory_mb: int
    reserved_concurrency: int | None

    @classmethod
    def from_template(cls, template: Template, logical_id: str) -> FunctionDefinition:
        code_uri = template.function_property(logical_id, "CodeUri")
        handler = template.function_property(logical_id, "Handler")
        if not code_uri or not handler or "." not in handler:
            raise ValueError(f"{logical_id}: CodeUri and Handler (module.function) are required")
        code_dir = (template.root / str(code_uri)).resolve()
        module_file = code_dir / (handler.rsplit(".", 1)[0].replace(".", "/") + ".py")
        if not module_file.is_file():
            raise ValueError(f"{logical_id}: handler file {module_file} does not exist")
        reserved = template.function_property(logical_id, "ReservedConcurrentExecutions")
        return cls(
            logical_id=logical_id,
            code_dir=code_dir,
            handler=str(handler),
            environment=template.function_environment(logical_id),
            timeout_s=float(template.function_property(logical_id, "Timeout") or 3),
            memory_mb=int(template.function_property(logical_id, "MemorySize") or 128),
            reserved_concurrency=int(reserved) if reserved not in (None, "") else None,
        )

    def process_environment(self, platform: Mapping[str, str]) -> dict[str, str]:
        """The environment variables of one execution environment of this function."""
        lambda_reserved = {
            "AWS_LAMBDA_FUNCTION_NAME": self.logical_id,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(int(self.timeout_s)),
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
            "AWS_REGION": LOCAL_REGION,
            "AWS_DEFAULT_REGION": LOCAL_REGION,
            "LAMBDA_TASK_ROOT": str(self.code_dir),
            "_HANDLER": self.handler,
            "TZ": ":UTC",
            "PYTHONUNBUFFERED": "1",
        }
        inherited = {name: os.environ[name] for name in _INHERITED if name in os.environ}
        return {**inherited, **LOCAL_DEFAULTS, **self.environment, **lambda_reserved, **platform}


@dataclass
class InvocationResult:
    response: Any
    handler_ms: float  # time inside the handler, measured in its environment
    cold_start_ms: float | None  # set when this invocation had to start its environment


class _Environment:
    """One execution environment: a bootstrap process that has imported the handler."""

    def __init__(self, definition: FunctionDefinition, platform: Mapping[str, str], number: int, logs: Any):
        self.definition = definition
        self.number = number
        started = time.perf_counter()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "local.lambda_bootstrap"],
            cwd=definition.code_dir,
            env=definition.process_environment(platform),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=logs,
            text=True,
            encoding="utf-8",
        )
        # A reader thread, not select(): a streamed invocation sends many lines, and select() cannot see the ones
        # already in the pipe reader's buffer.
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, name=f"{definition.logical_id}-{number}", daemon=True).start()
        ready = self._read_reply(deadline=time.monotonic() + max(definition.timeout_s, 30.0))
        if "init_error" in ready:
            self.stop()
            raise InvocationError(definition.logical_id, ready["init_error"])
        self.init_ms = (time.perf_counter() - started) * 1000
        logger.info(
            "%s: cold start, environment %d ready in %.0f ms (pid %d)",
            definition.logical_id,
            number,
            self.init_ms,
            self._process.pid,
        )

    def invoke(self, event: Any) -> tuple[Any, float]:
        """(handler response, handler milliseconds); raises InvocationError (the environment is then unusable
        if it timed out or died)."""
        timeout_s = self.definition.timeout_s
        self._write({"event": event, "remaining_ms": int(timeout_s * 1000)})
        reply = self._read_reply(deadline=time.monotonic() + timeout_s)
        if "error" in reply:
            raise InvocationError(self.definition.logical_id, reply["error"])
        return reply["response"], float(reply["duration_ms"])

    def invoke_stream(self, event: Any) -> Generator[bytes, None, float]:
        """A streamed invocation's response bytes as the handler produces them (metadata, 8 NUL bytes, body), then
        the handler's milliseconds as the return value; raises InvocationError. Closing the iterator early cancels
        the invocation, and waits for its end so the environment can serve again."""
        deadline = time.monotonic() + self.definition.timeout_s
        self._write({"event": event, "remaining_ms": int(self.definition.timeout_s * 1000), "stream": True})
        finished = False
        try:
            while True:
                reply = self._read_reply(deadline)
                if "error" in reply:
                    finished = True
                    raise InvocationError(self.definition.logical_id, reply["error"])
                if reply.get("end"):
                    finished = True
                    return float(reply["duration_ms"])
                yield base64.b64decode(reply["chunk"])
        finally:
            if not finished and self.alive:
                self._write({"cancel": True})
                with contextlib.suppress(InvocationError):
                    while not {"end", "error"} & set(self._read_reply(deadline)):
                        pass

    def _write(self, message: dict[str, Any]) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(message) + "\n")
        self._process.stdin.flush()

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    def _pump(self) -> None:
        assert self._process.stdout is not None
        with contextlib.suppress(ValueError, OSError):  # the pipe closed by stop()
            for line in self._process.stdout:
                self._lines.put(line)
        self._lines.put("")

    def _read_reply(self, deadline: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            self._process.kill()
            self.stop()
            message = f"Task timed out after {self.definition.timeout_s:.2f} seconds"
            raise InvocationError(
                self.definition.logical_id, {"errorType": "Sandbox.Timedout", "errorMessage": message}
            ) from None
        if not line:
            self.stop()
            code = self._process.returncode
            message = f"Runtime exited with code {code} without answering"
            raise InvocationError(
                self.definition.logical_id, {"errorType": "Runtime.ExitError", "errorMessage": message}
            )
        return json.loads(line)

    def stop(self) -> None:
        if self._process.stdin and not self._process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self._process.stdin.close()
        try:
            self._process.wait(timeout=_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout:
            self._process.stdout.close()


class FunctionRuntime:
    """The execution environments of one function: reuse an idle one, else start one (up to the limit)."""

    def __init__(
        self,
        definition: FunctionDefinition,
        platform_environment: Mapping[str, str] | None = None,
        *,
        default_concurrency: int = DEFAULT_CONCURRENCY,
        logs: Any = None,
    ):
        self.definition = definition
        self.max_concurrency = definition.reserved_concurrency or default_concurrency
        self._platform = dict(platform_environment or {})
        self._logs = logs
        self._idle: list[_Environment] = []
        self._all: list[_Environment] = []
        self._starting = 0
        self._numbers = 0
        self._closed = False
        self._lock = threading.Condition()

    @property
    def environments(self) -> int:
        """Environments running now (idle or busy)."""
        with self._lock:
            return len(self._all)

    def _acquire(self) -> _Environment | int:
        """An idle environment, or the number of a new one the caller is to start (its slot is reserved)."""
        with self._lock:
            while not self._idle and len(self._all) + self._starting >= self.max_concurrency:
                if self._closed:
                    raise RuntimeError(f"{self.definition.logical_id}: the runtime is stopped")
                self._lock.wait()
            if self._closed:
                raise RuntimeError(f"{self.definition.logical_id}: the runtime is stopped")
            if self._idle:
                return self._idle.pop()
            self._starting += 1
            self._numbers += 1
            return self._numbers

    def _start(self, number: int) -> _Environment:
        try:
            environment = _Environment(self.definition, self._platform, number, self._logs)
        except BaseException:
            with self._lock:
                self._starting -= 1
                self._lock.notify()
            raise
        with self._lock:
            self._starting -= 1
            self._all.append(environment)
        return environment

    def _release(self, environment: _Environment) -> None:
        with self._lock:
            if environment.alive and not self._closed:
                self._idle.append(environment)
            else:
                self._all.remove(environment)
                if environment.alive:
                    environment.stop()
            self._lock.notify()

    def invoke(self, event: Any) -> InvocationResult:
        acquired = self._acquire()
        cold_start_ms = None
        if isinstance(acquired, int):
            environment = self._start(acquired)
            cold_start_ms = environment.init_ms
        else:
            environment = acquired
        try:
            response, handler_ms = environment.invoke(event)
        finally:
            self._release(environment)
        return InvocationResult(response, handler_ms, cold_start_ms)

    def invoke_stream(self, event: Any) -> Generator[bytes, None, InvocationResult]:
        """`invoke` for a streamed response: its bytes as they come (see `_Environment.invoke_stream`), then the
        invocation's result (without a response) as the return value."""
        acquired = self._acquire()
        environment = self._start(acquired) if isinstance(acquired, int) else acquired
        try:
            handler_ms = yield from environment.invoke_stream(event)
        finally:
            self._release(environment)
        return InvocationResult(None, handler_ms, environment.init_ms if isinstance(acquired, int) else None)

    def provision(self, count: int) -> None:
        """Start environments now, until `count` exist (at most the concurrency limit), as provisioned
        concurrency does: later invocations then find them warm."""
        starting = []
        with self._lock:
            while len(self._all) + self._starting + len(starting) < min(count, self.max_concurrency):
                self._numbers += 1
                starting.append(self._numbers)
            self._starting += len(starting)
        threads = [threading.Thread(target=self._start_idle, args=(number,)) for number in starting]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _start_idle(self, number: int) -> None:
        self._release(self._start(number))

    def stop(self) -> None:
        with self._lock:
            self._closed = True
            environments, self._idle = list(self._all), []
            self._lock.notify_all()
        for environment in environments:
            environment.stop()


class LambdaRuntime:
    """The functions of one template, each with its own environments, started on first use."""

    def __init__(
        self,
        template: Template,
        platform_environment: Mapping[str, str] | None = None,
        *,
        default_concurrency: int = DEFAULT_CONCURRENCY,
        logs: Any = None,
    ):
        self.template = template
        self._platform = dict(platform_environment or {})
        self._default_concurrency = default_concurrency
        self._logs = logs
        self._functions: dict[str, FunctionRuntime] = {}
        self._lock = threading.Lock()

    def function(self, logical_id: str) -> FunctionRuntime:
        with self._lock:
            runtime = self._functions.get(logical_id)
            if runtime is None:
                definition = FunctionDefinition.from_template(self.template, logical_id)
                runtime = FunctionRuntime(
                    definition, self._platform, default_concurrency=self._default_concurrency, logs=self._logs
                )
                self._functions[logical_id] = runtime
            return runtime

    def invoke(self, logical_id: str, event: Any) -> InvocationResult:
        return self.function(logical_id).invoke(event)

    def invoke_stream(self, logical_id: str, event: Any) -> Generator[bytes, None, InvocationResult]:
        return self.function(logical_id).invoke_stream(event)

    def stop(self) -> None:
        with self._lock:
            functions, self._functions = list(self._functions.values()), {}
        for runtime in functions:
            runtime.stop()

    def __enter__(self) -> LambdaRuntime:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
