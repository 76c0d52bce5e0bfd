"""A notebook that makes a tracked run again (``%aml_reproduce``): the run's packages as a
requirements file beside it, the cells its kernel ran before it (``history.py``), and the
tracked cell (``cell.py``) under a ``%%track`` line with the run's params."""

from __future__ import annotations

import json
import re
import tempfile
import uuid
from pathlib import Path

from mlmagic.base.display import Card, card
from mlmagic.base.env import temporary_env
from mlmagic.base.errors import InvalidInput, NotFound
from mlmagic.base.library_log import NO_PROGRESS_BARS
from mlmagic.core.connection import ensure_connected
from mlmagic.core.inspection import find_run
from mlmagic.core.interactive import interactive
from mlmagic.core.provenance import (
    BRANCH_TAG,
    CELL_MARK_PATTERN,
    COMMIT_TAG,
    DIFF_ARTIFACT,
    ENVIRONMENT_ARTIFACT,
    HISTORY_ARTIFACT,
    OPTIONS_TAG,
    REPO_URL_TAG,
)
from mlmagic.core.search import run_artifact_paths
from mlmagic.core.tracking import SOURCE_ARTIFACT

REPRODUCES_TAG = "mlmagic.reproduces"


@interactive
def reproduce(run: str = "last", *, path: str | Path | None = None) -> Card:
    """Write a notebook that makes ``run`` again (``last``, a run id or a run name): its
    first cell names the run's packages (``NAME-requirements.txt``, written beside it), then
    come the cells the run's kernel ran before it, then the tracked cell under a ``%%track``
    line with the run's name, experiment, params and captures. Run top to bottom in a fresh
    kernel, a deterministic cell gives the same metrics, in a new run tagged
    ``mlmagic.reproduces``. Nothing is overwritten. Returns a card: what was written."""
    found = find_run(run)
    connection = ensure_connected()
    kept = set(run_artifact_paths(found, connection.tracking_uri))
    name = found.info.run_name
    if SOURCE_ARTIFACT not in kept:
        raise NotFound(f"the run {name} kept no cell.py (tracked with --no-source, log_source "
                       "off, or not by %%track), so there is no cell to run again.")
    target, requirements = _targets(path, name)
    texts = _download(found, kept & {SOURCE_ARTIFACT, HISTORY_ARTIFACT, ENVIRONMENT_ARTIFACT},
                      connection.tracking_uri)
    experiment = connection.client().get_experiment(found.info.experiment_id).name
    history = history_cells(texts.get(HISTORY_ARTIFACT, ""))
    packages = texts.get(ENVIRONMENT_ARTIFACT)
    cells = [_markdown(_introduction(found, experiment, DIFF_ARTIFACT in kept)),
             _code(_install_line(packages, requirements.name))]
    if not any("load_ext mlmagic" in cell for cell in history):
        cells.append(_code("%load_ext mlmagic"))
    cells += [_code(cell) for cell in history]
    cells.append(_code(track_line(found, experiment) + "\n" + texts[SOURCE_ARTIFACT]))
    if packages is not None:
        requirements.write_text(packages, encoding="utf-8")
    target.write_text(json.dumps(_notebook(cells, found.info.run_id), indent=1) + "\n",
                      encoding="utf-8")
    return card(
        f"wrote {target.name}: run {name} again, top to bottom",
        ("notebook", str(target)),
        ("packages", str(requirements) if packages is not None else "not kept with the run"),
        ("cells", f"{len(history)} from the session's history, then the tracked cell"),
        ("reproduces", f"{name} ({found.info.run_id})"),
        ("link", connection.run_url(found.info.run_id, found.info.experiment_id)),
    )


def history_cells(text: str) -> list[str]:
    """The cells of a ``history.py``, in order (its header comment left out)."""
    pieces = CELL_MARK_PATTERN.split(text)
    return [piece.strip("\n") for piece in pieces[2::2] if piece.strip()]


