"""What the notebook running this kernel offers: its path, where the front end tells it, and
Databricks' own ``display()``."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
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
    from mlmagic.databricks.sdk import notebook_path as databricks_notebook_path

    return databricks_notebook_path()


def databricks_display(namespace: Mapping) -> Callable | None:
    """The notebook's ``display()`` in a Databricks runtime (it shows a Spark DataFrame as a
    table); None elsewhere, where IPython's display of the value is the one."""
    from mlmagic.databricks.sdk import in_runtime

    show = namespace.get("display")
    return show if in_runtime() and callable(show) else None


def _absolute(path: str) -> str:
    # Jupyter gives the path relative to the server's root; the kernel runs in the
    # notebook's folder, so a bare file name found there can be made absolute.
    candidate = Path(path)
    if candidate.is_absolute():
        return path
    here = Path.cwd() / candidate.name
    return str(here) if here.is_file() else path

