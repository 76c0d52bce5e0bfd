"""Finding the path of the notebook that runs this kernel, where the front end tells it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def notebook_path(namespace: Mapping | None = None) -> str | None:
    """The notebook's path: ``MLMAGIC_NOTEBOOK_PATH``, VS Code, Jupyter, Databricks, or None."""
    override = os.environ.get("MLMAGIC_NOTEBOOK_PATH")
    if override:
        return override
    vscode = (namespace or {}).get("__vsc_ipynb_file__")
    if vscode:
        return str(vscode)
    jupyter = os.environ.get("JPY_SESSION_NAME")
    if jupyter:
        return _absolute(jupyter)
    return _databricks_notebook_path()


def _absolute(path: str) -> str:
    # Jupyter gives the path relative to the server's root; the kernel runs in the
    # notebook's folder, so a bare file name found there can be made absolute.
    candidate = Path(path)
    if candidate.is_absolute():
        return path
    here = Path.cwd() / candidate.name
    return str(here) if here.is_file() else path


def _databricks_notebook_path() -> str | None:
    if "DATABRICKS_RUNTIME_VERSION" not in os.environ:
        return None
    try:
        from mlflow.utils.databricks_utils import get_notebook_path

        return get_notebook_path()
    except Exception:
        return None
