"""Any MLflow tracking server over HTTP(S)."""

from __future__ import annotations

from functools import partial

from mlmagic.backends.contract import Backend
from mlmagic.base.errors import ConnectionFailed, PermissionDenied
from mlmagic.base.failures import credential_advice, network_failure
from mlmagic.base.secrets import redact_uri, without_credentials

NAME = "server"
CATCH_ALL = False

PROBE_ENDPOINT = "/api/2.0/mlflow/experiments/search"


def handles(uri: str) -> bool:
    """HTTP and HTTPS tracking URIs."""
    return uri.lower().startswith(("http://", "https://"))


def open(uri: str, timeout: float) -> Backend:
    """Check at once, with a short timeout, that an MLflow server answers at ``uri``."""
    from mlflow.utils.credentials import get_default_host_creds

    probe_rest_api(get_default_host_creds(uri), redact_uri(uri), timeout,
                   refused_advice=credential_advice(uri))
    return Backend(
        "mlflow server", uri, ui_url=without_credentials(uri),
        host_creds=partial(get_default_host_creds, uri),
    )


def probe_rest_api(host_creds, shown_uri: str, timeout: float, refused_advice: str) -> None:
    """Ask the MLflow REST API for one experiment, without retries; explain any failure
    (``refused_advice`` says what to do when the credentials are refused)."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.rest_utils import http_request

    connect_timeout = min(3.0, timeout / 2)
    # requests takes (connect, read); through databricks-sdk (MLflow's way to Databricks) the
    # timeout is one number of seconds
    limit = (timeout if getattr(host_creds, "use_databricks_sdk", False)
             else (connect_timeout, timeout - connect_timeout))
    try:
        response = http_request(
            host_creds, PROBE_ENDPOINT, "GET", params={"max_results": 1},
            max_retries=0, timeout=limit, raise_on_status=False,
        )
    except MlflowException as error:
        reason = network_failure(error) or type(error).__name__
        if reason == "no answer in time":
            reason = f"no answer within {timeout:g} s"
        raise ConnectionFailed(
            f"cannot reach the MLflow server at {shown_uri} ({reason}). "
            "Start the server or check the URI."
        ) from None
    _check_status(_status_of(response), shown_uri, refused_advice)


def _status_of(response) -> int:
    """The status the service answered with. Through databricks-sdk, MLflow rebuilds the
    response from the SDK's error: an unknown error code becomes 500, while the body keeps
    the service's own (Databricks answers an invalid token with error_code 403)."""
    if response.status_code != 500:
        return response.status_code
    try:
        code = str(response.json().get("error_code", ""))
    except (ValueError, AttributeError):
        return 500
    return {"401": 401, "UNAUTHENTICATED": 401, "403": 403, "PERMISSION_DENIED": 403}.get(
        code, 500)


def _check_status(status: int, shown_uri: str, refused_advice: str) -> None:
    if status == 200:
        return
    if status in (401, 403):
        raise PermissionDenied(
            f"the MLflow server at {shown_uri} refused the credentials (HTTP {status}). "
            + refused_advice
        )
    if status == 404:
        raise ConnectionFailed(
            f"{shown_uri} answered, but not as an MLflow tracking server (HTTP 404). "
            "Give the server's base address, e.g. http://127.0.0.1:5000."
        )
    raise ConnectionFailed(
        f"the MLflow server at {shown_uri} answered with HTTP {status}. "
        "Check the server's log, then connect again."
    )
