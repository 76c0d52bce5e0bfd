"""notebooks/databricks_quickstart.ipynb, top to bottom, in a real kernel started as a
Databricks notebook (its context, `dbutils`, a real `spark`, `display`) whose cluster reaches
the linked Azure ML workspace: both emulators at once."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import nbformat
import pandas as pd
from mlflow import MlflowClient
from nbclient import NotebookClient
from support.databricks.notebook import NotebookContext
from test_azure import workspace_store

from mlmagic.core.mirror import LINKED_RUN_TAG

REPO = Path(__file__).resolve().parents[1]


def shown(nb) -> str:
    """Everything the executed notebook shows, as text."""
    return "\n".join(
        output.get("text", "") + output.get("data", {}).get("text/plain", "")
        for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs)


def test_the_databricks_quickstart_runs_in_a_notebook_linked_to_azure_ml(
        databricks, azure, tmp_path):
    path = f"/Users/{databricks.user}/quickstart-{uuid.uuid4().hex[:8]}"  # a notebook of its own
    context = NotebookContext(databricks, tmp_path / "context", path=path).prepare()
    env = {**context.environment(), **azure.environment(), "HOME": str(tmp_path)}
    env.pop("MLFLOW_TRACKING_URI")  # nothing configured but the workspace's config.json
    work = tmp_path / "driver"
    work.mkdir()
    (work / "config.json").write_text(json.dumps(azure.config_json()))
    nb = nbformat.read(REPO / "notebooks" / "databricks_quickstart.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, resources={"metadata": {"path": str(work)}}).execute(env=env)

    text = shown(nb)
    assert "also tracked in" in text and "ws-churn" in text
    databricks_store = MlflowClient("databricks")
    (run,) = databricks_store.search_runs([context.notebook_id])
    assert run.info.run_name == "ridge" and run.info.status == "FINISHED"
    assert 30 < run.data.metrics["rmse"] < 90
    mirror = workspace_store(azure).get_run(run.data.tags[LINKED_RUN_TAG])
    assert mirror.data.metrics == run.data.metrics and mirror.info.status == "FINISHED"
    assert "main.default.diabetes" in databricks.unity.models  # Unity Catalog
    assert "copied" in text and "diabetes-api" not in azure.online.endpoints  # undeployed
    predicted = [c for c in nb.cells if c.source.startswith("preds = %aml_predict")][0]
    assert "array(" in predicted.outputs[0]["data"]["text/plain"]
    scored = pd.read_parquet(context.warehouse / "diabetes_scored")
    assert len(scored) == 111 and "prediction" in scored.columns
    central = workspace_store(azure).get_experiment_by_name("diabetes-central")
    (lasso,) = workspace_store(azure).search_runs([central.experiment_id])  # only in Azure ML
    assert lasso.info.run_name == "lasso" and "rmse" in lasso.data.metrics
    assert databricks.token not in text and not any(t in text for t in azure.identity.tokens)
