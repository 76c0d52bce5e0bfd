"""Azure Databricks, as the source documents use it, against the project's Databricks
workspace emulator (tests/support/databricks): a notebook kernel started the way a cluster
starts one, and a laptop's shell with a personal access token."""

from __future__ import annotations

import json

import pytest
from conftest import only_line
from kernels import Kernel
from support.databricks.notebook import NotebookContext


@pytest.fixture(scope="module")
def notebook(databricks_service, tmp_path_factory):
    """A real kernel as a Databricks notebook, with nothing configured for mlmagic or MLflow
    (no tracking URI, no Databricks credentials in its environment): (context, kernel)."""
    root = tmp_path_factory.mktemp("databricks-notebook")
    context = NotebookContext(databricks_service, root / "context", spark=False).prepare()
    env = {**context.environment(), "HOME": str(root)}
    env.pop("MLFLOW_TRACKING_URI")
    work = root / "work"
    work.mkdir()
    kernel = Kernel(work, env).start()
    yield context, kernel
    kernel.stop()


def test_a_notebook_with_nothing_configured_tracks_into_the_workspace_and_its_notebook(
        notebook, databricks_service):
    context, kernel = notebook
    assert kernel.run("%load_ext mlmagic").status == "ok"
    connected = kernel.run("%aml_connect")
    assert connected.status == "ok", connected.text
    assert "databricks" in connected.text and context.path in connected.text
    assert "mlflow.db" not in connected.text  # never a file on the driver's disk
    tracked = kernel.run("%%track --name rooms\nimport mlflow\nmlflow.log_param('rooms', 3)\n"
                         "mlflow.log_metric('rmse', 0.5)")
    assert tracked.status == "ok", tracked.text
    shown = kernel.run("import json, mlmagic\nrun = mlmagic.last_run()\n"
                       "print(json.dumps({'experiment': run.info.experiment_id, "
                       "'tags': run.data.tags, 'params': run.data.params, "
                       "'status': run.info.status}))")
    found = json.loads(shown.text.splitlines()[-1])
    assert found["experiment"] == context.notebook_id  # the notebook's own experiment
    assert found["params"] == {"rooms": "3"} and found["status"] == "FINISHED"
    tags = found["tags"]
    assert tags["mlflow.databricks.notebookPath"] == context.path
    assert tags["mlflow.databricks.notebookID"] == context.notebook_id
    assert tags["mlflow.databricks.cluster.id"] == context.cluster_id
    assert not databricks_service.not_emulated


def test_a_wrong_token_is_one_line_and_nothing_is_connected(shell, databricks, monkeypatch,
                                                             capsys):
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi" + "0" * 32)
    assert not shell.run_cell("%aml_connect databricks -e /Users/someone/churn").success
    line = only_line(capsys)
    assert "refused" in line.lower() or "token" in line.lower(), line
    assert "0" * 32 not in line  # the token is never shown
    assert not shell.run_cell("%%track\nx = 1").success  # nothing goes anywhere else
    assert "the last connect failed" in only_line(capsys)


def test_from_a_laptop_a_workspace_path_experiment_tracks_and_the_card_links_to_the_run(
        shell, databricks, capsys):
    experiment = f"/Users/{databricks.user}/forecasts/churn"
    connection = shell.run_line_magic("aml_connect", f"databricks -e {experiment}")
    assert connection.experiment_name == experiment
    assert shell.run_cell("%%track --name laptop\nimport mlflow\n"
                          "mlflow.log_metric('rmse', 0.25)").success
    import mlmagic

    run = mlmagic.last_run()
    assert run.info.experiment_id == connection.experiment_id and run.data.metrics == {
        "rmse": 0.25}
    card = repr(mlmagic.core.last_run_summary())
    assert (f"{databricks.url}/ml/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
            in card)
    assert databricks.token not in capsys.readouterr().out + card  # the token is never shown


def test_no_databricks_credentials_is_one_line_naming_what_to_set(shell, databricks,
                                                                  monkeypatch, capsys):
    for name in ("DATABRICKS_HOST", "DATABRICKS_TOKEN"):
        monkeypatch.delenv(name)
    assert not shell.run_cell("%aml_connect databricks").success
    line = only_line(capsys)
    assert "DATABRICKS_HOST" in line and "databrickscfg" in line


