"""The Databricks scenario against a real workspace: `pytest -m databricks`, with
MLMAGIC_LIVE_DATABRICKS_HOST and MLMAGIC_LIVE_DATABRICKS_TOKEN naming the workspace and a
personal access token (and MLMAGIC_LIVE_DATABRICKS_UC_SCHEMA, as catalog.schema, a Unity
Catalog schema to register a model in). The same tour the emulated workspace runs in
tests/test_databricks.py: connect, track a cell, the run and its provenance tags and link,
register under Unity Catalog. Skipped otherwise; it has never run on the project's machines,
which have no Databricks account and no internet. What it creates (an experiment, a model) is
deleted at the end."""

from __future__ import annotations

import contextlib
import os
import uuid

import pytest
from conftest import PRICE_CELL, only_line
from mlflow import MlflowClient

from mlmagic.core.session import current_session

HOST = os.environ.get("MLMAGIC_LIVE_DATABRICKS_HOST")
TOKEN = os.environ.get("MLMAGIC_LIVE_DATABRICKS_TOKEN")
UC_SCHEMA = os.environ.get("MLMAGIC_LIVE_DATABRICKS_UC_SCHEMA")  # catalog.schema

pytestmark = [
    pytest.mark.databricks,
    pytest.mark.skipif(not (HOST and TOKEN), reason=(
        "set MLMAGIC_LIVE_DATABRICKS_HOST and MLMAGIC_LIVE_DATABRICKS_TOKEN to run against a "
        "real Databricks workspace")),
]


@pytest.fixture
def workspace(monkeypatch):
    """The live workspace as a laptop signs in to it, and a fresh experiment path in the
    user's folder; deleted afterwards. (user name, experiment path)"""
    import mlflow
    from databricks.sdk import WorkspaceClient

    for name in ("DATABRICKS_CONFIG_PROFILE", "DATABRICKS_RUNTIME_VERSION",
                 "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABRICKS_HOST", HOST)
    monkeypatch.setenv("DATABRICKS_TOKEN", TOKEN)
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    user = WorkspaceClient(host=HOST, token=TOKEN).current_user.me().user_name
    path = f"/Users/{user}/mlmagic-live-{uuid.uuid4().hex[:8]}"
    yield user, path
    client = MlflowClient("databricks")
    experiment = client.get_experiment_by_name(path)
    if experiment is not None:
        client.delete_experiment(experiment.experiment_id)


def test_connect_track_and_see_the_run_with_its_provenance_in_a_real_workspace(
        shell, workspace, capsys):
    user, path = workspace
    connection = shell.run_line_magic("aml_connect", f"databricks -e {path}")
    assert connection.backend.name == "databricks" and connection.experiment_name == path
    assert shell.run_cell(PRICE_CELL.replace(" --register price", "")).success
    run = MlflowClient("databricks").get_run(current_session().last_tracked.run_id)
    assert run.info.status == "FINISHED" and run.info.experiment_id == connection.experiment_id
    assert run.data.tags["mlflow.user"] == user and run.data.tags["mlflow.runName"] == \
        "price-model"
    shown = capsys.readouterr().out
    assert f"/ml/experiments/{connection.experiment_id}/runs/{run.info.run_id}" in shown
    assert TOKEN not in shown
    artifacts = {f.path for f in MlflowClient("databricks").list_artifacts(run.info.run_id)}
    assert "cell.py" in artifacts  # through the workspace's artifact credentials


@pytest.mark.skipif(not (HOST and TOKEN and UC_SCHEMA), reason=(
    "set MLMAGIC_LIVE_DATABRICKS_HOST, MLMAGIC_LIVE_DATABRICKS_TOKEN and "
    "MLMAGIC_LIVE_DATABRICKS_UC_SCHEMA (catalog.schema) to register in a real Unity Catalog"))
def test_register_under_unity_catalog_in_a_real_workspace(shell, workspace, capsys):
    import mlflow
    from mlflow.exceptions import MlflowException

    _, path = workspace
    shell.run_line_magic("aml_connect", f"databricks -e {path}")
    assert mlflow.get_registry_uri().startswith("databricks-uc")
    capsys.readouterr()
    assert not shell.run_cell(PRICE_CELL).success  # --register price: one part
    assert "catalog.schema.model" in only_line(capsys)  # refused before any run
    name = f"{UC_SCHEMA}.mlmagic_live_{uuid.uuid4().hex[:8]}"
    try:
        assert shell.run_cell(PRICE_CELL.replace("--register price", f"--register {name}")
                              ).success
        assert f"model {name} version 1" in capsys.readouterr().out
    finally:
        client = MlflowClient("databricks", registry_uri="databricks-uc")
        with contextlib.suppress(MlflowException):  # nothing to delete if nothing was made
            for version in client.search_model_versions(f"name = '{name}'"):
                client.delete_model_version(name, version.version)
            client.delete_registered_model(name)
