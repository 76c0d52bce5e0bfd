"""Stores this process opens itself: SQLite (the embedded default), other SQL databases,
and file stores."""

from __future__ import annotations

from mlmagic.backends import Backend
from mlmagic.core.secrets import redact_uri, scrub
from mlmagic.errors import ConnectionFailed, InvalidInput


def handles(uri: str) -> bool:
    """The catch-all: every URI that no other backend claims."""
    return True


def open(uri: str, timeout: float) -> Backend:
    """Open the store (creating a new SQLite file if needed) and read one experiment."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    shown = redact_uri(uri)
    try:
        client = MlflowClient(tracking_uri=uri)
    except MlflowException as error:
        raise InvalidInput(
            f"'{shown}' is not a tracking URI MLflow knows ({_first_line(error, uri)}). Use "
            "http(s)://host:port, sqlite:///path/to/mlflow.db, databricks, or nothing "
            "for the embedded default."
        ) from None
    except Exception as error:
        raise ConnectionFailed(
            f"cannot open the MLflow store at {shown}: {_first_line(error, uri)}."
        ) from None
    try:
        client.search_experiments(max_results=1)
    except Exception as error:
        raise ConnectionFailed(
            f"cannot read the MLflow store at {shown}: {_first_line(error, uri)}. "
            "Check that the path or database exists and is readable."
        ) from None
    return Backend("local", uri, ui_hint=f"mlflow ui --backend-store-uri {shown}")


def _first_line(error: Exception, uri: str) -> str:
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    return scrub(text.strip().splitlines()[0], uri)
