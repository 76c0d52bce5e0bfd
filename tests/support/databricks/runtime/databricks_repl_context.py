"""``get_context()`` as the Databricks runtime has it: the REPL's context, its attributes those
of the command running now."""

from __future__ import annotations

from types import SimpleNamespace

from dbruntime._context import load


def get_context() -> SimpleNamespace:
    """The notebook's context (API URL and token, notebook, cluster, user, workspace)."""
    return SimpleNamespace(**load()["context"])
