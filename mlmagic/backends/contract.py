"""The contract of a tracking backend, and what opening one gives: a :class:`Backend`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class TrackingBackend(Protocol):
    """A kind of tracking store, as a module (``local.py`` is the simplest): ``NAME``;
    ``CATCH_ALL`` when it takes every URI the others do not (tried last); ``handles(uri)``;
    and ``open(uri, timeout)``, which checks that the store can be used, raises an
    :class:`~mlmagic.base.errors.MlmagicError` if not, and changes no global state."""

    NAME: str
    CATCH_ALL: bool

    def handles(self, uri: str) -> bool:
        """Whether ``uri`` is a store of this kind."""

    def open(self, uri: str, timeout: float) -> Backend:
        """Check the store at ``uri`` (waiting at most ``timeout`` seconds) and describe it."""


@dataclass(frozen=True)
class Backend:
    """A tracking store that answered: its kind, its URI and where its web UI is."""

    name: str
    tracking_uri: str
    ui_url: str | None = None
    run_path: str = "#/experiments/{experiment_id}/runs/{run_id}"
    experiment_path: str = "#/experiments/{experiment_id}"
    model_path: str | None = "#/models/{name}/versions/{version}"
    logged_model_path: str | None = "#/experiments/{experiment_id}/models/{model_id}"
    home_path: str | None = None  # the UI's page of the whole store (a workspace's home)
    ui_hint: str | None = None
    host_creds: Callable | None = None  # for stores reached over MLflow's REST API
    facts: tuple[tuple[str, str], ...] = ()  # what a summary shows beside the URI
    # A platform workspace's handle (mlmagic.azure.workspace.WorkspaceHandle): it lists the
    # endpoints the workspace hosts (endpoints(), endpoint(name)).
    workspace: Any = None
    default_experiment: str | None = None  # when none is named (a Databricks notebook's own)
    # How this store spells an experiment name made for another store (Azure ML takes no
    # Databricks path); None: as it is.
    experiment_name_rule: Callable[[str], str] | None = None
    # How this store spells a model name from another registry (Azure ML takes no Unity
    # Catalog catalog.schema.model); None: as it is.
    model_name_rule: Callable[[str], str] | None = None

    def link(self, path: str | None, **fields: str) -> str | None:
        """The web UI address of ``path`` (one of the *_path templates), where there is one."""
        if not self.ui_url or path is None:
            return None
        return f"{self.ui_url.rstrip('/')}/{path.format(**fields)}"

    def experiment_name_for(self, name: str) -> str:
        """The name this store gives an experiment another store calls ``name``."""
        return self.experiment_name_rule(name) if self.experiment_name_rule else name

    def model_name_for(self, name: str) -> str:
        """The name this store's registry gives a model another registry calls ``name``."""
        return self.model_name_rule(name) if self.model_name_rule else name

    def run_url(self, experiment_id: str, run_id: str) -> str | None:
        """The web UI address of one run, where this backend has a UI."""
        return self.link(self.run_path, experiment_id=experiment_id, run_id=run_id)

    def logged_model_url(self, experiment_id: str, model_id: str) -> str | None:
        """The web UI address of one of MLflow 3's logged models, where this backend has one."""
        return self.link(self.logged_model_path, experiment_id=experiment_id, model_id=model_id)
