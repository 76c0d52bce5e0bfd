"""Every place mlmagic leans on MLflow's Databricks internals or the runtime's private parts.

Checked against MLflow 3.11.1, 3.15.0 and 3.17.2 (what the suite runs) and the notebook
context as MLflow 3.15 reads it, in the project's emulated runtime (tests/support/databricks,
shaped after DBR 15.4); never against a real cluster here.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from mlmagic.base.config import DATABRICKS_RUNTIME
from mlmagic.base.display import quiet_loggers

# MLflow's Databricks helpers and databricks-sdk log a warning for each way of signing in they
# tried; mlmagic says in one line what failed and what to set.
SDK_LOGGERS = ("mlflow.utils.databricks_utils", "databricks.sdk")


def in_runtime() -> bool:
    """Whether this Python runs in a Databricks runtime (a notebook or a job on a cluster)."""
    return bool(os.environ.get(DATABRICKS_RUNTIME))


@contextmanager
def quiet() -> Iterator[None]:
    """Keep MLflow's Databricks helpers and databricks-sdk quiet while the block runs."""
    with quiet_loggers(SDK_LOGGERS, logging.CRITICAL):
        yield


def mark_runtime_absent() -> None:
    """MLflow probes for the Databricks runtime on every request by importing ``dbruntime``
    (seen with MLflow 3.10 to 3.17). Where it does not exist it is marked absent, so the
    probe fails at once instead of searching the import path each time (and, from a writer
    thread, taking the import lock that ``mlflow.autolog()``'s hooks hold)."""
    if "dbruntime" not in sys.modules and importlib.util.find_spec("dbruntime") is None:
        sys.modules["dbruntime"] = None


def notebook_path() -> str | None:
    """The workspace path of the notebook this kernel runs, from the notebook context MLflow
    reads (``mlflow.utils.databricks_utils.get_notebook_path``); None outside a notebook."""
    if not in_runtime():
        return None
    try:
        from mlflow.utils.databricks_utils import get_notebook_path

        return get_notebook_path()
    except Exception:  # no notebook context: a job, or a runtime MLflow cannot read
        return None


def connects_from_outside(session) -> bool:
    """Whether ``session`` is Databricks Connect from outside a Databricks runtime: a Spark
    Connect client whose requests name a Databricks cluster or serverless session (MLflow's
    ``is_databricks_connect``). MLflow's ``spark_udf`` then needs a prebuilt model
    environment (``prebuilt_env_uri``)."""
    if in_runtime():
        return False
    try:
        from mlflow.utils.databricks_utils import is_databricks_connect

        return bool(is_databricks_connect(session))
    except Exception:  # an MLflow without it, or a session that cannot say
        return False
