"""The local target: `mlflow models serve` as a child process on 127.0.0.1."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from mlmagic.base.checks import checked_port, safe_name
from mlmagic.base.display import Waiting
from mlmagic.base.errors import ConnectionFailed, InvalidInput
from mlmagic.base.failures import answer_reason
from mlmagic.deploy import Endpoint, Owner, option

NAME = "local"
SUMMARY = "a local REST endpoint: `mlflow models serve` on 127.0.0.1"
REQUIRES = None
LEGACY = False
ENDS_WITH_SESSION = True  # a process of this kernel
DEFAULT_TIMEOUT = 180.0


@dataclass
class Options:
    """The local target's options."""

    port: int | None = field(default=None, metadata=option(
        "port on 127.0.0.1 (default: a free one)", check=checked_port))


def deploy(model, name: str, *, timeout: float, connection, options: Options,
           owner: Owner) -> Endpoint:
    """Serve ``model`` (a ModelRef) and wait until its health check answers."""
    port = options.port or _free_port()
    if _in_use(port):
        raise InvalidInput(f"port {port} on 127.0.0.1 is in use. Pick another with --port.")
    log = Path(tempfile.gettempdir()) / "mlmagic" / f"{safe_name(name)}-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "mlflow", "models", "serve", "-m", model.uri,
        "--host", "127.0.0.1", "--port", str(port), "--env-manager", "local",
    ]
    with log.open("w") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            env=server_environment(connection.tracking_uri),
        )
    base = f"http://127.0.0.1:{port}"
    lease = owner.endpoint_lease(f"{safe_name(name)}-{port}", name=name, port=port,
                                   server_pid=process.pid, model=str(model), log=str(log))
    endpoint = Endpoint(name, "local", str(model), f"{base}/invocations",
                        {"pid": process.pid, "log": str(log), "port": port},
                        handle=(process, lease))
    try:
        _wait_until_ready(endpoint, process, timeout)
    except BaseException:  # an interrupt too: a server that never became an endpoint stops
        delete(endpoint)
        raise
    return endpoint


def server_environment(tracking_uri: str) -> dict[str, str]:
    """The environment of the serving process: this kernel's, with the folder of its Python
    first on the PATH (the server's own commands, such as uvicorn, live there even when the
    kernel's environment was never activated), and the store to read the model from."""
    folder = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    return {**os.environ, "PATH": os.pathsep.join([folder, path]) if path else folder,
            "MLFLOW_TRACKING_URI": tracking_uri}


def status(endpoint: Endpoint) -> str:
    """"alive" if the process runs and answers its health check, else "dead"."""
    process = endpoint.handle[0] if endpoint.handle else None
    if process is None or process.poll() is not None:
        return "dead"
    return "alive" if answers(endpoint.url.replace("/invocations", "/ping")) else "dead"


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
        raise InvalidInput(f"the endpoint {endpoint.name} refused the data: "
                           f"{answer_reason(error.read())}") from None
    except OSError as error:
        raise ConnectionFailed(
            f"the endpoint {endpoint.name} does not answer ({error}). Deploy it again."
        ) from None


def delete(endpoint: Endpoint) -> None:
    """Stop the endpoint's process (and the server workers it started)."""
    process, lease = endpoint.handle or (None, None)
    endpoint.handle = None
    if lease is not None:
        lease.release()
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _wait_until_ready(endpoint: Endpoint, process: subprocess.Popen, timeout: float) -> None:
    health = endpoint.url.replace("/invocations", "/ping")
    log = endpoint.details["log"]

    def too_slow() -> Exception:
        delete(endpoint)
        return ConnectionFailed(f"the endpoint {endpoint.name} did not answer within "
                                f"{timeout:g} s (log: {log}). Try a longer --timeout.")

    with Waiting(f"starting {endpoint.name}", timeout=timeout, every=0.5,
                 timed_out=too_slow) as waiting:
        waiting.detail = f"log: {log}"
        for _ in waiting:
            if process.poll() is not None:
                delete(endpoint)
                raise ConnectionFailed(
                    f"the endpoint {endpoint.name} stopped while starting: "
                    f"{_start_failure(Path(log), process.returncode)} (log: {log})")
            if answers(health):
                return waiting.done(f"{endpoint.name} is ready")


def _start_failure(log: Path, code: int) -> str:
    """What stopped the server from starting, from its log: a missing package or command
    named, else the log's last line."""
    text = log.read_text(errors="replace") if log.exists() else ""
    missing = re.search(r"No module named '([^']+)'", text)
    if missing:
        package = missing.group(1).split(".")[0]
        return (f"it needs the Python package '{package}', which this kernel's environment "
                f"lacks: pip install {package}")
    command = re.search(r"([\w./-]+): (?:command )?not found", text)
    if command:
        return f"it needs the command '{command.group(1)}', which is not on the PATH"
    lines = text.strip().splitlines()
    return lines[-1] if lines else f"exit code {code}"


def answers(url: str) -> bool:
    """Whether ``url`` (a server's health check) answers 200 within 2 s."""
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
