"""Azure Databricks' managed MLflow through MLflow's own `databricks` store (databricks-sdk
underneath), against the test emulator on 127.0.0.1: what a logged metric point costs in a
10,000-point `%%track` cell next to plain `mlflow.log_metric` in `mlflow.start_run()`.

The emulator checks the token on every call and forwards MLflow's to a local `mlflow server`;
the ratio is what this measures, not Databricks' own latency.

    python bench/databricks_workspace.py
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from _common import MlflowServer, alternate, run_quietly, tracked_shell

POINTS = 10_000
PLAIN_POINTS = 100
LOOP = "for step in range({n}):\n    mlflow.log_metric('loss', 1.0 / (step + 1), step=step)\n"


def measure(rounds: int = 3) -> dict:
    """Per-point milliseconds of %%track and of plain MLflow on the workspace, and the ratio."""
    import mlflow
    from support.databricks import start_workspace

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "store").mkdir()
        store = MlflowServer(root / "store").start()
        emulator = start_workspace(root / "workspace", store)
        os.environ.update(emulator.environment())
        shell = tracked_shell()
        try:
            run_quietly(shell, f"%aml_connect databricks -e /Users/{emulator.user}/bench")

            def plain() -> None:
                with mlflow.start_run():
                    for step in range(PLAIN_POINTS):
                        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)

            logging = alternate({
                "track": lambda: run_quietly(shell, "%%track\nimport mlflow\n"
                                             + LOOP.format(n=POINTS)),
                "plain": plain,
            }, rounds)
        finally:
            emulator.stop()
            store.stop()
    track_ms = logging["track"] / POINTS * 1000
    plain_ms = logging["plain"] / PLAIN_POINTS * 1000
    return {"track_ms_per_point": track_ms, "plain_ms_per_point": plain_ms,
            "plain_over_track": plain_ms / track_ms}


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
