"""Shared by the benchmarks: alternating measurement, a tracked IPython shell, a server."""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"  # MLflow's per-run links
sys.path.insert(0, str(REPO / "tests"))

from servers import MlflowServer, clean_environment  # noqa: E402, F401 - for the benchmarks


def alternate(candidates: dict[str, Callable[[], float | None]], rounds: int) -> dict[str, float]:
    """Run the candidates A B A B … ``rounds`` times; the median seconds of each.

    A candidate may return its own measured seconds (to leave setup out), or None to be
    timed whole.
    """
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, candidate in candidates.items():
            started = time.perf_counter()
            measured = candidate()
            times[name].append(measured if measured is not None else time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def tracked_shell():
    """A real InteractiveShell with mlmagic loaded and the run summaries silenced."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.extension_manager.load_extension("mlmagic")  # quiet if it is loaded already
    return shell


def run_quietly(shell, cell: str) -> None:
    """Run a cell with its output thrown away; fail loudly if the cell failed."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        result = shell.run_cell(cell)
    result.raise_error()


@contextlib.contextmanager
def backends() -> Iterator[dict[str, str]]:
    """A fresh SQLite store and a local `mlflow server`, by name."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "server").mkdir()
        server = MlflowServer(root / "server").start()
        try:
            yield {"sqlite": f"sqlite:///{root / 'bench.db'}", "http": server.url}
        finally:
            server.stop()
