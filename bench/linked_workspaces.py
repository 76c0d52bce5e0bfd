"""Linked workspaces (`%aml_connect databricks ... --track both`) against the Databricks and
Azure emulators on 127.0.0.1: what a logged metric point costs in a 10,000-point `%%track`
cell that goes to both workspaces, next to the same cell tracked in one of them.

The whole cell is timed (run creation, the mirror's, artifacts, every point sent, both runs
ended). The emulators forward MLflow's calls to local `mlflow server`s; the ratios are what
this measures, not the services' own latency.

    python bench/linked_workspaces.py
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from _common import MlflowServer, alternate, run_quietly, tracked_shell

POINTS = 10_000
CELL = (f"%%track\nimport mlflow\nfor step in range({POINTS}):\n"
        "    mlflow.log_metric('loss', 1.0 / (step + 1), step=step)\n")


def measure(rounds: int = 3) -> dict:
    """Per-point milliseconds of a cell tracked in Databricks, in Azure ML, and in both."""
    from support.azure import AzureEmulator, Workspace
    from support.databricks import start_workspace

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for name in ("databricks-store", "azure-store", "azure"):
            (root / name).mkdir()
        stores = [MlflowServer(root / "databricks-store").start(),
                  MlflowServer(root / "azure-store").start()]
        databricks = start_workspace(root / "databricks", stores[0])
        workspace = Workspace("00000000-0000-0000-0000-00000000bench", "rg-bench", "ws-bench")
        azure = AzureEmulator(root / "azure", stores[1].url, workspace).start()
        os.environ.update({**databricks.environment(), **azure.environment()})
        named = (f"-e /Users/{databricks.user}/bench --workspace ws-bench "
                 f"--subscription {workspace.subscription} -g rg-bench")
        shell = tracked_shell()
        try:
            def tracked(line: str):
                def cell() -> float:  # connected first, the cell alone timed
                    run_quietly(shell, f"%aml_connect {line}")
                    started = time.perf_counter()
                    run_quietly(shell, CELL)
                    return time.perf_counter() - started
                return cell

            seconds = alternate({
                "databricks": tracked(f"databricks -e /Users/{databricks.user}/bench"),
                "azureml": tracked(f"{named} --track azureml"),
                "both": tracked(f"databricks {named} --track both"),
            }, rounds)
        finally:
            azure.stop()
            databricks.stop()
            for store in stores:
                store.stop()
    per_point = {name: value / POINTS * 1000 for name, value in seconds.items()}
    return {
        **{f"{name}_ms_per_point": value for name, value in per_point.items()},
        "both_over_databricks": per_point["both"] / per_point["databricks"],
        "both_over_azureml": per_point["both"] / per_point["azureml"],
    }


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
