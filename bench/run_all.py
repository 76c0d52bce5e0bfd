"""Run the benchmarks, print the figures and write them to bench/results.json.

    python bench/run_all.py                  # all of them
    python bench/run_all.py azure_workspace  # only these; the others' figures are kept

A partial run records, in each entry it writes, the machine it was measured on.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from pathlib import Path

import azure_workspace
import databricks_workspace
import empty_cell
import faults
import linked_workspaces
import live_view
import load_ext
import metric_logging
import models
import panel
import peers
import reproducible

RESULTS = Path(__file__).with_name("results.json")


def machine() -> dict:
    """What the figures were measured on."""
    import IPython
    import mlflow

    return {
        "date": datetime.date.today().isoformat(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "mlflow": mlflow.__version__,
        "ipython": IPython.__version__,
    }


BENCHMARKS = {
    "load_ext": load_ext,
    "metric_logging": metric_logging,
    "empty_cell": empty_cell,
    "live_view": live_view,
    "models": models,
    "azure_workspace": azure_workspace,
    "databricks_workspace": databricks_workspace,
    "linked_workspaces": linked_workspaces,
    "panel": panel,
    "peers": peers,
    "faults": faults,
    "reproducible": reproducible,
}


def main(names: list[str]) -> None:
    if names:  # a partial run: each new entry says what it was measured on
        figures = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        for name in names:
            figures[name] = {**BENCHMARKS[name].measure(), "machine": machine()}
    else:
        figures = {"machine": machine(), **{n: b.measure() for n, b in BENCHMARKS.items()}}
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
