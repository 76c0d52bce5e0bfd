"""Stores this process opens itself: SQLite (the embedded default), other SQL databases,
and file stores."""

from __future__ import annotations

import logging

from mlmagic.backends import Backend
from mlmagic.core.display import quiet_loggers
from mlmagic.core.secrets import error_line, redact_uri
from mlmagic.errors import ConnectionFailed, InvalidInput

# MLflow's INFO lines about creating the tables of a new SQLite store
SCHEMA_LOGGERS = ("mlflow.store.db.utils", "alembic")


def handles(uri: str) -> bool:
    """The catch-all: every URI that no other backend claims."""
    return True


def open(uri: str, timeout: float) -> Backend:
    """Open the store (creating a new SQLite file if needed) and read one experiment."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    shown = redact_uri(uri)
    try:
        with quiet_loggers(SCHEMA_LOGGERS, logging.WARNING):
            client = MlflowClient(tracking_uri=uri)
    except MlflowException:
        scheme = uri.split(":", 1)[0] if "://" in uri else uri
        raise InvalidInput(
            f"'{shown}' is not a tracking URI MLflow knows (scheme '{scheme}'). Use "
            "http(s)://host:port, sqlite:///path/to/mlflow.db, databricks, or nothing "
            "for the embedded default."
        ) from None
    except Exception as error:
        raise ConnectionFailed(
            f"cannot open the MLflow store at {shown}: {error_line(error, uri)}."
        ) from None
    try:
        client.search_experiments(max_results=1)
    except Exception as error:
        raise ConnectionFailed(
            f"cannot read the MLflow store at {shown}: {error_line(error, uri)}. "
            "Check that the path or database exists and is readable."
        ) from None
    return Backend("local", uri, ui_hint=f"mlflow ui --backend-store-uri {shown}")
