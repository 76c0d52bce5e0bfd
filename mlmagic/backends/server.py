"""Any MLflow tracking server over HTTP(S)."""

from __future__ import annotations

import socket
from functools import partial

from mlmagic.backends import Backend
from mlmagic.core.secrets import redact_uri, without_credentials
from mlmagic.errors import ConnectionFailed

PROBE_ENDPOINT = "/api/2.0/mlflow/experiments/search"


def handles(uri: str) -> bool:
    """HTTP and HTTPS tracking URIs."""
    return uri.lower().startswith(("http://", "https://"))


def open(uri: str, timeout: float) -> Backend:
    """Check at once, with a short timeout, that an MLflow server answers at ``uri``."""
    from mlflow.utils.credentials import get_default_host_creds

    probe_rest_api(get_default_host_creds(uri), redact_uri(uri), timeout)
    return Backend(
        "mlflow server", uri, ui_url=without_credentials(uri),
        host_creds=partial(get_default_host_creds, uri),
    )


MLFLOW_CREDENTIALS = (
    "Set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN."
)


def probe_rest_api(
    host_creds, shown_uri: str, timeout: float, refused_advice: str = MLFLOW_CREDENTIALS
) -> None:
    """Ask the MLflow REST API for one experiment, without retries; explain any failure
    (``refused_advice`` says what to do when the credentials are refused)."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.rest_utils import http_request

    connect_timeout = min(3.0, timeout / 2)
    try:
        response = http_request(
            host_creds, PROBE_ENDPOINT, "GET", params={"max_results": 1},
            max_retries=0, timeout=(connect_timeout, timeout - connect_timeout),
            raise_on_status=False,
        )
    except MlflowException as error:
        reason = network_failure(error) or type(error).__name__
        if reason == "no answer in time":
            reason = f"no answer within {timeout:g} s"
        raise ConnectionFailed(
            f"cannot reach the MLflow server at {shown_uri} ({reason}). "
            "Start the server or check the URI."
        ) from None
    _check_status(response.status_code, shown_uri, refused_advice)


def network_failure(error: BaseException) -> str | None:
    """Name the network failure buried in a chain of wrapped exceptions; None if there is
    none (the server answered, or the error is not about the network)."""
    chain = _exception_chain(error)
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return "connection refused"
    if any(isinstance(e, socket.gaierror) for e in chain):
        return "host not found"
    if any("SSL" in type(e).__name__ for e in chain):
        return "its TLS certificate is not trusted; set REQUESTS_CA_BUNDLE"
    if any("Timeout" in type(e).__name__ or isinstance(e, TimeoutError) for e in chain):
        return "no answer in time"
    if any(isinstance(e, ConnectionError) or "ConnectionError" in type(e).__name__
           for e in chain):
        return "connection lost"
    return None


def _exception_chain(error: BaseException) -> list[BaseException]:
    chain, pending = [], [error]
    while pending:
        current = pending.pop()
        if current is None or current in chain:
            continue
        chain.append(current)
        pending += [current.__cause__, current.__context__, getattr(current, "reason", None)]
        pending += [arg for arg in current.args if isinstance(arg, BaseException)]
    return chain


def _check_status(status: int, shown_uri: str, refused_advice: str) -> None:
    if status == 200:
        return
    if status in (401, 403):
        raise ConnectionFailed(
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
