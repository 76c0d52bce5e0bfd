"""A Databricks workspace's managed MLflow (``databricks`` or ``databricks://PROFILE``)."""

from __future__ import annotations

from functools import partial
from urllib.parse import quote

from mlmagic.backends.contract import Backend
from mlmagic.backends.server import probe_rest_api
from mlmagic.base.errors import ConnectionFailed
from mlmagic.base.failures import credential_advice
from mlmagic.databricks import sdk

NAME = "databricks"
CATCH_ALL = False
# A Databricks registry URI's scheme, and the registry it names, as a sentence says it
REGISTRIES = {"databricks-uc": "Unity Catalog", "databricks": "the Databricks workspace"}


def handles(uri: str) -> bool:
    """``databricks``, ``databricks://profile`` and Unity Catalog's ``databricks-uc``."""
    return uri.split(":", 1)[0].lower() in ("databricks", "databricks-uc")


def open(uri: str, timeout: float) -> Backend:
    """Find the workspace's credentials and check that its MLflow API answers."""
    from mlflow.utils.databricks_utils import get_databricks_host_creds

    try:
        with sdk.quiet():
            host_creds = get_databricks_host_creds(uri)
    except Exception:
        raise ConnectionFailed(
            f"no Databricks credentials found for '{uri}'. Set DATABRICKS_HOST and "
            "DATABRICKS_TOKEN, or add a profile to ~/.databrickscfg."
        ) from None
    probe_rest_api(host_creds, host_creds.host, timeout, credential_advice(uri))
    return Backend(
        "databricks", uri, ui_url=host_creds.host,
        host_creds=partial(get_databricks_host_creds, uri),
        run_path="ml/experiments/{experiment_id}/runs/{run_id}",
        experiment_path="ml/experiments/{experiment_id}", model_path=None,
        logged_model_path="ml/experiments/{experiment_id}/models/{model_id}",  # as MLflow's own
        default_experiment=sdk.notebook_path(),
    )


def registry_name(registry_uri: str) -> str | None:
    """The registry a Databricks registry URI names ("Unity Catalog", "the Databricks
    workspace"); None for another registry."""
    return REGISTRIES.get(registry_uri.split(":", 1)[0].lower())


def model_version_page(host: str, registry_uri: str, name: str, version: str) -> str:
    """The workspace UI's page of a registered model version: Catalog Explorer's for Unity
    Catalog, the Models page's for the workspace registry."""
    if registry_uri.lower().startswith("databricks-uc"):
        path = "/".join(quote(part) for part in name.split("."))
        return f"{host.rstrip('/')}/explore/data/models/{path}/version/{version}"
    return f"{host.rstrip('/')}/ml/models/{quote(name)}/versions/{version}"
