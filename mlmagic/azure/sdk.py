"""Every place mlmagic leans on the Azure SDKs' private parts or quiets them, in one file.

Each function names what it uses and the versions it was checked against (the ``azure``
and ``azure-v1`` extras as CI installs them: azure-ai-ml 1.35.2, azureml-mlflow
1.62.0.post6, azureml-core 1.61.0.post4, azure-identity 1.27.0). When an SDK changes one of
these, this file is the one to change; the Azure tests run each of them against the emulator.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import warnings
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlparse

from mlmagic.azure import INSTALL
from mlmagic.base.display import quiet_loggers
from mlmagic.base.errors import InvalidInput, MissingExtra

# Their warnings (one per credential a chain tried, SDK v1 announcing its own end, each
# refused request in full) would print under mlmagic's one line.
SDK_LOGGERS = ("azure.identity", "azure.ai.ml", "azure.core", "azureml", "msal")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Keep the Azure SDKs' loggers and deprecation warnings out of the notebook while the
    block (or, as a decorator, the function) runs: mlmagic says what matters in one line."""
    with warnings.catch_warnings(), quiet_loggers(SDK_LOGGERS, logging.CRITICAL):
        warnings.simplefilter("ignore", FutureWarning)
        yield


def credential_of(client: Any) -> Any:
    """The credential an azure-ai-ml ``MLClient`` (``_credential``) or an azureml-core
    ``Workspace`` (``_auth_object``) signs in with: neither offers it publicly."""
    found = getattr(client, "_credential", None) or getattr(client, "_auth_object", None)
    if found is None or not callable(getattr(found, "get_token", None)):
        raise InvalidInput(f"the {type(client).__name__} given carries no credential to reuse.")
    return found


def use_credential_for_mlflow(tracking_uri: str, subscription: str, resource_group: str,
                              workspace: str, credential: Any) -> Callable:
    """Make azureml-mlflow use ``credential`` for this tracking URI (its own default is a
    chain that ends in an interactive browser prompt), and return the host-credentials
    function of the workspace's MLflow REST API. azureml-mlflow has no public way to pass a
    credential: this registers a ``ServiceContext`` with its ``_AzureMLServiceContextLoader``."""
    try:
        from azureml.mlflow._internal.service_context_loader import (
            _AzureMLServiceContextLoader,
        )
        from azureml.mlflow._internal.utils import ServiceContext
        from azureml.mlflow._store.tracking.store import AzureMLRestStore
    except ImportError:
        raise MissingExtra(INSTALL) from None
    context = ServiceContext(
        host_url=f"https://{urlparse(tracking_uri).netloc}", subscription_id=subscription,
        workspace_name=workspace, resource_group_name=resource_group, auth=credential,
        cloud=_mlflow_cloud(),
    )
    _AzureMLServiceContextLoader.add_service_context(tracking_uri, context)
    _CONTEXTS[(subscription.lower(), resource_group.lower(), workspace.lower())] = context
    _route_artifacts_by_workspace()
    return AzureMLRestStore(context).get_host_creds


# The service context of each workspace mlmagic connected to, by (subscription, resource
# group, workspace), lower case.
_CONTEXTS: dict[tuple[str, str, str], Any] = {}
_WORKSPACE_PATH = re.compile(r"/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/"
                             r"Microsoft\.MachineLearningServices/workspaces/([^/]+)", re.I)


def _route_artifacts_by_workspace() -> None:
    """azureml-mlflow's artifact repository signs in with the service context of MLflow's
    current tracking store (``_store.artifact.utils.get_service_context``), so it fails for a
    workspace's run while MLflow tracks elsewhere (--track both writes the Azure ML mirror
    while the store is Databricks'). Make it take the context of the workspace the artifact
    URI names, where mlmagic connected to it; other URIs go on as before."""
    from azureml.mlflow._store.artifact import utils

    original = utils.get_service_context
    if getattr(original, "by_workspace", False):
        return

    def by_workspace(parsed_url):
        found = _WORKSPACE_PATH.search(parsed_url.path)
        key = tuple(part.lower() for part in found.groups()) if found else None
        return _CONTEXTS.get(key) or original(parsed_url)

    by_workspace.by_workspace = True
    utils.get_service_context = by_workspace


def _mlflow_cloud() -> Any:
    """azureml-mlflow's description of the current cloud. It reads a custom cloud's metadata
    (ARM_CLOUD_METADATA_URL) once, when first imported; read it again if it was set later,
    e.g. by %env in the notebook (``_common._cloud``)."""
    from azureml.mlflow._common._cloud import cloud

    name = os.environ.get("AZUREML_CURRENT_CLOUD")
    if name and name not in cloud.KNOWN_CLOUDS and os.environ.get("ARM_CLOUD_METADATA_URL"):
        cloud.KNOWN_CLOUDS.update(cloud.get_known_clouds())
    return cloud._get_cloud_or_default()


def studio_url() -> str:
    """Azure ML studio of the current cloud (https://ml.azure.com on the public cloud), as
    azure-ai-ml reads it from the cloud's metadata (``_azure_environments``)."""
    from azure.ai.ml._azure_environments import _get_aml_resource_id_from_metadata

    return _get_aml_resource_id_from_metadata()
