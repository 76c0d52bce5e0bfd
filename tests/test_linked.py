"""Linked workspaces (the source documents' Azure Databricks + Azure ML scenario): every tracked
cell recorded in the Databricks workspace and in the Azure ML workspace, against both
emulators at once (tests/support/databricks and tests/support/azure)."""

from __future__ import annotations

import json
import uuid

import pytest
from conftest import WORKSPACE_FLAGS, only_line
from kernels import Kernel
from support.databricks.notebook import NotebookContext

from mlmagic.core.mirror import LINK_TAG, LINKED_RUN_TAG, LINKED_URL_TAG

CELL = ("%%track --name linked\n"
        "import mlflow\n"
        "mlflow.log_param('alpha', 0.5)\n"
        "mlflow.set_tag('team', 'churn')\n"
        "for step in range(50):\n"
        "    mlflow.log_metric('loss', 1 / (step + 1), step=step)\n"
        "open('notes.txt', 'w').write('kept in both')\n"
        "mlflow.log_artifact('notes.txt')\n")


def runs_of(tracking_uri: str, experiment_name: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment_name)
    return client.search_runs([found.experiment_id]) if found else []


def the_pair(databricks_experiment: str, azure_experiment: str, azure):
    """The one run in each workspace, checked to be the same cell's."""
    (databricks_run,) = runs_of("databricks", databricks_experiment)
    (azure_run,) = runs_of(azure.tracking_uri(), azure_experiment)
    return databricks_run, azure_run


def assert_linked(databricks_run, azure_run, azure) -> None:
    from mlflow import MlflowClient

    for run in (databricks_run, azure_run):
        assert run.info.status == "FINISHED" and run.info.run_name == "linked"
        assert run.data.params == {"alpha": "0.5"} and run.data.tags["team"] == "churn"
        assert run.data.metrics == {"loss": 1 / 50}
    assert databricks_run.data.tags[LINK_TAG] == azure_run.data.tags[LINK_TAG]
    assert databricks_run.data.tags[LINKED_RUN_TAG] == azure_run.info.run_id
    assert azure_run.data.tags[LINKED_RUN_TAG] == databricks_run.info.run_id
    assert azure_run.info.run_id in databricks_run.data.tags[LINKED_URL_TAG]
    assert databricks_run.info.run_id in azure_run.data.tags[LINKED_URL_TAG]
    history = MlflowClient(azure.tracking_uri()).get_metric_history(azure_run.info.run_id, "loss")
    assert [point.step for point in history] == list(range(50))  # every point, not the last
    artifacts = {a.path for a in MlflowClient(azure.tracking_uri()).list_artifacts(
        azure_run.info.run_id)}
    assert {"cell.py", "notes.txt"} <= artifacts


@pytest.fixture
def folder() -> str:
    """A workspace folder of this test's own (the emulated workspaces outlive a test)."""
    return f"linked{uuid.uuid4().hex[:8]}"


@pytest.fixture
def both(shell, databricks, azure, capsys, folder):
    """A laptop's shell tracking into the Databricks workspace and the linked Azure ML one."""
    experiment = f"/Users/{databricks.user}/{folder}/churn"
    connection = shell.run_line_magic(
        "aml_connect", f"databricks -e {experiment} {WORKSPACE_FLAGS} --track both")
    capsys.readouterr()
    return shell, connection, experiment


def test_both_records_every_cell_in_each_workspace_with_the_others_id_and_link(both, azure,
                                                                             folder):
    shell, connection, experiment = both
    assert connection.mirror.experiment_name == f"{folder}-churn"  # a name Azure ML accepts
    assert f"{folder}-churn" in repr(connection) and experiment in repr(connection)
    assert shell.run_cell(CELL).success
    databricks_run, azure_run = the_pair(experiment, f"{folder}-churn", azure)
    assert_linked(databricks_run, azure_run, azure)
    import mlmagic

    card = repr(mlmagic.core.last_run_summary())
    assert azure_run.info.run_id in card  # the card links to the Azure ML run too


