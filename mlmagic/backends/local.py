"""Stores this process opens itself: SQLite (the embedded default), other SQL databases,
and file stores."""

from __future__ import annotations

import logging
from pathlib import Path

from mlmagic.backends.contract import Backend
from mlmagic.base.display import quiet_loggers
from mlmagic.base.errors import ConnectionFailed, InvalidInput
from mlmagic.base.secrets import error_line, redact_uri

NAME = "local"
CATCH_ALL = True

# MLflow's INFO lines about creating the tables of a new SQLite store
SCHEMA_LOGGERS = ("mlflow.store.db.utils", "alembic")
STORE_LOCK_SECONDS = 120  # how long a session waits for another one creating the tables


def first_use_lock(uri: str):
    """A lock for opening a SQL store on this machine: the first session to open a new store
    creates its tables while the others wait (MLflow's schema migration is not safe to run
    twice at once)."""
    import hashlib
    import tempfile

    from filelock import FileLock

    folder = Path(tempfile.gettempdir()) / "mlmagic-locks"
    folder.mkdir(exist_ok=True)
    name = hashlib.sha256(redact_uri(uri).encode()).hexdigest()[:16]
    return FileLock(folder / f"store-{name}.lock", timeout=STORE_LOCK_SECONDS,
                    thread_local=False)


def handles(uri: str) -> bool:
    """The catch-all: every URI that no other backend claims."""
    return True


def open(uri: str, timeout: float) -> Backend:
    """Open the store (creating a new SQLite file if needed) and read one experiment."""
    from filelock import Timeout
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    shown = redact_uri(uri)
    try:
        with first_use_lock(uri), quiet_loggers(SCHEMA_LOGGERS, logging.WARNING):
            try:
                client = MlflowClient(tracking_uri=uri)
            except MlflowException:
                scheme = uri.split(":", 1)[0] if "://" in uri else uri
                raise InvalidInput(
                    f"'{shown}' is not a tracking URI MLflow knows (scheme '{scheme}'). Use "
                    "http(s)://host:port, sqlite:///path/to/mlflow.db, databricks, or "
                    "nothing for the embedded default."
                ) from None
            client.search_experiments(max_results=1)  # creates the tables of a new store
    except Timeout:
        raise ConnectionFailed(
            f"another session has been creating the tables of {shown} for "
            f"{STORE_LOCK_SECONDS} s; try again when it is done."
        ) from None
    except InvalidInput:
        raise
    except Exception as error:
        raise ConnectionFailed(
            f"cannot open the MLflow store at {shown}: {error_line(error, uri)}. "
            "Check that the path or database exists and is readable."
        ) from None
    return Backend("local", uri, ui_hint=f"mlflow ui --backend-store-uri {shown}")