def track_line(found, experiment: str) -> str:
    """The ``%%track`` line that tracks the cell as the run was: its name, experiment, the
    params it was given, its captures and autolog, and a tag pointing at the run."""
    tags, params = found.data.tags, found.data.params
    try:
        options = json.loads(tags.get(OPTIONS_TAG, ""))
    except ValueError:  # a run of plain mlmagic.track, or of an older mlmagic: all its params
        options = {"params": sorted(params), "capture": [], "autolog": False}
    words = ["%%track", "--name", _quoted(found.info.run_name), "--experiment",
             _quoted(experiment)]
    for key in options.get("params", []):
        if key in params:
            words += ["--param", _quoted(f"{key}={params[key]}")]
    if options.get("capture"):
        words += ["--capture", ",".join(options["capture"])]
    if options.get("autolog"):
        words.append("--autolog")
    words += ["--tag", f"{REPRODUCES_TAG}={found.info.run_id}"]
    return " ".join(words)


def _targets(path: str | Path | None, name: str) -> tuple[Path, Path]:
    """The notebook to write and its requirements file; refused if either exists."""
    default = "reproduce-" + (re.sub(r"[^\w.-]+", "-", name).strip("-.") or "run") + ".ipynb"
    target = Path(path or default).expanduser()
    if target.suffix != ".ipynb":
        raise InvalidInput(f"'{target}' is not a notebook file name. Example: --path "
                           f"{default}")
    if not target.parent.is_dir():
        raise InvalidInput(f"there is no folder {target.parent} to write {target.name} in.")
    requirements = target.with_name(f"{target.stem}-requirements.txt")
    for each in (target, requirements):
        if each.exists():
            raise InvalidInput(f"{each} exists already; give another notebook with --path "
                               "(nothing was written).")
    return target, requirements


def _download(found, names: set[str], tracking_uri: str) -> dict[str, str]:
    """The text of each of the run's artifacts ``names``."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repository = get_artifact_repository(found.info.artifact_uri, tracking_uri=tracking_uri)
    texts = {}
    with tempfile.TemporaryDirectory() as folder, \
            temporary_env(NO_PROGRESS_BARS):
        for name in sorted(names):
            local = repository.download_artifacts(name, folder)
            texts[name] = Path(local).read_text(encoding="utf-8")
    return texts


def _introduction(found, experiment: str, has_diff: bool) -> str:
    tags = found.data.tags
    lines = [f"# Run `{found.info.run_name}` again",
             "",
             f"Made by `%aml_reproduce` from the run `{found.info.run_id}` of the experiment "
             f"`{experiment}`. Run it top to bottom in a fresh kernel: the last cell tracks a "
             f"new run, tagged `{REPRODUCES_TAG}`. Values shown as `***` were secrets, not "
             "kept with the run: fill them in first."]
    if COMMIT_TAG in tags:
        where = f" of {tags[REPO_URL_TAG]}" if REPO_URL_TAG in tags else ""
        branch = f" (branch `{tags[BRANCH_TAG]}`)" if BRANCH_TAG in tags else ""
        lines += ["", f"The notebook's repository was at commit `{tags[COMMIT_TAG]}`{branch}"
                  f"{where}."]
        if has_diff:
            lines[-1] += (f" Its uncommitted changes are the run's artifact `{DIFF_ARTIFACT}` "
                          "(`git apply` it on that commit).")
    return "\n".join(lines)


def _install_line(packages: str | None, requirements: str) -> str:
    if packages is None:
        return "# The run kept no list of its packages (log_environment was off)."
    python = packages.splitlines()[0].lstrip("# ") if packages.startswith("#") else "Python"
    return (f"# The run's packages ({python}); to install them in this kernel:\n"
            f"# %pip install -r {requirements}")


def _quoted(text: str) -> str:
    if not re.search(r"[\s'\"]", text):
        return text
    return f"'{text}'" if '"' in text else f'"{text}"'


def _code(source: str) -> dict:
    return {"cell_type": "code", "execution_count": None, "id": uuid.uuid4().hex[:8],
            "metadata": {}, "outputs": [], "source": source.rstrip("\n")}


def _markdown(source: str) -> dict:
    return {"cell_type": "markdown", "id": uuid.uuid4().hex[:8], "metadata": {},
            "source": source}


def _notebook(cells: list[dict], run_id: str) -> dict:
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            "mlmagic": {"reproduces": run_id},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
