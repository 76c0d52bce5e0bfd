"""Batch scoring: a pandas DataFrame in this process with pyfunc, or a Spark DataFrame (or
table) through ``mlflow.pyfunc.spark_udf``, the pandas UDF of the source docs, written back as
a table if asked (the session and tables are :mod:`mlmagic.core.spark`'s)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mlmagic.base.display import with_progress
from mlmagic.base.env import temporary_env
from mlmagic.base.errors import InvalidInput
from mlmagic.base.failures import refusal_reason
from mlmagic.base.library_log import NO_PROGRESS_BARS, library_output
from mlmagic.core.connection import ensure_connected
from mlmagic.core.interactive import interactive
from mlmagic.core.registry import ModelRef, resolve_model
from mlmagic.core.spark import (
    checked_output,
    existing_table,
    filtered,
    job_canceller,
    quiet_spark,
    spark_reason,
    spark_session,
    write_table,
)


@interactive
def score(
    model: str,
    data: Any = None,
    *,
    table: str | None = None,
    where: str | None = None,
    output_table: str | None = None,
    mode: str | None = None,
    spark: bool = False,
    result_type: str = "double",
    column: str = "prediction",
) -> Any:
    """The input's columns plus the model's predictions in ``column``.

    ``data`` is a pandas DataFrame (scored here, unless ``spark``) or a Spark DataFrame;
    ``table`` reads a Spark table instead, ``where`` (a Spark SQL condition) filters it. Spark
    scoring uses the notebook's session (its ``spark``, else the active one), or starts a local
    one. With ``output_table`` the scored rows are written as that table (``mode``: append to
    or overwrite one that exists) and the result says how many. Everything named is checked
    before any job runs.
    """
    from mlflow.exceptions import MlflowException

    uri = ensure_connected().tracking_uri
    _check_sources(data, table, output_table, mode)
    ref = resolve_model(model)
    try:
        if table is not None or spark or where or output_table or _is_spark(data):
            return _score_on_spark(ref, data, table, where, output_table, mode,
                                   result_type, column, uri)
        return _score_here(ref.uri, data, column, uri)
    except MlflowException as error:
        raise InvalidInput(
            f"the model could not score this input: {refusal_reason(error.message)}"
        ) from None


def _check_sources(data, table: str | None, output_table: str | None, mode: str | None) -> None:
    if data is None and table is None:
        raise InvalidInput("nothing to score. Give --input VAR (a DataFrame) or --table NAME.")
    if data is not None and table is not None:
        raise InvalidInput("give --input VAR or --table NAME, not both: --table reads the "
                           "table with the notebook's spark.")
    if mode is not None and output_table is None:
        raise InvalidInput("--mode says what to do with an --output-table that exists; "
                           "give --output-table NAME too.")


def _score_here(uri: str, data, column: str, tracking_uri: str):
    import mlflow
    import pandas as pd

    if not isinstance(data, pd.DataFrame):
        raise InvalidInput(f"expected a pandas or Spark DataFrame, got a {type(data).__name__}.")
    with library_output("scoring", tracking_uri):
        model = mlflow.pyfunc.load_model(uri)
        scored = data.copy()
        scored[column] = list(model.predict(data)) if len(data) else []
    return scored


def _score_on_spark(ref: ModelRef, data, table: str | None, where: str | None,
                    output_table: str | None, mode: str | None, result_type: str, column: str,
                    tracking_uri: str):
    import mlflow
    from pyspark.sql.functions import struct

    session = spark_session()
    _check_cluster(session)
    with quiet_spark(), temporary_env(NO_PROGRESS_BARS), \
            library_output("scoring", tracking_uri) as library:
        frame = _input_frame(session, data, table, where)
        existed = output_table is not None and checked_output(session, output_table, table,
                                                              mode)
        _check_inputs(ref.uri, frame.columns, f"table '{table}'" if table else "the input")
        udf = mlflow.pyfunc.spark_udf(session, ref.uri, result_type=result_type,
                                      env_manager="local")
        scored = frame.withColumn(column, udf(struct(*frame.columns)))
        if output_table is None:
            return scored
        written = with_progress(
            f"writing table {output_table}",
            lambda: _written(scored, output_table, mode, existed, str(ref)),
            cancel=job_canceller(session))
    return replace(written, library_output=library.shown)


def _check_cluster(session) -> None:
    """One line for a session mlmagic cannot score through: Databricks Connect from a laptop."""
    from mlmagic.databricks.sdk import connects_from_outside

    if connects_from_outside(session):
        raise InvalidInput(
            "this spark is Databricks Connect from outside Databricks, where "
            "mlflow.pyfunc.spark_udf needs a prebuilt model environment, which mlmagic does not "
            "build: run %aml_score in a notebook on the cluster, or score a pandas DataFrame "
            "here with --input VAR (e.g. spark.table(NAME).limit(N).toPandas()).")


def _input_frame(session, data, table: str | None, where: str | None):
    """The rows to score as a Spark DataFrame of ``session``, filtered by ``where``."""
    frame = existing_table(session, table) if table is not None else data
    if not _is_spark(frame):
        frame = session.createDataFrame(frame)
    source = f"table '{table}'" if table is not None else "the input"
    return filtered(frame, where, source) if where else frame


def _check_inputs(uri: str, columns: list[str], source: str) -> None:
    """One line if ``source`` lacks a column the model's signature asks for."""
    from mlflow.models import get_model_info

    signature = get_model_info(uri).signature
    wanted = signature.inputs.input_names() if signature and signature.inputs else []
    missing = [name for name in wanted if isinstance(name, str) and name not in columns]
    if missing:
        raise InvalidInput(f"{source} lacks the model's inputs {', '.join(missing)} (it has "
                           f"{', '.join(columns)}).")


def _written(scored, output_table: str, mode: str | None, existed: bool, model: str):
    from pyspark.errors import PySparkException

    try:
        return write_table(scored, output_table, mode, existed, model)
    except PySparkException as error:  # a refusal Spark found only at the write
        raise InvalidInput(f"could not write table '{output_table}': {spark_reason(error)}"
                           ) from None


def _is_spark(data) -> bool:
    return type(data).__module__.startswith("pyspark.sql")