UNSIGNED_CELL = (
    "%%track --name unsigned\n"
    "import mlflow\n"
    "import pandas as pd\n"
    "from sklearn.linear_model import LinearRegression\n"
    "X = pd.DataFrame({'rooms': [1.0, 2.0, 3.0], 'age': [30.0, 20.0, 10.0]})\n"
    "reg = LinearRegression().fit(X, 10 * X['rooms'] - X['age'])\n"
    "mlflow.sklearn.log_model(reg, name='model'EXAMPLE)\n"
)


def test_unity_catalog_names_and_signatures_are_checked_before_anything_is_created(
        shell, databricks, capsys):
    import mlflow

    shell.run_line_magic("aml_connect", f"databricks -e /Users/{databricks.user}/uc")
    assert mlflow.get_registry_uri().startswith("databricks-uc")  # Databricks' default
    assert shell.run_cell(UNSIGNED_CELL.replace("EXAMPLE", "")).success
    capsys.readouterr()
    assert not shell.run_cell("%aml_register main.default.unsigned --run last").success
    assert "registers only models with a signature" in only_line(capsys)
    assert not shell.run_cell("%aml_register default.unsigned --run last").success
    assert "catalog.schema.model" in only_line(capsys)
    assert "main.default.unsigned" not in databricks.unity.models  # nothing left behind
    assert shell.run_cell(UNSIGNED_CELL.replace("EXAMPLE", ", input_example=X.head(2)")).success
    card = repr(shell.run_line_magic("aml_register", "main.default.signed --run last"))
    assert "main.default.signed version 1" in card


# Databricks' cell output limits (docs.databricks.com/en/notebooks/notebook-limitations.html):
# in DBR 17 a cell's output is cut at 10 MB by default, settable down to 1 MB; up to DBR 16.4 a
# text result is cut at 50,000 characters. The panel stays under the smallest of them.
OUTPUT_LIMIT = 1_000_000
TEXT_LIMIT = 50_000


