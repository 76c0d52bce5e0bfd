"""Tracking backends, one module each, chosen by the tracking URI.

A backend module has ``handles(uri) -> bool`` and ``open(uri, timeout) -> Backend``. ``open``
checks that the store can be used and raises an :class:`~mlmagic.base.errors.MlmagicError` if not;
it changes no global state. Adding a backend is adding a module to ``_modules()`` ahead of
the catch-all ``local``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any


@dataclass(frozen=True)
class Backend:
    """A tracking store that answered: its kind, its URI and where its web UI is."""

    name: str
    tracking_uri: str
    ui_url: str | None = None
    run_path: str = "#/experiments/{experiment_id}/runs/{run_id}"
    experiment_path: str = "#/experiments/{experiment_id}"
    model_path: str | None = "#/models/{name}/versions/{version}"
    home_path: str | None = None  # the UI's page of the whole store (a workspace's home)
    ui_hint: str | None = None
    host_creds: Callable | None = None  # for stores reached over MLflow's REST API
    facts: tuple[tuple[str, str], ...] = ()  # what a summary shows beside the URI
    workspace: Any = None  # an Azure ML workspace's handle (azureml.WorkspaceHandle)

    def link(self, path: str | None, **fields: str) -> str | None:
        """The web UI address of ``path`` (one of the *_path templates), where there is one."""
        if not self.ui_url or path is None:
            return None
        return f"{self.ui_url.rstrip('/')}/{path.format(**fields)}"

    def run_url(self, experiment_id: str, run_id: str) -> str | None:
        """The web UI address of one run, where this backend has a UI."""
        return self.link(self.run_path, experiment_id=experiment_id, run_id=run_id)


def _modules() -> list[ModuleType]:
    from mlmagic.backends import azureml, databricks, local, server

    return [databricks, server, azureml, local]


def open_backend(uri: str, timeout: float) -> Backend:
    """Check the store at ``uri`` with the backend that handles it, and describe it."""
    for module in _modules():
        if module.handles(uri):
            return module.open(uri, timeout)
    raise AssertionError("the local backend handles every URI")
