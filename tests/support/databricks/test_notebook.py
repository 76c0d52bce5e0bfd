"""A real Jupyter kernel started like a Databricks notebook: MLflow and databricks-sdk find the
workspace and the token in the notebook context (no DATABRICKS_TOKEN in the environment), a run
gets the notebook's tags and experiment, and ``spark`` is a working SparkSession."""

from __future__ import annotations

import json

from .notebook import NotebookContext


def run_ok(kernel, code: str) -> str:
    """Run a cell that must succeed; what it printed."""
    done = kernel.run(code, timeout=300)
    assert done.status == "ok", done.text
    return done.text.strip()


def test_mlflow_finds_the_workspace_and_token_in_the_notebook_context(notebook,
                                                                         databricks_service):
    context, kernel = notebook
    databricks_service.reset()
    assert run_ok(kernel, "import os; print(sorted(k for k in os.environ "
                          "if k.startswith('DATABRICKS_')))") == "['DATABRICKS_RUNTIME_VERSION']"
    shown = run_ok(kernel, (
        "import json, mlflow\n"
        "with mlflow.start_run() as run:\n"
        "    mlflow.log_param('rooms', 3)\n"
        "    mlflow.log_text('rooms matter', 'notes.txt')\n"
        "got = mlflow.get_run(run.info.run_id)\n"
        "print(json.dumps({'experiment': got.info.experiment_id, 'tags': got.data.tags,\n"
        "                  'uri': got.info.artifact_uri, 'user': got.info.user_id}))"))
    found = json.loads(shown.splitlines()[-1])
    tags = found["tags"]
    assert found["experiment"] == context.notebook_id  # the notebook's own experiment
    assert tags["mlflow.source.name"] == tags["mlflow.databricks.notebookPath"] == context.path
    assert tags["mlflow.source.type"] == "NOTEBOOK"
    assert tags["mlflow.databricks.notebookID"] == context.notebook_id
    assert tags["mlflow.databricks.cluster.id"] == context.cluster_id
    assert tags["mlflow.databricks.webappURL"] == databricks_service.url
    assert found["user"] == tags["mlflow.user"] == context.user
    assert found["uri"].startswith(f"dbfs:/databricks/mlflow-tracking/{context.notebook_id}/")
    stored = (f"/WorkspaceInternal/Mlflow/Artifacts/{context.notebook_id}/Runs/"
              f"{found['uri'].split('/')[-2]}/artifacts")
    assert databricks_service.storage.stored(stored) == [f"{stored}/notes.txt"]
    signed = {r.token for r in databricks_service.requests if r.path.startswith("/api/")}
    assert signed == {f"{context.user} …{context.token[-4:]}"}
    assert not databricks_service.not_emulated


def test_the_sdk_signs_in_with_the_notebook_token(notebook, databricks_service):
    context, kernel = notebook
    databricks_service.reset()
    shown = run_ok(kernel, (
        "from databricks.sdk import WorkspaceClient\n"
        "w = WorkspaceClient()\n"
        "print(w.config.auth_type, w.config.host, w.current_user.me().user_name)"))
    assert shown.splitlines()[-1] == f"runtime {databricks_service.url} {context.user}"
    assert not databricks_service.not_emulated


def test_a_refreshed_notebook_token_is_used_and_the_old_one_is_refused(notebook,
                                                                       databricks_service):
    context, kernel = notebook
    databricks_service.reset()
    old = context.token
    new = context.rotate_token()
    databricks_service.expire(old)
    run_ok(kernel, "import mlflow\nwith mlflow.start_run():\n    mlflow.log_metric('rmse', 0.5)")
    used = {r.token for r in databricks_service.requests if r.path.startswith("/api/")}
    assert used == {f"{context.user} …{new[-4:]}"}


def test_spark_and_the_notebook_globals_are_there(notebook):
    _, kernel = notebook
    shown = run_ok(kernel, (
        "from pyspark.sql import SparkSession\n"
        "print(isinstance(spark, SparkSession), spark.range(5).count(), sc.master,\n"
        "      sc is spark.sparkContext, callable(display), callable(displayHTML),\n"
        "      dbutils.notebook.entry_point.getDbutils().notebook().getContext()\n"
        "      .tags().get('orgId').get())"))
    assert shown.splitlines()[-1] == "True 5 local[1] True True True 1234567890123456"
    shown = run_ok(kernel, "display(spark.range(2).withColumnRenamed('id', 'rooms'))")
    assert shown.split() == ["rooms", "0", "0", "1", "1"]  # as a pandas table
    kept = run_ok(kernel, "print([type(x).__name__ for x in display.shown])")
    assert kept.splitlines()[-1] == "['DataFrame']"  # what display got, for the tests to read


def test_managed_tables_go_to_the_clusters_warehouse(notebook):
    context, kernel = notebook
    shown = run_ok(kernel, (
        "spark.range(3).write.saveAsTable('three')\n"
        "print(spark.table('three').count(), spark.conf.get('spark.sql.warehouse.dir'))"))
    count, warehouse = shown.splitlines()[-1].split()
    assert count == "3" and warehouse.removeprefix("file:") == str(context.warehouse)
    assert (context.warehouse / "three").is_dir()


def test_an_in_process_shell_can_be_the_notebook(databricks_service, tmp_path):
    """``enter_notebook`` in a fresh process's InteractiveShell (no spark): MLflow then finds
    the workspace from the context."""
    import subprocess
    import sys
    from pathlib import Path

    from servers import clean_environment

    from .notebook import DATABRICKS_VARIABLES, NotebookContext

    context = NotebookContext(databricks_service, tmp_path / "context", spark=False).prepare()
    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from pathlib import Path\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "from support.databricks.notebook import enter_notebook\n"
        "shell = InteractiveShell.instance()\n"
        "enter_notebook(shell, Path(sys.argv[2]))\n"
        "from mlflow.utils import databricks_utils as utils\n"
        "print(utils.is_in_databricks_notebook(), utils.get_notebook_path(),\n"
        "      utils.get_databricks_host_creds('databricks').host,\n"
        "      type(shell.user_ns['dbutils']).__name__)\n")
    tests = str(Path(__file__).parents[2])
    done = subprocess.run([sys.executable, "-c", script, tests, str(context.root)],
                          env={**clean_environment(*DATABRICKS_VARIABLES), "HOME": str(tmp_path)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", context.path, databricks_service.url, "DBUtils"]


def test_display_html_shows_and_records_what_it_received(notebook):
    context, kernel = notebook
    before = len(context.displayed())
    shown = kernel.run("displayHTML('<b>rooms</b> matter')\n"
                       "displayHTML('<i>twice</i>')")
    assert shown.status == "ok", shown.text
    assert "IPython.core.display.HTML" in shown.text  # shown as the runtime shows HTML
    assert context.displayed()[before:] == ["<b>rooms</b> matter", "<i>twice</i>"]


def test_an_older_runtime_is_a_notebook_of_that_version(databricks_service, tmp_path):
    context = NotebookContext(databricks_service, tmp_path, spark=False, runtime="12.2")
    assert context.prepare().environment()["DATABRICKS_RUNTIME_VERSION"] == "12.2"
    assert context.displayed() == []
