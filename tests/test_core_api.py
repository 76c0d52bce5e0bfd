"""The core API without IPython: the functions the magics call, used from plain Python."""

from __future__ import annotations

import os

import mlflow
import pytest
from conftest import PRICE_CELL

import mlmagic
from mlmagic.base.errors import ConnectionFailed, MlmagicError
from mlmagic.base.secrets import is_secret_name, redact_uri


def test_plain_python_lifecycle(workdir):
    assert "not connected" in repr(mlmagic.status())
    connection = mlmagic.connect(experiment="api")
    assert connection is mlmagic.status()
    with mlmagic.track("from-python", params={"depth": 3}) as run:
        mlflow.log_metric("auc", 0.8)
    assert mlmagic.last_run().info.run_id == run.info.run_id
    assert mlmagic.last_run().data.metrics == {"auc": 0.8}
    assert mlmagic.set_experiment("api-2").experiment_name == "api-2"
    with pytest.raises(ZeroDivisionError), mlmagic.track("fails"):
        raise ZeroDivisionError("division by zero")
    assert mlmagic.last_run().info.status == "FAILED"
    assert mlflow.active_run() is None
    runs = mlmagic.runs("api")
    assert list(runs["tags.mlflow.runName"]) == ["from-python"]


def test_capture_from_python(workdir):
    mlmagic.connect()
    scope = {"f1": 0.7, "secret_key": "s"}
    with mlmagic.track(capture=["f1", "secret_key"], namespace=scope):
        pass
    assert mlmagic.last_run().data.metrics == {"f1": 0.7}


def test_last_run_is_none_before_any_tracking(workdir):
    assert mlmagic.last_run() is None


def test_errors_are_one_family_and_render_as_one_line(workdir):
    with pytest.raises(ConnectionFailed) as caught:
        mlmagic.connect("http://127.0.0.1:9", timeout=2)
    assert isinstance(caught.value, MlmagicError)
    assert caught.value._render_traceback_() == [f"ConnectionFailed: {caught.value}"]


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("password", True), ("db_password", True), ("apiKey", True), ("API_TOKEN", True),
        ("client_secret", True), ("sas", True), ("storage_connection_string", True),
        ("accuracy", False), ("monkey", False), ("n_tokens_seen", False), ("keyboard", False),
        ("learning_rate", False), ("key_size", False), ("pass_rate", False),
        ("sort_key", False), ("tokenizer", False),
    ],
)
def test_secret_names(name, secret):
    assert is_secret_name(name) is secret


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("http://u:pw@host:5000", "http://u:***@host:5000"),
        ("postgresql://me:s3cr3t@db/mlflow", "postgresql://me:***@db/mlflow"),
        ("https://host/path?sig=abc&x=1", "https://host/path?sig=***&x=1"),
        ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
        ("databricks://profile", "databricks://profile"),
    ],
)
def test_redacted_uris(uri, shown):
    assert redact_uri(uri) == shown


def test_every_core_export_is_the_function_not_a_module():
    import importlib
    import pkgutil

    import mlmagic.core

    for module in pkgutil.iter_modules(mlmagic.core.__path__):
        importlib.import_module(f"mlmagic.core.{module.name}")
    for name in mlmagic.core.__all__:
        assert callable(getattr(mlmagic.core, name)), name
        assert not isinstance(getattr(mlmagic.core, name), type(mlmagic)), name


def test_a_new_session_starts_fresh_and_stops_what_the_old_one_served(
    shell, workdir, mlflow_server, monkeypatch
):
    from filelock import FileLock
    from servers import process_alive

    from mlmagic.core.session import current_session

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "users-own")
    with_user = mlflow_server.replace("http://", "http://alice:pw-1234@")
    shell.run_line_magic("aml_connect", f"{with_user} --experiment fresh")
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "alice"
    assert shell.run_cell(PRICE_CELL).success
    shell.run_line_magic("aml_deploy", "price --name svc")
    old = current_session()
    pid = old.endpoints["svc"].details["pid"]
    heard = []
    mlmagic.add_run_listener(lambda event, run: heard.append(event))
    lock_file = old.lease_lock.lock_file

    fresh = mlmagic.new_session()
    assert fresh is current_session() and fresh is not old
    assert (fresh.connection, fresh.last_tracked, fresh.endpoints, fresh.listeners,
            fresh.jobs, fresh.held) == (None, None, {}, [], {}, [])
    assert not process_alive(pid) or _zombie(pid)
    assert mlmagic.last_run() is None
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "users-own"
    with FileLock(lock_file, timeout=0):  # the old session's lease lock was let go
        pass
    assert shell.run_cell("%%track --name after\nx = 1").success
    assert heard == [] and mlmagic.last_run().info.run_name == "after"


def _zombie(pid: int) -> bool:
    from pathlib import Path

    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" in status.read_text()
