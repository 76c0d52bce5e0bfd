"""Real servers for tests and benchmarks: an `mlflow server` child process on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
        self._process = subprocess.Popen(
            self._command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.root,
            env=self._environment(), start_new_session=True,
        )
        log.close()
        self._wait_until_healthy(limit)
        return self

    def _command(self) -> list[str]:
        return [
            shutil.which("mlflow") or "mlflow", "server", "--host", "127.0.0.1",
            "--port", str(self.port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{self.root / 'server.db'}",
            "--artifacts-destination", str(self.root / "artifacts"),
        ]

    def _environment(self) -> dict[str, str]:
        return clean_environment()

    def stop(self) -> None:
        """Stop the server (and the workers it started), and wait until it answers no more
        (the worker may outlive the parent for a moment)."""
        if self._process is None:
            return
        stop_process_group(self._process)
        self._process = None
        deadline = time.monotonic() + 20
        while self.answers() and time.monotonic() < deadline:
            time.sleep(0.05)

    def answers(self) -> bool:
        """Whether the server answers its health check now."""
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

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


class BasicAuthMlflowServer(MlflowServer):
    """`mlflow server --app-name basic-auth` (MLflow's own basic-auth app; it needs Flask-WTF,
    i.e. ``mlflow[auth]``) with its user store in ``root`` too. Every user but the admin gets
    ``default_permission`` on what others create: READ makes a user made by ``create_user``
    read-only there (MLflow still lets any user create experiments and registered models)."""

    def __init__(
        self, root: Path, port: int | None = None, default_permission: str = "READ",
        admin: tuple[str, str] = ("admin", "admin-password-1234"),
    ) -> None:
        super().__init__(root, port)
        self.default_permission = default_permission
        self.admin = admin

    def _command(self) -> list[str]:
        command = super()._command()
        return [*command[:2], "--app-name", "basic-auth", *command[2:]]

    def _environment(self) -> dict[str, str]:
        config = self.root / "basic_auth.ini"
        config.write_text(
            "[mlflow]\n"
            f"default_permission = {self.default_permission}\n"
            f"database_uri = sqlite:///{self.root / 'auth.db'}\n"
            f"admin_username = {self.admin[0]}\n"
            f"admin_password = {self.admin[1]}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            # Remember good passwords for a minute: else each request spends ~0.3 s hashing.
            "auth_cache_ttl_seconds = 60\n"
        )
        env = clean_environment("MLFLOW_ENABLE_WORKSPACES")
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(config)
        # The app refuses to start without a secret key (for the CSRF of its sign-up page).
        env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = "mlmagic-tests-only"
        return env

    def create_user(self, name: str, password: str) -> None:
        """Create a (non-admin) user through the admin REST API."""
        request = urllib.request.Request(
            f"{self.url}/api/2.0/mlflow/users/create", method="POST",
            data=json.dumps({"username": name, "password": password}).encode(),
            headers={"Content-Type": "application/json",
                     "Authorization": basic_authorization(*self.admin)},
        )
        with urllib.request.urlopen(request, timeout=30):
            pass

    def environment(self, name: str, password: str) -> dict[str, str]:
        """The variables that make MLflow's client talk to this server as this user."""
        return {"MLFLOW_TRACKING_URI": self.url, "MLFLOW_TRACKING_USERNAME": name,
                "MLFLOW_TRACKING_PASSWORD": password}


def basic_authorization(name: str, password: str) -> str:
    """An HTTP ``Authorization`` header value for basic auth."""
    return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()


class FlakyGateway:
    """A reverse proxy on 127.0.0.1 in front of a real server, as a load balancer or an API
    gateway is: it forwards every request, except that it answers ``status`` (503 by default;
    None: it closes the connection without an answer, as a server does with an idle
    keep-alive connection) to the next ``failures`` requests whose path ends with ``path``.
    ``refused`` counts those."""

    def __init__(self, target: str, path: str, failures: int, status: int | None = 503
                 ) -> None:
        self.target, self.path, self.failures, self.status = target, path, failures, status
        self.refused = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FlakyGateway:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def heal(self) -> None:
        """Forward everything from now on."""
        with self._lock:
            self.failures = self.refused

    def _refuse(self, path: str) -> bool:
        with self._lock:
            if path.split("?")[0].endswith(self.path) and self.refused < self.failures:
                self.refused += 1
                return True
        return False

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if gateway._refuse(self.path):
                    if gateway.status is None:  # hang up without an answer
                        self.close_connection = True
                        return
                    self.send_response(gateway.status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "connection")}
                request = urllib.request.Request(gateway.target + self.path, data=body or None,
                                                 headers=headers, method=self.command)
                try:
                    response = urllib.request.urlopen(request, timeout=60)
                except urllib.error.HTTPError as error:
                    response = error
                with response:
                    payload = response.read()
                    self.send_response(response.status)
                    for name, value in response.headers.items():
                        if name.lower() not in ("transfer-encoding", "connection",
                                                "content-length"):
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

            def log_message(self, *args) -> None:
                pass

        return Handler


class SparkConnectServer:
    """A Spark Connect server (pyspark's own ``SparkConnectServer``, as
    ``sbin/start-connect-server.sh`` starts it) on 127.0.0.1 and a free port, ``local[1]``,
    its Python workers run with ``env``: the cluster a shared-cluster notebook is a client of.
    Its URL for ``SparkSession.builder.remote`` is :attr:`url`."""

    STARTED = "Spark Connect server started at"

    def __init__(self, root: Path, env: dict[str, str], conf: dict[str, str] | None = None
                 ) -> None:
        self.root, self.env, self.conf = root, env, conf or {}
        self.port = free_port()
        self.url = f"sc://127.0.0.1:{self.port}"
        self._process: subprocess.Popen | None = None

    def start(self, limit: float = 180) -> SparkConnectServer:
        """Start the server and wait until it says it listens."""
        import pyspark

        home = Path(pyspark.__file__).parent
        conf = {"spark.connect.grpc.binding.address": "127.0.0.1",
                "spark.connect.grpc.binding.port": str(self.port),
                "spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1",
                "spark.ui.enabled": "false", **self.conf}
        command = [str(home / "bin" / "spark-submit"), "--class",
                   "org.apache.spark.sql.connect.service.SparkConnectServer",
                   "--name", "Spark Connect server", "--master", "local[1]"]
        for name, value in conf.items():
            command += ["--conf", f"{name}={value}"]
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / "server.log").open("a") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, cwd=self.root,
                env={**self.env, "SPARK_HOME": str(home)}, start_new_session=True)
        self._wait_until_started(limit)
        return self

    def stop(self) -> None:
        """Stop the server and its Python workers."""
        if self._process is not None:
            stop_process_group(self._process)
            self._process = None

    def _wait_until_started(self, limit: float) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            log = (self.root / "server.log").read_text()
            if self.STARTED in log:
                return
            if self._process.poll() is not None:
                raise RuntimeError(f"the Spark Connect server exited:\n{log[-3000:]}")
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"the Spark Connect server did not start in {limit} s")
