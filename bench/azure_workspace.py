"""Azure ML through the real SDKs, against the test emulator on 127.0.0.1: how long
`%aml_connect` to a workspace takes next to `%aml_connect` to a plain MLflow server, and what
a logged metric point costs in `%%track` next to plain `mlflow.start_run()` on the workspace.

The emulator forwards MLflow calls to a local `mlflow server`, so every workspace call pays
one more local HTTPS hop than on a plain server; the ratios are what this measures, not
Azure's own latency. Needs the azure extra: pip install -e ".[azure]".

    python bench/azure_workspace.py
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from _common import MlflowServer, alternate, run_quietly, tracked_shell

POINTS = 2_000
PLAIN_POINTS = 100
LOOP = "for step in range({n}):\n    mlflow.log_metric('loss', 1.0 / (step + 1), step=step)\n"


def measure(rounds: int = 3) -> dict:
    """Connect seconds and per-point milliseconds, with the ratios."""
    import mlflow
    from support.azure import AzureEmulator, Workspace

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for name in ("workspace", "plain", "azure"):
            (root / name).mkdir()
        workspace_store = MlflowServer(root / "workspace").start()
        plain_server = MlflowServer(root / "plain").start()
        workspace = Workspace("00000000-0000-0000-0000-00000000bench", "rg-bench", "ws-bench")
        emulator = AzureEmulator(root / "azure", workspace_store.url, workspace).start()
        os.environ.update(emulator.environment())
        flags = f"--workspace ws-bench --subscription {workspace.subscription} -g rg-bench"
        shell = tracked_shell()
        try:
            connect = alternate({
                "workspace": lambda: run_quietly(shell, f"%aml_connect {flags} -e bench"),
                "server": lambda: run_quietly(shell, f"%aml_connect {plain_server.url} -e bench"),
            }, rounds)
            run_quietly(shell, f"%aml_connect {flags} -e bench")

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
            plain_server.stop()
            workspace_store.stop()
    track_ms = logging["track"] / POINTS * 1000
    plain_ms = logging["plain"] / PLAIN_POINTS * 1000
    return {
        "connect_workspace_s": connect["workspace"],
        "connect_server_s": connect["server"],
        "workspace_over_server": connect["workspace"] / connect["server"],
        "track_ms_per_point": track_ms,
        "plain_ms_per_point": plain_ms,
        "plain_over_track": plain_ms / track_ms,
    }


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
