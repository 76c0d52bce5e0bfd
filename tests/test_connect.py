"""`%aml_connect`, `%aml_experiment`, `%aml_status`: the embedded default, any MLflow URI,
the resolution order, and clear one-line errors that change nothing."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import mlflow
import pytest
from conftest import only_line
from servers import free_port

from mlmagic.core.provenance import ARTIFACTS as PROVENANCE
from mlmagic.core.session import current_session


def sqlite_uri(path: Path) -> str:
    return f"sqlite:///{path}"


def test_nothing_configured_connects_to_the_embedded_store_in_the_working_directory(
    shell, workdir, capsys
):
    assert shell.run_cell("%aml_connect").success
    shown = capsys.readouterr().out
    assert "embedded default" in shown and "local" in shown
    assert (workdir / "mlflow.db").is_file()
    assert mlflow.get_tracking_uri() == sqlite_uri(workdir / "mlflow.db")
    assert current_session().connection.experiment_name == "Default"

    assert shell.run_cell("%%track --name first\nx = 1").success
    run = mlflow.get_run(current_session().last_tracked.run_id)
    assert Path(run.info.artifact_uri.removeprefix("file://")).is_relative_to(workdir / "mlruns")
    assert (workdir / "mlruns").is_dir()


def test_connect_returns_the_connection_with_html_and_text(shell):
    connection = shell.run_line_magic("aml_connect", "--experiment churn")
    html = connection._repr_html_()
    assert "<table" in html and "churn" in html
    assert "churn" in repr(connection) and "mlflow ui --backend-store-uri" in repr(connection)


def test_experiment_option_and_magic_create_and_select_the_experiment(shell, client):
    shell.run_line_magic("aml_connect", "--experiment churn")
    assert client().get_experiment_by_name("churn") is not None
    shell.run_cell("%aml_experiment pricing model")
    assert client().get_experiment_by_name("pricing model") is not None
    assert current_session().connection.experiment_name == "pricing model"
    shell.run_cell("%%track\nx = 1")
    run = mlflow.get_run(current_session().last_tracked.run_id)
    assert run.info.experiment_id == client().get_experiment_by_name("pricing model").experiment_id


def test_resolution_order_env_then_config_then_default(shell, workdir, monkeypatch, tmp_path):
    home_config = Path.home() / ".mlmagic" / "config.toml"
    home_config.parent.mkdir()
    home_config.write_text(f'tracking_uri = "{sqlite_uri(tmp_path / "home.db")}"\n')
    assert shell.run_line_magic("aml_connect", "").tracking_uri.endswith("home.db")

    project = workdir / "project"
    (project / "sub").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        "[tool.mlmagic]\n"
        f'tracking_uri = "{sqlite_uri(tmp_path / "project.db")}"\n'
        'experiment = "from-pyproject"\n'
    )
    monkeypatch.chdir(project / "sub")
    connection = shell.run_line_magic("aml_connect", "")
    assert connection.tracking_uri.endswith("project.db")
    assert connection.experiment_name == "from-pyproject"
    assert connection.origin == str(project / "pyproject.toml")

    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_uri(tmp_path / "mlflow-env.db"))
    assert shell.run_line_magic("aml_connect", "").tracking_uri.endswith("mlflow-env.db")
    monkeypatch.setenv("MLMAGIC_TRACKING_URI", sqlite_uri(tmp_path / "mlmagic-env.db"))
    connection = shell.run_line_magic("aml_connect", "")
    assert connection.tracking_uri.endswith("mlmagic-env.db")
    assert connection.origin == "MLMAGIC_TRACKING_URI"

    explicit = shell.run_line_magic("aml_connect", sqlite_uri(tmp_path / "explicit.db"))
    assert explicit.tracking_uri.endswith("explicit.db")
    assert mlflow.get_tracking_uri() == sqlite_uri(tmp_path / "explicit.db")


def test_pyproject_without_mlmagic_table_is_ignored(shell, workdir):
    (workdir / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert shell.run_line_magic("aml_connect", "").origin == "embedded default"


def test_http_server_connect_track_and_link(shell, mlflow_server, capsys):
    connection = shell.run_line_magic("aml_connect", f"{mlflow_server} --experiment http-demo")
    assert connection.backend.name == "mlflow server"
    cell = "%%track --name over-http\nimport mlflow\nmlflow.log_metric('m', 2.0)"
    assert shell.run_cell(cell).success
    shown = capsys.readouterr().out
    run = mlmagic_last_run()
    assert run.data.metrics == {"m": 2.0}
    assert f"{mlflow_server}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}" in shown
    assert "View run" not in shown  # MLflow's own link lines give way to the summary
    assert [a.path for a in mlflow.artifacts.list_artifacts(run_id=run.info.run_id)
            if a.path not in PROVENANCE] == ["cell.py"]


def mlmagic_last_run():
    import mlmagic

    return mlmagic.last_run()


def test_credentials_in_the_uri_are_never_shown(shell, mlflow_server, capsys):
    secret_uri = mlflow_server.replace("http://", "http://alice:hunter2@")
    connection = shell.run_line_magic("aml_connect", secret_uri)
    shell.run_cell("%aml_status")
    shown = capsys.readouterr().out + repr(connection) + connection._repr_html_()
    assert f"tracking URI  {mlflow_server}\n" in shown and "user          alice" in shown
    assert "hunter2" not in shown
    assert mlflow.get_tracking_uri() == mlflow_server  # the password went to the environment
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "hunter2"

    dead = f"http://alice:hunter2@127.0.0.1:{free_port()}"
    shell.run_cell(f"%aml_connect {dead}")
    assert "hunter2" not in only_line(capsys)


def test_dead_server_is_one_line_and_nothing_is_tracked_until_a_connect_works(shell, capsys):
    before = shell.run_line_magic("aml_connect", "--experiment kept")
    capsys.readouterr()
    started = time.monotonic()
    result = shell.run_cell(f"%aml_connect http://127.0.0.1:{free_port()} --experiment lost")
    assert time.monotonic() - started < 10
    line = only_line(capsys)
    assert line.startswith("ConnectionFailed: cannot reach the MLflow server")
    assert "connection refused" in line and "Start the server" in line
    assert not result.success
    assert current_session().connection == before
    assert mlflow.get_tracking_uri() == before.tracking_uri
    assert mlflow.MlflowClient().get_experiment_by_name("lost") is None
    runs_before = len(mlflow.search_runs(experiment_ids=[before.experiment_id]))

    # the cell does not silently track into the previous (or the default) store
    tracked = shell.run_cell("%%track\ncell_ran = True")
    assert not tracked.success and "cell_ran" not in shell.user_ns
    assert "the last connect failed" in only_line(capsys)
    assert len(mlflow.search_runs(experiment_ids=[before.experiment_id])) == runs_before
    assert "the last connect failed" in repr(shell.run_line_magic("aml_status", ""))
    shell.run_line_magic("aml_connect", "--experiment kept")
    assert shell.run_cell("%%track\ncell_ran = True").success


def test_server_that_never_answers_is_reported_within_ten_seconds(shell, capsys):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        started = time.monotonic()
        shell.run_cell(f"%aml_connect http://127.0.0.1:{port}")
        elapsed = time.monotonic() - started
    assert elapsed < 10
    assert "no answer within" in only_line(capsys)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("%aml_connect foo://bar", "InvalidInput: 'foo://bar' is not a tracking URI"),
        ("%aml_connect --bogus", "UsageError: unrecognized arguments: --bogus"),
        ("%aml_connect --experiment", "UsageError: argument -e/--experiment: expected one"),
        ("%aml_experiment", "UsageError: the following arguments are required: name"),
        ("%aml_experiment --name x", "UsageError: unrecognized arguments: --name"),
    ],
)
def test_bad_input_is_one_clear_line(shell, capsys, line, expected):
    shell.run_line_magic("aml_connect", "")
    capsys.readouterr()
    result = shell.run_cell(line)
    assert only_line(capsys).startswith(expected)
    assert not result.success
    assert current_session().connection.experiment_name == "Default"


@pytest.mark.parametrize(
    "line", ["%aml_experiment  ", "%aml_runs --max 0", "%%track --param x\npass", "%aml_connect -x"]
)
def test_bad_input_before_connecting_creates_no_store(shell, workdir, capsys, line):
    shell.run_cell(line)
    only_line(capsys)
    assert current_session().connection is None
    assert list(workdir.iterdir()) == []


def test_experiment_magic_before_connecting_connects_there(shell, client):
    connection = shell.run_line_magic("aml_experiment", "first")
    assert connection.experiment_name == "first"
    assert connection.origin == "embedded default"


def test_deleted_experiment_is_refused(shell, client, capsys):
    shell.run_line_magic("aml_connect", "--experiment old")
    client().delete_experiment(client().get_experiment_by_name("old").experiment_id)
    capsys.readouterr()
    shell.run_cell("%aml_experiment old")
    assert "is deleted" in only_line(capsys)


def test_status_before_and_after_connecting(shell, capsys):
    shell.run_cell("%aml_status")
    assert "not connected" in capsys.readouterr().out
    shell.run_line_magic("aml_connect", "--experiment shown")
    shell.run_cell("%aml_status")
    assert "shown" in capsys.readouterr().out