def test_azureml_only_tracks_in_the_azure_ml_workspace(shell, databricks, azure, folder):
    experiment = f"/Users/{databricks.user}/{folder}/only-azure"
    connection = shell.run_line_magic(
        "aml_connect", f"-e {experiment} {WORKSPACE_FLAGS} --track azureml")
    assert connection.mirror is None and connection.backend.name == "azure ml"
    assert shell.run_cell(CELL).success
    assert runs_of("databricks", experiment) == []
    assert len(runs_of(azure.tracking_uri(), f"{folder}-only-azure")) == 1


@pytest.mark.parametrize("line, expected", [
    ("--track both", "needs an Azure ML workspace"),
    ("--track azureml", "needs an Azure ML workspace"),
    ("--track everywhere", "invalid choice"),
])
def test_a_track_mode_without_what_it_needs_is_one_line_and_nothing_changes(
        shell, databricks, capsys, line, expected):
    shell.run_line_magic("aml_connect", f"databricks -e /Users/{databricks.user}/before")
    capsys.readouterr()
    assert not shell.run_cell(f"%aml_connect databricks {line}").success
    assert expected in only_line(capsys)
    from mlmagic.core.session import current_session

    assert current_session().connection.experiment_name == f"/Users/{databricks.user}/before"


def test_with_the_azure_side_down_its_half_waits_in_the_journal_and_sync_sends_it_once(
        both, azure, capsys, folder):
    shell, connection, experiment = both
    azure.unreachable = True
    try:
        assert shell.run_cell(CELL).success  # the cell is not failed by the mirror
        said = capsys.readouterr()
        assert "Traceback" not in said.out + said.err
        assert "ws-churn" in said.err and "%aml_sync" in said.err
        (databricks_run,) = runs_of("databricks", experiment)
        assert databricks_run.info.status == "FINISHED"
    finally:
        azure.unreachable = False
    assert runs_of(azure.tracking_uri(), f"{folder}-churn") == []
    report = shell.run_line_magic("aml_sync", "")
    assert "synced 1 run(s)" in repr(report)
    shell.run_line_magic("aml_sync", "")  # a second sync sends nothing again
    databricks_run, azure_run = the_pair(experiment, f"{folder}-churn", azure)
    assert azure_run.data.params == {"alpha": "0.5"}
    assert azure_run.data.metrics == {"loss": 1 / 50} and azure_run.info.status == "FINISHED"
    assert databricks_run.data.tags[LINKED_RUN_TAG] == azure_run.info.run_id  # linked at sync
    assert azure_run.data.tags[LINKED_RUN_TAG] == databricks_run.info.run_id


def test_both_outside_databricks_mirrors_a_local_store_into_the_workspace(shell, azure, workdir,
                                                                         folder):
    connection = shell.run_line_magic(
        "aml_connect", f"sqlite:///{workdir / 'mlflow.db'} -e {folder} {WORKSPACE_FLAGS} "
        "--track both")
    assert connection.backend.name != "azure ml" and connection.mirror.experiment_name == folder
    assert shell.run_cell(CELL.replace("linked", "laptop")).success
    (local,) = runs_of(connection.tracking_uri, folder)
    mirrored = [r for r in runs_of(azure.tracking_uri(), folder)
                if r.data.tags.get(LINK_TAG) == local.data.tags[LINK_TAG]]
    assert len(mirrored) == 1 and mirrored[0].data.params == {"alpha": "0.5"}


@pytest.fixture(scope="module")
def notebook(databricks_service, azure_service, tmp_path_factory):
    """A real kernel as a Databricks notebook whose cluster can reach the Azure ML workspace
    (the emulator's public settings, its managed identity): (context, kernel)."""
    root = tmp_path_factory.mktemp("linked-notebook")
    context = NotebookContext(databricks_service, root / "context", spark=False).prepare()
    env = {**context.environment(), **azure_service.environment(), "HOME": str(root)}
    env.pop("MLFLOW_TRACKING_URI")
    work = root / "work"
    work.mkdir()
    kernel = Kernel(work, env).start()
    yield context, kernel
    kernel.stop()


