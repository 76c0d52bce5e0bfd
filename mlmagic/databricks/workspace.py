"""A Databricks workspace's managed MLflow (``databricks`` or ``databricks://PROFILE``)."""

from __future__ import annotations

from functools import partial

from mlmagic.backends.contract import Backend
from mlmagic.backends.server import probe_rest_api
from mlmagic.base.errors import ConnectionFailed
from mlmagic.base.failures import credential_advice
from mlmagic.databricks import sdk

NAME = "databricks"
CATCH_ALL = False


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
        default_experiment=sdk.notebook_path(),
    )
