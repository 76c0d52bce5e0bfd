"""Run every benchmark, print the figures and write them to bench/results.json.

    python bench/run_all.py
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from pathlib import Path

import empty_cell
import live_view
import load_ext
import metric_logging
import models

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


def main() -> None:
    figures = {
        "machine": machine(),
        "load_ext": load_ext.measure(),
        "metric_logging": metric_logging.measure(),
        "empty_cell": empty_cell.measure(),
        "live_view": live_view.measure(),
        "models": models.measure(),
    }
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