def fill_runs(workspace, experiment_id: str, count: int) -> None:
    """``count`` finished runs in the experiment, straight into the workspace's store, each
    with a long param and a few metrics."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    client = MlflowClient(tracking_uri=workspace.mlflow_url)
    quiet = pytest.MonkeyPatch()
    quiet.setenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # no "View run" lines
    for i in range(count):
        run_id = client.create_run(experiment_id, run_name=f"sweep-{i:03d}",
                                   start_time=1_700_000_000_000 + i).info.run_id
        client.log_batch(run_id, params=[Param("notes", f"{i} " + "x" * 2000)], metrics=[
            Metric(f"m{k}", i / (k + 1), 1_700_000_000_000, 0) for k in range(8)])
        client.set_terminated(run_id, end_time=1_700_000_000_500 + i)
    quiet.undo()


def test_on_runtime_13_or_later_the_panel_is_the_widget(notebook, databricks_service):
    context, kernel = notebook
    before = len(context.displayed())
    assert kernel.run("%load_ext mlmagic\n%aml_connect").status == "ok"
    shown = kernel.run("%aml_panel")
    assert shown.status == "ok", shown.text
    (bundle,) = shown.displays
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert len(context.displayed()) == before  # no displayHTML: the widget shows
    assert shown.size < OUTPUT_LIMIT


@pytest.fixture(scope="module")
def old_notebook(databricks_service, tmp_path_factory):
    """A notebook kernel on Databricks Runtime 12.2 (ipywidgets only in preview there), its
    experiment holding 500 runs: (context, kernel)."""
    root = tmp_path_factory.mktemp("databricks-12")
    context = NotebookContext(databricks_service, root / "context", spark=False,
                              path=f"/Users/{databricks_service.user}/sweeps", runtime="12.2"
                              ).prepare()
    fill_runs(databricks_service, context.notebook_id, 500)
    env = {**context.environment(), "HOME": str(root)}
    work = root / "work"
    work.mkdir()
    kernel = Kernel(work, env).start()
    yield context, kernel
    kernel.stop()


def test_before_runtime_13_the_panel_is_its_summary_through_display_html(
        old_notebook, databricks_service):
    context, kernel = old_notebook
    assert kernel.run("%load_ext mlmagic\n%aml_connect").status == "ok"
    shown = kernel.run("%aml_panel")
    assert shown.status == "ok", shown.text
    assert not any("application/vnd.jupyter.widget-view+json" in d for d in shown.displays)
    (summary,) = context.displayed()
    assert "mlmagic panel" in summary and "Databricks Runtime 13" in summary
    assert "sweep-499" in summary and f"{databricks_service.url}/ml/experiments/" in summary
    assert len(summary) < OUTPUT_LIMIT and shown.size < OUTPUT_LIMIT
    assert kernel.run("import threading\nprint(sorted(t.name for t in threading.enumerate() "
                      "if t.name.startswith('mlmagic')))").text.strip() == "[]"
    assert not databricks_service.not_emulated


WAITING_CELL = (
    "%%track --name {name}\n"
    "import mlflow, os, time\n"
    "mlflow.log_param('rooms', 3)\n"
    "mlflow.log_metric('rmse', 1.0, step=0)\n"
    "while not os.path.exists({flag!r}):  # the token changes now\n"
    "    time.sleep(0.05)\n"
    "for step in range(1, 4):\n"
    "    mlflow.log_metric('rmse', 1.0 / (step + 1), step=step)\n"
    "cell_done = True\n"
)


def _track_while_the_token_changes(kernel, workspace, tmp_path, name: str, change):
    """Run WAITING_CELL, call ``change()`` once its run exists in the workspace, then let it
    go on; what the cell did, and the run's id."""
    import time

    flag = tmp_path / f"{name}.go"
    submitted = kernel.submit(WAITING_CELL.format(name=name, flag=str(flag)))
    deadline = time.monotonic() + 120
    while not any(r.path.endswith("/runs/create") and r.status == 200
                  for r in workspace.requests):
        assert time.monotonic() < deadline, "the tracked cell created no run"
        time.sleep(0.05)
    change()
    flag.touch()
    done = kernel.wait(submitted)
    run_id = kernel.value("mlmagic.core.current_session().last_tracked.run_id")
    return done, run_id


def test_a_token_that_expires_mid_cell_is_one_line_and_the_run_is_kept_for_sync(
        notebook, databricks_service, tmp_path):
    context, kernel = notebook
    assert kernel.run("%load_ext mlmagic\n%aml_connect\nimport mlmagic").status == "ok"
    databricks_service.reset()
    done, run_id = _track_while_the_token_changes(
        kernel, databricks_service, tmp_path, "expiring",
        lambda: databricks_service.expire(context.token))
    assert done.status == "ok" and "Traceback" not in done.text, done.text
    assert kernel.value("cell_done") == "True"  # the user's cell ran to its end
    notices = [line for line in done.outputs if line.startswith("mlmagic:")]
    assert len(notices) == 1, done.outputs
    (notice,) = notices
    assert "refused the notebook's token" in notice and "expired" in notice, notice
    assert ".mlmagic/journal/" in notice and "%aml_sync" in notice, notice
    assert "(offline)" in done.text  # the run's card says where it is
    assert databricks_service.mlflow_get("runs/get", run_id=run_id)["run"]["info"][
        "status"] == "RUNNING"  # the workspace could not be told yet
    refused = kernel.run("%aml_sync")  # still the expired token: one line, the journal kept
    (line,) = refused.outputs
    assert line.startswith("PermissionDenied: databricks refused the notebook's token"), line
    assert databricks_service.mlflow_get("runs/get", run_id=run_id)["run"]["info"][
        "status"] == "RUNNING"
    context.rotate_token()  # the notebook gets a live token again
    synced = kernel.run("%aml_sync")
    assert synced.status == "ok" and "Traceback" not in synced.text, synced.text
    run = databricks_service.mlflow_get("runs/get", run_id=run_id)["run"]
    assert run["info"]["status"] == "FINISHED"
    assert {m["key"]: m["value"] for m in run["data"]["metrics"]} == {"rmse": 0.25}
    assert {p["key"]: p["value"] for p in run["data"]["params"]} == {"rooms": "3"}
    assert not databricks_service.not_emulated


