"""Azure ML through the real azure-ai-ml / azureml-mlflow packages, against the HTTPS emulator
of the Azure REST surface (tests/support/azure/) on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import mlflow
import nbformat
import pytest
from conftest import PRICE_CELL, WORKSPACE_FLAGS, WSID, only_line
from mlflow import MlflowClient
from nbclient import NotebookClient
from support.azure.emulator import MANAGED_IDENTITY_VARIABLES
from support.azure.identity import TENANT

from mlmagic.core.session import current_session, new_session

REPO = Path(__file__).resolve().parents[1]
ARM_PREFIX = "/subscriptions/"
MLFLOW_PREFIX = "/mlflow/v2.0/subscriptions/"


def workspace_store(azure) -> MlflowClient:
    """The MLflow store behind the emulated workspace, read directly (not through mlmagic)."""
    return MlflowClient(tracking_uri=azure.mlflow_url)


def test_connect_by_names_resolves_the_workspace_and_shows_where_tracking_goes(
    shell, azure, capsys
):
    connection = shell.run_line_magic("aml_connect", WORKSPACE_FLAGS + " -e churn")
    shown = repr(connection)
    for expected in ("azure ml", "ws-churn", "westeurope", "rg-notebooks", "churn"):
        assert expected in shown
    assert f"https://ml.azure.emulator.test/?{WSID}" in shown
    assert connection.tracking_uri.startswith("azureml://127.0.0.1:")
    assert mlflow.get_tracking_uri() == connection.tracking_uri
    assert workspace_store(azure).get_experiment_by_name("churn") is not None
    arm = [r for r in azure.requests if r.path.startswith(ARM_PREFIX)]
    assert arm and all(r.api_version for r in arm)
    assert any(r.path.endswith("/workspaces/ws-churn") and r.status == 200 for r in arm)
    calls = [r for r in azure.requests if r.path.startswith((ARM_PREFIX, MLFLOW_PREFIX))]
    assert all(r.authorization and r.authorization.startswith("Bearer ") for r in calls)


def test_connect_with_a_config_file_or_the_one_found_nearby(shell, azure, workdir, capsys):
    config = workdir / "downloads" / "config.json"
    config.parent.mkdir()
    config.write_text(json.dumps(azure.config_json()))
    assert "ws-churn" in repr(shell.run_line_magic("aml_connect", f"--config {config}"))

    new_session()
    (workdir / ".azureml").mkdir()
    (workdir / ".azureml" / "config.json").write_text(json.dumps(azure.config_json()))
    connection = shell.run_line_magic("aml_connect", "")
    assert connection.backend.name == "azure ml"
    assert connection.origin.endswith(".azureml/config.json")


def test_a_pyproject_table_can_name_the_workspace(shell, azure, workdir, capsys):
    (workdir / "pyproject.toml").write_text(
        "[tool.mlmagic]\nexperiment = 'churn'\nauth = 'managed-identity'\n"
        + "".join(f"{key} = '{value}'\n" for key, value in azure.config_json().items())
    )
    connection = shell.run_line_magic("aml_connect", "")
    assert connection.backend.name == "azure ml" and connection.experiment_name == "churn"
    assert connection.origin == str(workdir / "pyproject.toml")


def test_the_workspace_tracking_uri_itself_connects_too(shell, azure, monkeypatch, capsys):
    uri = shell.run_line_magic("aml_connect", WORKSPACE_FLAGS).tracking_uri
    new_session()
    capsys.readouterr()
    # --auth applies to the URI too: there is no Azure CLI here to sign in with
    assert not shell.run_cell(f"%aml_connect {uri} --auth cli").success
    assert "cannot sign in to Azure" in only_line(capsys)
    assert shell.run_line_magic("aml_connect", uri).backend.name == "azure ml"
    new_session()  # a new session, the variable set by hand
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    connection = shell.run_line_magic("aml_connect", "")
    assert connection.backend.name == "azure ml" and connection.origin == "MLFLOW_TRACKING_URI"
    assert "ws-churn" in repr(connection)


def test_a_tracked_cell_lands_in_the_workspace_with_a_studio_link(shell, azure, capsys):
    shell.run_line_magic("aml_connect", WORKSPACE_FLAGS + " -e churn")
    cell = (
        "%%track --name baseline --param alpha=0.5\n"
        "import mlflow\n"
        "for step in range(5):\n"
        "    mlflow.log_metric('loss', 1.0 / (step + 1), step=step)\n"
        "open('notes.txt', 'w').write('kept')\n"
        "mlflow.log_artifact('notes.txt')\n"
    )
    assert shell.run_cell(cell).success
    out = capsys.readouterr().out
    run_id = current_session().last_tracked.run_id
    assert f"https://ml.azure.emulator.test/runs/{run_id}?{WSID}" in out
    run = workspace_store(azure).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"alpha": "0.5"}
    history = workspace_store(azure).get_metric_history(run_id, "loss")
    assert [m.step for m in history] == [0, 1, 2, 3, 4]
    artifacts = {a.path for a in MlflowClient().list_artifacts(run_id)}
    assert {"cell.py", "notes.txt"} <= artifacts
    uploads = [r for r in azure.requests if r.method == "PUT" and r.path.endswith("/notes.txt")]
    assert uploads and uploads[0].status == 201


def test_a_failing_cell_shows_its_own_error_and_its_run_is_failed_in_the_workspace(
    shell, azure, capsys
):
    shell.run_line_magic("aml_connect", WORKSPACE_FLAGS)
    result = shell.run_cell("%%track --name broken\nraise KeyError('no such column')")
    assert isinstance(result.error_in_exec, KeyError)
    run = workspace_store(azure).get_run(current_session().last_tracked.run_id)
    assert run.info.status == "FAILED"


def test_register_puts_the_model_in_the_workspace_registry_and_it_loads_back(
    shell, azure, capsys
):
    shell.run_line_magic("aml_connect", WORKSPACE_FLAGS + " -e pricing")
    assert shell.run_cell(PRICE_CELL).success
    versions = workspace_store(azure).search_model_versions("name='price'")
    assert [v.version for v in versions] == ["1"]
    registered = repr(shell.run_line_magic("aml_register", "price --run last"))
    assert f"https://ml.azure.emulator.test/model/price:2/details?{WSID}" in registered
    assert {v.version for v in workspace_store(azure).search_model_versions("name='price'")} == {
        "1", "2"}
    shell.run_cell("import pandas as pd\nhouses = pd.DataFrame({'rooms': [2.0], 'age': [10.0]})")
    scored = shell.run_line_magic("aml_score", "price:2 --input houses")
    assert scored["prediction"].round(6).tolist() == [10.0]


def test_an_existing_mlclient_can_be_reused(shell, azure, capsys):
    shell.run_cell(
        "from azure.ai.ml import MLClient\n"
        "from azure.identity import ManagedIdentityCredential\n"
        f"ml_client = MLClient(ManagedIdentityCredential(), '{azure.workspaces[0].subscription}',"
        " 'rg-notebooks', 'ws-churn')\n"
    )
    connection = shell.run_line_magic("aml_connect", "--from ml_client")
    assert connection.backend.name == "azure ml"
    assert "MLClient" in connection.origin


def test_an_azureml_core_workspace_can_be_reused(shell, azure, capsys):
    shell.run_cell(
        "from azureml.core import Workspace\n"
        "from azureml.core.authentication import MsiAuthentication\n"
        f"ws = Workspace('{azure.workspaces[0].subscription}', 'rg-notebooks', 'ws-churn',"
        " auth=MsiAuthentication())\n"
    )
    connection = shell.run_line_magic("aml_connect", "--from ws")
    assert connection.backend.name == "azure ml" and "Workspace" in connection.origin
    assert shell.run_cell("%%track --name v1\nimport mlflow\nmlflow.log_metric('m', 1.0)").success
    run = workspace_store(azure).get_run(current_session().last_tracked.run_id)
    assert run.data.metrics == {"m": 1.0}


def test_a_tracked_cell_outlives_its_token(shell, azure, capsys):
    azure.identity.token_lifetime = 2.0
    shell.run_line_magic("aml_connect", WORKSPACE_FLAGS + " --auth managed-identity")
    issued = len(azure.identity.tokens)
    cell = (
        "%%track --name long\n"
        "import mlflow, time\n"
        "for step in range(6):\n"
        "    mlflow.log_metric('loss', 1.0 / (step + 1), step=step)\n"
        "    time.sleep(1.0)\n"
    )
    assert shell.run_cell(cell).success
    run_id = current_session().last_tracked.run_id
    history = workspace_store(azure).get_metric_history(run_id, "loss")
    assert len(history) == 6
    assert len(azure.identity.tokens) > issued
    assert not [r for r in azure.requests if r.status == 401]


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("--workspace ws-churn --subscription 00000000-0000-0000-0000-000000000000 "
         "--resource-group rg-notebooks", "no subscription '00000000"),
        ("--workspace ws-churn --subscription 6d1c3a52-0000-4b1e-9c1f-2f6f1a7e0001 "
         "--resource-group rg-elsewhere", "no resource group 'rg-elsewhere'"),
        ("--workspace ws-other --subscription 6d1c3a52-0000-4b1e-9c1f-2f6f1a7e0001 "
         "--resource-group rg-notebooks", "no workspace 'ws-other'"),
        ("--workspace ws-churn", "--subscription and --resource-group missing"),
        ("--config missing/config.json", "no workspace config at missing/config.json"),
        ("--from nothing_here", "there is no variable 'nothing_here'"),
    ],
)
def test_wrong_workspace_settings_give_one_line_and_change_nothing(
    shell, azure, capsys, flags, expected
):
    shell.run_line_magic("aml_connect", "")
    before, uri_before = current_session().connection, mlflow.get_tracking_uri()
    capsys.readouterr()
    assert not shell.run_cell(f"%aml_connect {flags}").success
    assert expected in only_line(capsys)
    assert current_session().connection is before
    assert mlflow.get_tracking_uri() == uri_before


def test_no_credentials_or_a_refused_token_give_one_line_without_secrets(
    shell, azure, capsys, monkeypatch, caplog
):
    azure.identity.refuse_tokens = True
    shell.run_cell(f"%aml_connect {WORKSPACE_FLAGS} --auth managed-identity")
    line = only_line(capsys)
    assert "cannot sign in to Azure" in line and "az login" in line

    azure.identity.refuse_tokens = False
    for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET"):
        monkeypatch.delenv(name)
    started = time.monotonic()
    shell.run_cell(f"%aml_connect {WORKSPACE_FLAGS}")
    line = only_line(capsys)
    assert "cannot sign in to Azure" in line
    assert time.monotonic() - started < 60  # never a hang on a prompt
    assert current_session().connection is None
    # the SDKs' own warnings (one per credential tried) would print under the line
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_an_identity_without_a_role_on_the_workspace_is_one_line(shell, azure, capsys):
    azure.deny_mlflow = True
    assert not shell.run_cell(f"%aml_connect {WORKSPACE_FLAGS}").success
    line = only_line(capsys)
    assert "HTTP 403" in line and "AzureML Data Scientist" in line
    assert current_session().connection is None


def test_an_unknown_cloud_is_one_line(shell, azure, capsys, monkeypatch):
    monkeypatch.setenv("AZUREML_CURRENT_CLOUD", "NoSuchCloud")
    assert not shell.run_cell(f"%aml_connect {WORKSPACE_FLAGS}").success
    line = only_line(capsys)
    assert '"NoSuchCloud"' in line and "AZUREML_CURRENT_CLOUD" in line


def test_service_principal_secrets_come_only_from_the_environment(shell, azure, capsys):
    shell.run_cell(f"%aml_connect {WORKSPACE_FLAGS} --auth service-principal")
    line = only_line(capsys)
    assert "AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET" in line


def test_a_service_principal_from_the_environment_signs_in_and_tracks(shell, azure, capsys,
                                                                      monkeypatch):
    for name in MANAGED_IDENTITY_VARIABLES:
        monkeypatch.delenv(name)
    for name, value in azure.environment(service_principal=True).items():
        monkeypatch.setenv(name, value)
    connection = shell.run_line_magic("aml_connect", WORKSPACE_FLAGS + " --auth service-principal")
    assert "ws-churn" in repr(connection)
    assert shell.run_cell("%%track --name sp\nimport mlflow\nmlflow.log_metric('m', 1.0)").success
    run = workspace_store(azure).get_run(current_session().last_tracked.run_id)
    assert run.data.metrics == {"m": 1.0}
    assert f"/{TENANT}/oauth2/v2.0/token" in azure.paths(f"/{TENANT}/")
    assert not azure.paths("/msi/")
    assert os.environ["AZURE_CLIENT_SECRET"] not in "".join(capsys.readouterr())


def test_no_token_or_identity_secret_is_ever_shown(shell, azure, capsys):
    shell.run_line_magic("aml_connect", WORKSPACE_FLAGS)
    shell.run_cell("%%track\nimport mlflow\nmlflow.log_metric('m', 1.0)")
    shell.run_line_magic("aml_status", "")
    out = "".join(capsys.readouterr())
    tokens = azure.identity.tokens
    assert tokens and not any(token in out for token in tokens)
    assert "emulator-identity-header" not in out and "sig=" not in out


def test_the_azure_quickstart_notebook_runs_against_the_workspace(azure, workdir):
    (workdir / "config.json").write_text(json.dumps(azure.config_json()))
    nb = nbformat.read(REPO / "notebooks" / "azure_quickstart.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, resources={"metadata": {"path": str(workdir)}}).execute()
    experiment = workspace_store(azure).get_experiment_by_name("diabetes-azure")
    (run,) = workspace_store(azure).search_runs([experiment.experiment_id])
    assert run.info.run_name == "ridge" and run.info.status == "FINISHED"
    assert 30 < run.data.metrics["rmse"] < 90
    assert [v.version for v in workspace_store(azure).search_model_versions(
        "name='diabetes-azure'")] == ["1"]
    text = "\n".join(
        output.get("text", "") + output.get("data", {}).get("text/plain", "")
        for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs
    )
    assert "ws-churn" in text and "westeurope" in text
    assert f"https://ml.azure.emulator.test/runs/{run.info.run_id}?{WSID}" in text
    assert "prediction" in text
    predicted = [c for c in nb.cells if c.source.startswith("preds = %aml_predict")][0]
    assert "array(" in predicted.outputs[0]["data"]["text/plain"]
    assert "diabetes-api" not in azure.online.endpoints  # undeployed at the end
    calls = [r for r in azure.requests if r.path.startswith((ARM_PREFIX, MLFLOW_PREFIX))]
    assert calls and all(r.authorization for r in calls)
