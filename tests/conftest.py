"""Fixtures: a real IPython shell, a clean working directory, a real `mlflow server`."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ENV_TO_CLEAR = (
    "MLMAGIC_TRACKING_URI", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_EXPERIMENT_ID", "MLMAGIC_NOTEBOOK_PATH", "JPY_SESSION_NAME",
    "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    """Each test runs in an empty folder, with a home of its own and no tracking settings."""
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    for name in ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    yield work
    _reset_session()


def _reset_session() -> None:
    if "mlflow" not in sys.modules:
        return
    import mlflow

    from mlmagic.core.state import STATE

    leftover = mlflow.active_run()
    while mlflow.active_run():
        mlflow.end_run()
    STATE.connection = STATE.default_experiment = STATE.last_tracked = None
    assert leftover is None, f"a test left the run {leftover.info.run_id} active"


@pytest.fixture
def shell():
    """The real InteractiveShell with mlmagic freshly loaded (settings at their defaults)."""
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("reload_ext", "mlmagic")
    ip.user_ns.pop("__vsc_ipynb_file__", None)
    return ip


@pytest.fixture
def client():
    """An MlflowClient for the store the session is connected to."""
    from mlflow import MlflowClient

    from mlmagic.core.state import STATE

    return lambda: MlflowClient(tracking_uri=STATE.connection.tracking_uri)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` on 127.0.0.1 and a free port, for the whole test session."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (root / "server.log").open("w")  # noqa: SIM115 - closed after the server stops
    mlflow_cli = shutil.which("mlflow") or "mlflow"
    process = subprocess.Popen(
        [mlflow_cli, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
         "--artifacts-destination", str(root / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, cwd=root,
        env={k: v for k, v in os.environ.items() if k not in ENV_TO_CLEAR},
        start_new_session=True,
    )
    try:
        _wait_for_health(url, process, root / "server.log")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _wait_for_health(url: str, process: subprocess.Popen, log: Path, limit: float = 180) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"mlflow server did not answer in {limit} s:\n{log.read_text()[-3000:]}")


def only_line(capsys) -> str:
    """The one line a failing magic printed (stdout and stderr together); fails otherwise."""
    captured = capsys.readouterr()
    lines = [line for line in (captured.out + captured.err).splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got: {lines}"
    assert "Traceback" not in lines[0]
    return lines[0]