def test_a_token_refreshed_mid_cell_just_goes_on(notebook, databricks_service, tmp_path):
    context, kernel = notebook
    assert kernel.run("%load_ext mlmagic\n%aml_connect\nimport mlmagic").status == "ok"
    databricks_service.reset()
    old = context.token

    def refresh():  # as Databricks refreshes a notebook's token, the old one then refused
        context.rotate_token()
        databricks_service.expire(old)

    done, run_id = _track_while_the_token_changes(kernel, databricks_service, tmp_path,
                                                  "refreshed", refresh)
    assert done.status == "ok" and not any(line.startswith("mlmagic:")
                                           for line in done.outputs), done.text
    run = databricks_service.mlflow_get("runs/get", run_id=run_id)["run"]
    assert run["info"]["status"] == "FINISHED"
    assert {m["key"]: m["value"] for m in run["data"]["metrics"]} == {"rmse": 0.25}


@pytest.mark.parametrize("name", ["churn", "default.churn", "main..churn"])
def test_track_register_under_unity_catalog_checks_the_name_before_the_run_starts(
        shell, databricks, capsys, name):
    import mlflow

    connection = shell.run_line_magic("aml_connect",
                                      f"databricks -e /Users/{databricks.user}/uc-names")
    assert mlflow.get_registry_uri().startswith("databricks-uc")
    capsys.readouterr()
    runs_before = len(mlflow.search_runs([connection.experiment_id]))
    models_before = set(databricks.unity.models)  # the workspace keeps other tests' models
    cell = UNSIGNED_CELL.replace("--name unsigned", f"--register {name}").replace(
        "EXAMPLE", ", input_example=X.head(2)") + "cell_ran = True\n"
    assert not shell.run_cell(cell).success
    line = only_line(capsys)
    assert "catalog.schema.model" in line and "Traceback" not in line, line
    assert "cell_ran" not in shell.user_ns  # nothing ran, nothing was created
    assert len(mlflow.search_runs([connection.experiment_id])) == runs_before
    assert set(databricks.unity.models) == models_before


def test_track_register_of_a_model_without_signature_under_unity_catalog_keeps_the_run(
        shell, databricks, capsys):

    shell.run_line_magic("aml_connect", f"databricks -e /Users/{databricks.user}/uc-unsigned")
    capsys.readouterr()
    models_before = set(databricks.unity.models)
    cell = UNSIGNED_CELL.replace("--name unsigned", "--name unsigned --register "
                                 "main.default.unsigned").replace("EXAMPLE", "")
    assert not shell.run_cell(cell + "cell_ran = True\n").success
    shown = capsys.readouterr()
    errors = [line for line in (shown.out + shown.err).splitlines() if "InvalidInput" in line]
    assert len(errors) == 1 and "Traceback" not in shown.out + shown.err, shown
    assert "registers only models with a signature" in errors[0]
    assert "The run unsigned is kept (FINISHED)." in errors[0]
    assert shell.user_ns["cell_ran"] is True
    import mlmagic

    assert mlmagic.last_run().info.status == "FINISHED"  # the run is kept, finished
    assert set(databricks.unity.models) == models_before  # no empty registered model left


def test_under_the_workspace_registry_a_one_part_name_registers(shell, databricks, capsys,
                                                                monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "databricks")  # the workspace's, not UC's
    shell.run_line_magic("aml_connect", f"databricks -e /Users/{databricks.user}/workspace-reg")
    assert mlflow.get_registry_uri() == "databricks"
    models_before = set(databricks.unity.models)
    cell = UNSIGNED_CELL.replace("--name unsigned", "--register churn-workspace").replace(
        "EXAMPLE", "")  # the workspace registry takes a model without a signature
    assert shell.run_cell(cell).success
    assert "model churn-workspace version 1" in capsys.readouterr().out
    assert set(databricks.unity.models) == models_before  # none of it in Unity Catalog
