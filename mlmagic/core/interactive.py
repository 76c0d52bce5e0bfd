"""The short time limits of interactive calls.

Every public core function that talks to a store is :func:`interactive`: its MLflow HTTP
calls get no retries and the session's connect timeout, so a dead or hung server costs
seconds, not MLflow's minutes of back-off, and a network failure, 401 or 403 becomes one
line that says what to do.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from mlmagic.base.config import DEFAULT_TIMEOUT
from mlmagic.base.env import temporary_env
from mlmagic.base.errors import MlmagicError
from mlmagic.base.failures import explain
from mlmagic.core.session import current_session

F = TypeVar("F", bound=Callable)


def interactive_timeout() -> float:
    """Seconds an interactive call waits for a server: the connection's connect timeout."""
    connection = current_session().connection
    return connection.timeout if connection is not None else DEFAULT_TIMEOUT


def interactive(function: F) -> F:
    """Run a core function with no HTTP retries and the connect timeout, turning a network
    failure or a 401/403 into one line (other errors pass unchanged)."""
    @functools.wraps(function)
    def call(*args, **kwargs):
        settings = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
                    "MLFLOW_HTTP_REQUEST_TIMEOUT": f"{interactive_timeout():g}"}
        with temporary_env(settings):  # explained inside, where the timeout is still set
            try:
                return function(*args, **kwargs)
            except MlmagicError:
                raise
            except Exception as error:
                connection = current_session().connection
                explained = explain(error, connection.tracking_uri) if connection else None
                if explained is None:
                    raise
                raise explained from None

    return call  # type: ignore[return-value]
