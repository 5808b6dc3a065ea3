"""Tests that run the LMI container's serving code (vLLM) in .venv-vllm:

    .venv-vllm/bin/python -m pytest --confcutdir=tests/lmi tests/lmi

`--confcutdir` keeps tests/conftest.py (main-venv packages) out. The main venv has no vLLM, so its own run of
`tests/` leaves this folder alone.
"""

from __future__ import annotations

import http.client
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

if importlib.util.find_spec("vllm") is None:
    collect_ignore_glob = ["test_*.py"]

REPO = Path(__file__).resolve().parents[2]
MAIN_PYTHON = REPO / ".venv" / "bin" / "python"
SMOKE_CONTEXT = 1024  # the smoke Llama's max_position_embeddings
_ENGINE_START_TIMEOUT = 600


@pytest.fixture(scope="session")
def smoke_context() -> int:
    return SMOKE_CONTEXT


@pytest.fixture(scope="session")
def smoke_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke Llama sized for vLLM's CPU attention, without a chat template (as Llama-2-chat checkpoints that
    predate templates), built by the one seeded builder in the main venv (its transformers is the project's)."""
    directory = tmp_path_factory.mktemp("smoke-llama-vllm")
    build = (
        "import sys; from local.backends.smoke import VLLM_CPU_HEAD_DIM, make_smoke_causal_lm; "
        "make_smoke_causal_lm(sys.argv[1], chat_template=False, head_dim=VLLM_CPU_HEAD_DIM)"
    )
    subprocess.run([str(MAIN_PYTHON), "-c", build, str(directory)], check=True, cwd=REPO)
    return directory


@pytest.fixture(scope="session")
def lmi_model_dir(tmp_path_factory: pytest.TempPathFactory, smoke_llama: Path) -> Path:
    """What the chat package unpacks to (provisioning/packaging.py build_package), for the smoke checkpoint."""
    directory = tmp_path_factory.mktemp("lmi-model")
    shutil.copy(REPO / "provisioning" / "chat_package" / "model.py", directory / "model.py")
    properties = {
        "engine": "Python",
        "option.model_id": str(smoke_llama),
        "option.async_mode": "true",
        "option.rolling_batch": "disable",
        "option.entryPoint": "djl_python.lmi_vllm.vllm_async_service",
        "option.dtype": "fp16",
        "option.max_model_len": str(SMOKE_CONTEXT),
        "option.max_rolling_batch_size": "16",
        "option.tensor_parallel_degree": "1",
    }
    text = "".join(f"{key}={value}\n" for key, value in properties.items())
    (directory / "serving.properties").write_text(text, encoding="utf-8")
    return directory


@pytest.fixture(scope="session")
def lmi_port(lmi_model_dir: Path) -> Iterator[int]:
    """One LMI container for the session (an engine start costs tens of seconds): its port once /ping is 200."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "local.containers.lmi", "--port", str(port), "--model-dir", str(lmi_model_dir)]
    environment = {name: value for name, value in os.environ.items() if not name.startswith("OPTION_")}
    log = (lmi_model_dir / "container.log").open("wb")
    process = subprocess.Popen(
        command, cwd=REPO, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        _wait_until_healthy(process, port, lmi_model_dir / "container.log")
        yield port
    finally:
        process.terminate()  # the container passes it on to vLLM's engine core and workers, its process group
        process.wait()
        _wait_for_group_exit(process.pid)
        log.close()


def _wait_for_group_exit(group: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    os.killpg(group, signal.SIGKILL)


def _wait_until_healthy(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + _ENGINE_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the LMI container exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/ping")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"the LMI container was not healthy within {_ENGINE_START_TIMEOUT} s:\n{log.read_text()[-4000:]}")
