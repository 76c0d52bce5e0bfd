"""A real server with real permissions: MLflow's own `mlflow server --app-name basic-auth`.
A read-only user, a wrong password and no credentials at all each get one line that says
which credential or permission is missing, wherever they meet it (connect, the start of a
tracked cell, the registry, a deploy), and nothing is left half-made."""

from __future__ import annotations

import mlflow
import pytest
from conftest import PRICE_CELL, only_line
from servers import BasicAuthMlflowServer

ADMIN = ("admin", "admin-password-1234")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = BasicAuthMlflowServer(tmp_path_factory.mktemp("auth-server"), admin=ADMIN).start()
    server.create_user("reader", "reader-password-1")
    yield server
    server.stop()


def _as(user: str, password: str, url: str) -> str:
    return url.replace("http://", f"http://{user}:{password}@")


@pytest.fixture
def shared(server, shell, capsys):
    """An experiment 'shared' the admin made, with a run that logged and registered 'price'."""
    shell.run_line_magic("aml_connect", f"{_as(*ADMIN, server.url)} --experiment shared")
    assert shell.run_cell(PRICE_CELL).success
    capsys.readouterr()
    return mlflow.MlflowClient(server.url)


def test_a_read_only_user_gets_one_line_where_a_permission_is_missing(
    server, shared, shell, capsys, monkeypatch
):
    runs_before = len(mlflow.search_runs(search_all_experiments=True))
    connection = shell.run_line_magic(
        "aml_connect", f"{_as('reader', 'reader-password-1', server.url)} --experiment shared")
    assert "user          reader" in repr(connection)

    tracked = shell.run_cell("%%track --name not-mine\ncell_ran = True")
    assert not tracked.success and "cell_ran" not in shell.user_ns
    line = only_line(capsys)
    assert line.startswith("PermissionDenied: user 'reader' may not create runs in this "
                           "experiment on " + server.url + " (HTTP 403)"), line
    assert len(mlflow.search_runs(search_all_experiments=True)) == runs_before

    registered = shell.run_cell(f"%aml_register price-copy --run {_last_run_id(shared)}")
    assert not registered.success
    assert only_line(capsys).startswith("PermissionDenied: user 'reader' may not")
    assert not shared.search_registered_models("name = 'price-copy'")  # nothing half-made

    # what a read-only user may do still works: read, and deploy what they may read
    assert shell.run_cell("%aml_runs").success and shell.run_cell("%aml_models").success


def test_a_wrong_password_and_no_credentials_are_one_line_each(server, shell, capsys):
    wrong = shell.run_cell(f"%aml_connect {_as('reader', 'not-it', server.url)}")
    assert not wrong.success
    line = only_line(capsys)
    assert "refused the credentials (HTTP 401)" in line and "user 'reader'" in line
    assert "not-it" not in line

    nobody = shell.run_cell(f"%aml_connect {server.url}")
    assert not nobody.success
    assert "no credentials were given" in only_line(capsys)


def test_credentials_that_stop_working_are_one_line_at_the_next_call(
    server, shared, shell, capsys
):
    shell.run_line_magic("aml_connect", f"{_as(*ADMIN, server.url)} --experiment shared")
    shell.run_cell("import pandas as pd\nhouses = pd.DataFrame({'rooms': [1.0], 'age': [2.0]})")
    capsys.readouterr()
    # as if the password were changed (or the token expired) after connecting
    import os

    os.environ["MLFLOW_TRACKING_PASSWORD"] = "expired"
    for line in ("%aml_deploy price --name svc", "%aml_models", "%aml_runs",
                 "%aml_show last"):
        assert not shell.run_cell(line).success, line
        shown = only_line(capsys)
        assert "refused the credentials (HTTP 401)" in shown, (line, shown)
    os.environ["MLFLOW_TRACKING_PASSWORD"] = ADMIN[1]


def _last_run_id(client) -> str:
    experiment = client.get_experiment_by_name("shared")
    return client.search_runs([experiment.experiment_id], max_results=1)[0].info.run_id
