"""A local HTTPS emulator of the Azure REST surface that Azure ML's real SDKs (azure-identity,
azure-ai-ml, azureml-mlflow, azureml-core) use, for tests and benchmarks:

- ``emulator``: the server, cloud metadata, identity, ARM workspace look-ups, the MLflow API
  forwarded to a real ``mlflow server``, the artifact service and blob store;
- ``endpoints``: managed and Kubernetes online endpoints;
- ``jobs``: command jobs, run as local child processes;
- ``legacy``: SDK v1 model management (ACI / AKS web services).
"""

from __future__ import annotations

from .emulator import AzureEmulator, Workspace
from .endpoints import add_endpoint_routes
from .jobs import add_job_routes
from .legacy import add_legacy_routes

__all__ = ["AzureEmulator", "Workspace", "add_endpoint_routes", "add_job_routes",
           "add_legacy_routes"]
