"""A local HTTP emulator of an Azure Databricks workspace's REST surface, as MLflow's
``databricks`` tracking store, its ``databricks`` and ``databricks-uc`` registries and
databricks-sdk use it, for tests and benchmarks:

- ``emulator``: the server, its route table and the token check; the MLflow API forwarded to a
  real ``mlflow server`` with Databricks' artifact locations; host metadata, the current user;
- ``storage``: the Files API, MLflow's artifact credential routes and the blob store behind
  their SAS URLs;
- ``unity``: Unity Catalog's model registry;
- ``notebook``: what makes a Jupyter kernel look like a Databricks notebook (``dbruntime``
  context, ``dbutils``, ``spark``, ``display``), and the laptop's settings;
- ``responses``, ``calls``: the HTTP plumbing and plain calls for its tests.

Its own tests are the ``test_*.py`` files of this package.
"""

from __future__ import annotations

from typing import Any

from .emulator import USER, WORKSPACE_ID, DatabricksEmulator
from .notebook import NotebookContext

__all__ = ["USER", "WORKSPACE_ID", "DatabricksEmulator", "NotebookContext", "start_workspace"]


def start_workspace(root, store: Any, **options: Any) -> DatabricksEmulator:
    """A started emulator, its MLflow API forwarded to ``store`` (a started
    ``servers.MlflowServer``); ``options`` go to :class:`DatabricksEmulator`."""
    return DatabricksEmulator(root, store.url, **options).start()
