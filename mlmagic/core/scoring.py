"""Batch scoring: a pandas DataFrame in this process with pyfunc, or a Spark DataFrame (or
table) through ``mlflow.pyfunc.spark_udf``, the pandas UDF of the source docs."""

from __future__ import annotations

import os
import sys

from mlmagic.base.errors import InvalidInput, MissingExtra, MlmagicError, NotFound
from mlmagic.base.failures import refusal_reason
from mlmagic.core.connection import ensure_connected
from mlmagic.core.interactive import interactive
from mlmagic.core.registry import resolve_model


@interactive
def score(
    model: str,
    data=None,
    *,
    table: str | None = None,
    spark: bool = False,
    result_type: str = "double",
    column: str = "prediction",
):
    """The input's columns plus the model's predictions in ``column``.

    ``data`` is a pandas DataFrame (scored here, unless ``spark``) or a Spark DataFrame;
    ``table`` reads a Spark table instead. Spark scoring uses the notebook's session, or
    starts a local one on first use.
    """
    from mlflow.exceptions import MlflowException

    ensure_connected()
    if data is None and table is None:
        raise InvalidInput("nothing to score. Give --input VAR (a DataFrame) or --table NAME.")
    uri = resolve_model(model).uri
    try:
        if table is not None or spark or _is_spark(data):
            return _score_on_spark(uri, data, table, result_type, column)
        return _score_here(uri, data, column)
    except MlflowException as error:
        raise InvalidInput(
            f"the model could not score this input: {refusal_reason(error.message)}"
        ) from None


def spark_session():
    """The Spark session of the notebook (Databricks' or an active one), else a local one."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise MissingExtra('Spark scoring needs pyspark: pip install "mlmagic[spark]"') from None
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    try:
        return (
            SparkSession.builder.master("local[*]").appName("mlmagic")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.ui.enabled", "false")
            .getOrCreate()
        )
    except Exception as error:
        raise MlmagicError(
            f"could not start a local Spark session ({type(error).__name__}). Spark needs "
            "Java 17 or newer on the PATH (or JAVA_HOME)."
        ) from None


def _score_here(uri: str, data, column: str):
    import mlflow
    import pandas as pd

    if not isinstance(data, pd.DataFrame):
        raise InvalidInput(f"expected a pandas or Spark DataFrame, got a {type(data).__name__}.")
    model = mlflow.pyfunc.load_model(uri)
    scored = data.copy()
    scored[column] = list(model.predict(data)) if len(data) else []
    return scored


def _score_on_spark(uri: str, data, table: str | None, result_type: str, column: str):
    import mlflow
    from pyspark.sql.functions import struct

    session = spark_session()
    frame = _table(session, table) if table is not None else data
    if not _is_spark(frame):
        frame = session.createDataFrame(frame)
    udf = mlflow.pyfunc.spark_udf(session, uri, result_type=result_type, env_manager="local")
    return frame.withColumn(column, udf(struct(*frame.columns)))


def _table(session, name: str):
    try:
        return session.table(name)
    except Exception as error:
        if "TABLE_OR_VIEW_NOT_FOUND" not in str(error) and "not found" not in str(error):
            raise
        raise NotFound(f"there is no table '{name}' in this Spark session. List them with "
                       "spark.catalog.listTables().") from None


def _is_spark(data) -> bool:
    return type(data).__module__.startswith("pyspark.sql")
