"""A local HTTPS emulator of the Azure REST surface that Azure ML's real SDKs (azure-identity,
azure-ai-ml, azureml-mlflow, azureml-core) use, for tests and benchmarks:

- ``emulator``: the server, its route table and Azure's checks (api-version, token audience);
  cloud metadata, ARM workspace look-ups, the MLflow API forwarded to a real ``mlflow server``;
- ``identity``: managed identity and service-principal sign-in, the tokens issued;
- ``storage``: the artifact service and the blob store behind SAS URLs;
- ``endpoints``: managed and Kubernetes online endpoints;
- ``jobs``: command jobs, run as local child processes;
- ``legacy``: SDK v1 model management (ACI / AKS web services);
- ``network``, ``responses``, ``models``: the HTTPS plumbing, answers, model files.

Its own tests are the ``test_*.py`` files of this package.
"""

from __future__ import annotations

from typing import Any

from .emulator import AzureEmulator, Workspace
from .endpoints import add_endpoint_routes
from .jobs import add_job_routes
from .legacy import add_legacy_routes

__all__ = ["AzureEmulator", "Workspace", "add_endpoint_routes", "add_job_routes",
           "add_legacy_routes", "start_workspace"]


def start_workspace(root, store: Any, workspace: Workspace, **options: Any) -> AzureEmulator:
    """A started emulator with every part (``online``, ``legacy``, ``jobs``), its MLflow API
    forwarded to ``store``, a started ``servers.MlflowServer``; ``options`` go to
    :class:`AzureEmulator`."""
    emulator = AzureEmulator(root, store.url, workspace, **options).start()
    emulator.online = add_endpoint_routes(emulator)
    emulator.legacy = add_legacy_routes(emulator)
    emulator.jobs = add_job_routes(emulator, store.root / "server.db")
    return emulator
