"""Start the web UI as a `streamlit run` subprocess (used by `make up` and the browser test)."""

from __future__ import annotations

import collections
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

APP_PATH = Path(__file__).with_name("app.py")
STARTUP_TIMEOUT_S = 60.0  # a cold Streamlit start on 2 cores takes a few seconds; this only bounds the wait
_POLL_INTERVAL_S = 0.2
_KEPT_OUTPUT_LINES = 200


def _free_port(host: str) -> int:
    # Streamlit needs a concrete port; the tiny window before it binds is acceptable on loopback.
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class UIStartError(RuntimeError):
    """Streamlit did not come up; the message carries the end of its output."""


@dataclass
class UIHandle:
    url: str
    process: subprocess.Popen
    _output: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=_KEPT_OUTPUT_LINES))
    _drain: threading.Thread | None = None

    def recent_output(self) -> str:
        """The last lines Streamlit printed (its log and any error), for diagnostics."""
        return "".join(self._output)

    def __enter__(self) -> UIHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout_s)


def start_ui(
    api_url: str,
    host: str = "127.0.0.1",
    port: int = 8501,
    *,
    environment: dict[str, str] | None = None,
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
) -> UIHandle:
    """Serve the UI at http://host:port (port 0: a free one) against the REST API at `api_url`; returns once it
    answers its health check, or raises UIStartError. The handle stops it (also as a context manager).
    `environment` adds variables for the UI (e.g. CHATBOT_AUTH_MODE=cognito and COGNITO_APP_CLIENT_ID); local
    sign-in is the default."""
    if port == 0:
        port = _free_port(host)
    env = {**os.environ, "CHATBOT_API_URL": api_url, **(environment or {})}
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_PATH),
        "--server.headless=true",
        f"--server.address={host}",
        f"--server.port={port}",
        "--server.fileWatcherType=none",
        "--browser.gatherUsageStats=false",
        "--client.toolbarMode=minimal",  # no developer menu or "Deploy" button for end users
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    handle = UIHandle(url=f"http://{host}:{port}", process=process)
    # Drain the pipe so a chatty Streamlit never blocks on a full buffer; keep the tail for error messages.
    handle._drain = threading.Thread(target=handle._output.extend, args=(process.stdout,), daemon=True)
    handle._drain.start()
    deadline = time.monotonic() + startup_timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            handle._drain.join(timeout=5)
            raise UIStartError(f"streamlit exited with code {process.returncode}:\n{handle.recent_output()}")
        try:
            if requests.get(f"{handle.url}/_stcore/health", timeout=2).text.strip() == "ok":
                return handle
        except requests.RequestException:
            pass
        time.sleep(_POLL_INTERVAL_S)
    handle.stop()
    raise UIStartError(
        f"the UI did not answer at {handle.url} within {startup_timeout_s:.0f} s:\n{handle.recent_output()}"
    )
