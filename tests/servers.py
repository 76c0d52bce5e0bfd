"""Real servers for tests and benchmarks: an `mlflow server` child process on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

TRACKING_ENV = (
    "MLMAGIC_TRACKING_URI", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_EXPERIMENT_ID", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
)


def stop_process_group(process: subprocess.Popen, timeout: float = 20) -> None:
    """Stop a child started in a session of its own, with everything it started."""
    os.killpg(process.pid, 15)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait()


def clean_environment(*more: str) -> dict[str, str]:
    """This process's environment without the tracking settings (MLflow writes its tracking
    URI there) and without the variables named in ``more``: for child processes."""
    dropped = {*TRACKING_ENV, *more}
    return {name: value for name, value in os.environ.items() if name not in dropped}


def process_alive(pid: int) -> bool:
    """Whether a process with this id still exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MlflowServer:
    """`mlflow server` with a SQLite store in ``root``; can be stopped and started again on
    the same port, keeping its data."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen | None = None

    def start(self, limit: float = 180) -> MlflowServer:
        """Start the server and wait until it answers its health check."""
        log = (self.root / "server.log").open("a")
        command = [
            shutil.which("mlflow") or "mlflow", "server", "--host", "127.0.0.1",
            "--port", str(self.port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{self.root / 'server.db'}",
            "--artifacts-destination", str(self.root / "artifacts"),
        ]
        self._process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=self.root, env=clean_environment(),
            start_new_session=True,
        )
        log.close()
        self._wait_until_healthy(limit)
        return self

    def stop(self) -> None:
        """Stop the server (and the workers it started)."""
        if self._process is None:
            return
        stop_process_group(self._process)
        self._process = None

    def _wait_until_healthy(self, limit: float) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"mlflow server exited:\n{self._log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"mlflow server did not answer in {limit} s:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        return (self.root / "server.log").read_text()[-3000:]