def test_in_a_databricks_notebook_naming_the_workspace_tracks_in_both(notebook, azure):
    context, kernel = notebook
    loaded = kernel.run("%load_ext mlmagic")
    assert loaded.status == "ok", loaded.text
    connected = kernel.run(f"%aml_connect {WORKSPACE_FLAGS}")
    assert connected.status == "ok", connected.text
    assert "ws-churn" in connected.text and context.path in connected.text
    assert kernel.run(CELL).status == "ok"
    shown = kernel.run("import json, mlmagic\nrun = mlmagic.last_run()\n"
                       "print(json.dumps({'tags': run.data.tags}))")
    tags = json.loads(shown.text.splitlines()[-1])["tags"]
    assert tags["mlflow.databricks.notebookPath"] == context.path  # the primary is Databricks
    (azure_run,) = [r for r in runs_of(azure.tracking_uri(), "churn-notebook")
                    if r.data.tags.get(LINK_TAG) == tags[LINK_TAG]]
    assert azure_run.info.run_id == tags[LINKED_RUN_TAG]
    # the notebook's provenance goes with the mirror
    assert azure_run.data.tags["mlflow.databricks.notebookPath"] == context.path


def test_in_a_notebook_the_azure_side_down_is_one_line_under_the_cell(notebook, azure):
    context, kernel = notebook
    assert kernel.run("%load_ext mlmagic").status == "ok"
    assert kernel.run(f"%aml_connect {WORKSPACE_FLAGS}").status == "ok"
    azure.unreachable = True
    try:
        tracked = kernel.run("%%track --name offline-half\nimport mlflow\n"
                             "mlflow.log_metric('rmse', 0.5)")
    finally:
        azure.unreachable = False
    assert tracked.status == "ok", tracked.text
    said = [line for line in tracked.text.splitlines() if line.startswith("mlmagic:")]
    assert len(said) == 1 and "%aml_sync" in said[0], tracked.text
    assert "Retrying" not in tracked.text and "Traceback" not in tracked.text, tracked.text


def test_a_cluster_started_with_the_init_script_links_a_new_notebook_with_no_arguments(
        shell, azure, databricks_service, tmp_path):
    import shlex

    from test_setup import run_script

    shell.run_line_magic("aml_connect", WORKSPACE_FLAGS)
    script = shell.run_line_magic("aml_init_script", f"-o {tmp_path / 'init.sh'}")
    cluster = tmp_path / "cluster"
    run_script(script, cluster)  # as the cluster runs it at start, in its own root
    spark_env = (cluster / "databricks" / "spark" / "conf" / "spark-env.sh").read_text()
    exported = dict(shlex.split(line)[1].split("=", 1) for line in spark_env.splitlines()
                    if line.startswith("export "))
    context = NotebookContext(databricks_service, tmp_path / "context", spark=False).prepare()
    env = {**context.environment(), **azure.environment(), **exported,
           "HOME": str(tmp_path)}
    kernel = Kernel(cluster / "databricks" / "driver", env).start()  # the notebook's folder
    try:
        assert kernel.run("%load_ext mlmagic").status == "ok"
        connected = kernel.run("%aml_connect")
        assert connected.status == "ok", connected.text
        assert "also tracked in" in connected.text and "ws-churn" in connected.text
        assert context.path in connected.text  # the notebook's experiment, in Databricks
        assert kernel.run("%%track\nimport mlflow\nmlflow.log_metric('rmse', 0.5)").status == "ok"
        shown = kernel.run("import mlmagic\nprint(mlmagic.last_run().data.tags["
                           f"'{LINKED_RUN_TAG}'])")
        mirrored = shown.text.strip().splitlines()[-1]
        (azure_run,) = [run for run in runs_of(azure.tracking_uri(), "churn-notebook")
                        if run.info.run_id == mirrored]
        assert azure_run.data.metrics == {"rmse": 0.5}
    finally:
        kernel.stop()
