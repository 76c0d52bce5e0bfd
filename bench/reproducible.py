"""What a tracked cell pays for being reproducible: an empty `%%track` cell with the notebook
snapshot, the session's history, the git state and the package list all on, next to the same
cell with all four off, in a git repository with an uncommitted diff, a saved 100-cell
notebook and 100 cells of history, on the embedded SQLite store. Also the first tracked
cell's one-off cost (listing the installed packages, once a session) and each part's own
time in the background thread."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from _common import alternate, run_quietly, tracked_shell

CELLS = 100
PARTS = ("notebook", "history", "git", "environment")


def _cell(n: int) -> str:
    return (f"features_{n} = [x * {n} for x in range(10)]\n"
            f"model_{n} = sum(features_{n}) / len(features_{n})\n"
            f"api_key_{n} = 'not-a-real-key-{n}'\n"
            f"print('step {n}', model_{n})\n")


def _notebook(path: Path) -> None:
    cells = [{"cell_type": "code", "execution_count": n, "id": f"c{n:04d}", "metadata": {},
              "outputs": [{"name": "stdout", "output_type": "stream",
                           "text": [f"step {n} {n * 4.5}\n"] * 5}],
              "source": _cell(n).splitlines(keepends=True)} for n in range(CELLS)]
    notebook = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(notebook, indent=1))


def _git(folder: Path, *arguments: str) -> None:
    subprocess.run(["git", "-C", str(folder), "-c", "user.name=b", "-c", "user.email=b@b",
                    *arguments], check=True, capture_output=True)


def _repository(folder: Path) -> Path:
    """A repository with a commit, a remote, and uncommitted changes to a module and to the
    notebook (100 cells); returns the notebook's path."""
    notebook = folder / "analysis.ipynb"
    module = folder / "features.py"
    module.write_text("".join(f"SCALE_{n} = {n}\n" for n in range(200)))
    _notebook(notebook)
    _git(folder, "init", "-q", "-b", "main")
    _git(folder, "add", ".")
    _git(folder, "commit", "-q", "-m", "start")
    _git(folder, "remote", "add", "origin", "https://example.com/team/churn.git")
    module.write_text("".join(f"SCALE_{n} = {n * 2}\n" for n in range(200)))
    text = notebook.read_text().replace("step 1", "step one")
    notebook.write_text(text)
    return notebook


def _set_parts(shell, on: bool) -> None:
    for part in PARTS:
        run_quietly(shell, f"%config MlMagic.log_{part} = {on}")


def _tracked(shell, on: bool) -> float:
    _set_parts(shell, on)
    started = time.perf_counter()
    run_quietly(shell, "%%track\npass")
    return time.perf_counter() - started


def _parts_alone(notebook: Path, source: str) -> dict[str, float]:
    """Seconds each part takes in the background thread, alone (the package list cached)."""
    from mlmagic.core.provenance import capture, gather

    seconds = {}
    for part in PARTS:
        taken = capture(frozenset({part}), {}, source, "")
        started = time.perf_counter()
        gather(taken)
        seconds[f"{part}_s"] = time.perf_counter() - started
    return seconds


def measure(rounds: int = 30) -> dict:
    """Median seconds of an empty tracked cell with everything kept and with nothing kept,
    the extra per cell, the first cell's extra, and each part alone."""
    shell = tracked_shell()
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        notebook = _repository(root)
        size = notebook.stat().st_size
        os.chdir(root)
        os.environ["MLMAGIC_NOTEBOOK_PATH"] = str(notebook)
        try:
            shell.reset(new_session=True)
            for n in range(CELLS):
                with contextlib.redirect_stdout(io.StringIO()):
                    shell.run_cell(_cell(n), store_history=True).raise_error()
            run_quietly(shell, f"%aml_connect sqlite:///{root / 'bench.db'} "
                               "--experiment bench-reproducible")
            from mlmagic.core.session import current_session

            current_session().packages = None
            first_on = _tracked(shell, True)
            first_off = _tracked(shell, False)
            seconds = alternate({"on": lambda: _tracked(shell, True),
                                 "off": lambda: _tracked(shell, False)}, rounds)
            parts = _parts_alone(notebook, _cell(0))
            current_session().packages = None
            started = time.perf_counter()
            _parts_alone(notebook, "")
            packages_first = time.perf_counter() - started
        finally:
            os.environ.pop("MLMAGIC_NOTEBOOK_PATH", None)
            os.chdir(here)
            _set_parts(shell, True)
    return {
        "history_cells": CELLS, "notebook_cells": CELLS,
        "notebook_bytes": size,
        "all_on_s": seconds["on"], "all_off_s": seconds["off"],
        "extra_per_cell_s": seconds["on"] - seconds["off"],
        "first_cell_extra_s": first_on - first_off,
        "package_list_once_s": packages_first,
        **{f"background_{name}": value for name, value in parts.items()},
    }


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
