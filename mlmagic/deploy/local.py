"""The local target: `mlflow models serve` as a child process on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from mlmagic.core.display import progress
from mlmagic.deploy import Endpoint
from mlmagic.errors import ConnectionFailed, InvalidInput

OPTIONS = ("port",)
DEFAULT_TIMEOUT = 180.0
_PROCESSES: dict[str, subprocess.Popen] = {}


def deploy(model, name: str, *, timeout: float, connection, port: int | None = None) -> Endpoint:
    """Serve ``model`` (a ModelRef) and wait until its health check answers."""
    port = port or _free_port()
    if _in_use(port):
        raise InvalidInput(f"port {port} on 127.0.0.1 is in use. Pick another with --port.")
    log = Path(tempfile.gettempdir()) / "mlmagic" / f"{name}-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "mlflow", "models", "serve", "-m", model.uri,
        "--host", "127.0.0.1", "--port", str(port), "--env-manager", "local",
    ]
    with log.open("w") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "MLFLOW_TRACKING_URI": connection.tracking_uri},
        )
    base = f"http://127.0.0.1:{port}"
    endpoint = Endpoint(name, "local", str(model), f"{base}/invocations",
                        {"pid": process.pid, "log": str(log), "port": port})
    _PROCESSES[name] = process
    _wait_until_ready(endpoint, process, timeout)
    return endpoint


def status(endpoint: Endpoint) -> str:
    """"alive" if the process runs and answers its health check, else "dead"."""
    process = _PROCESSES.get(endpoint.name)
    if process is None or process.poll() is not None:
        return "dead"
    return "alive" if _answers(endpoint.url.replace("/invocations", "/ping")) else "dead"


def predict(endpoint: Endpoint, frame) -> list:
    """Post a pandas DataFrame to the endpoint; its predictions."""
    import json

    body = json.dumps({"dataframe_split": frame.to_dict(orient="split")}, default=str).encode()
    request = urllib.request.Request(
        endpoint.url, data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())["predictions"]
    except urllib.error.HTTPError as error:
        message = error.read().decode(errors="replace")[:300]
        raise InvalidInput(f"the endpoint {endpoint.name} refused the data: {message}") from None
    except OSError as error:
        raise ConnectionFailed(
            f"the endpoint {endpoint.name} does not answer ({error}). Deploy it again."
        ) from None


def delete(endpoint: Endpoint) -> None:
    """Stop the endpoint's process (and the server workers it started)."""
    process = _PROCESSES.pop(endpoint.name, None)
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _wait_until_ready(endpoint: Endpoint, process: subprocess.Popen, timeout: float) -> None:
    started = time.monotonic()
    health = endpoint.url.replace("/invocations", "/ping")
    while (elapsed := time.monotonic() - started) < timeout:
        progress(f"starting {endpoint.name} ({elapsed:.0f} s; log: {endpoint.details['log']})")
        if process.poll() is not None:
            progress("", done=True)
            tail = Path(endpoint.details["log"]).read_text(errors="replace").strip().splitlines()
            reason = tail[-1] if tail else f"exit code {process.returncode}"
            _PROCESSES.pop(endpoint.name, None)
            raise ConnectionFailed(
                f"the endpoint {endpoint.name} stopped while starting: {reason} "
                f"(log: {endpoint.details['log']})"
            )
        if _answers(health):
            progress(f"{endpoint.name} is ready after {elapsed:.0f} s", done=True)
            return
        time.sleep(0.5)
    progress("", done=True)
    delete(endpoint)
    raise ConnectionFailed(
        f"the endpoint {endpoint.name} did not answer within {timeout:g} s "
        f"(log: {endpoint.details['log']}). Try a longer --timeout."
    )


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _in_use(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False
