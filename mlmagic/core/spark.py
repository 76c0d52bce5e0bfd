"""The notebook's Spark session and its tables, checked before a job runs: which session to
use (never a second one), whether a table exists, whether a ``--where`` condition reads, and
writing a scored frame as a table. Classic and Spark Connect sessions alike (a shared or
serverless Databricks cluster gives a Spark Connect ``spark``)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from mlmagic.base.display import card, quiet_loggers
from mlmagic.base.errors import InvalidInput, MissingExtra, MlmagicError, NotFound
from mlmagic.base.failures import raised_in
from mlmagic.base.library_log import library_output

WRITE_MODES = ("append", "overwrite")
# pyspark 4 logs every analysis error it raises to stderr, as JSON with the JVM's stack
SPARK_ERROR_LOGGERS = ("SQLQueryContextLogger", "DataFrameQueryContextLogger")


def spark_session() -> Any:
    """The notebook's Spark session: the ``spark`` of the IPython namespace (Databricks'), else
    the active session, else a local one started here."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise MissingExtra('Spark scoring needs pyspark: pip install "mlmagic[spark]"') from None
    found = _namespace_spark()
    if found is None:
        found = SparkSession.getActiveSession()
    return found if found is not None else _local_session(SparkSession)


def is_spark_session(value: Any) -> bool:
    """Whether ``value`` is a SparkSession, classic or Spark Connect."""
    kind = type(value)
    return kind.__name__ == "SparkSession" and kind.__module__.startswith("pyspark.sql")


def _namespace_spark():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    value = shell.user_ns.get("spark") if shell is not None else None
    return value if is_spark_session(value) else None


def _local_session(builder_owner):
    """A local session, started by mlmagic: its JVM writes to the library log, not the
    notebook, for as long as it lives, and shows no console progress bar."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    try:
        with library_output("starting a local Spark session", child_processes=True):
            return (
                builder_owner.builder.master("local[*]").appName("mlmagic")
                .config("spark.driver.host", "127.0.0.1")
                .config("spark.driver.bindAddress", "127.0.0.1")
                .config("spark.ui.enabled", "false")
                .config("spark.ui.showConsoleProgress", "false")
                .getOrCreate()
            )
    except Exception as error:
        raise MlmagicError(
            f"could not start a local Spark session ({type(error).__name__}). Spark needs "
            "Java 17 or newer on the PATH (or JAVA_HOME)."
        ) from None


@contextmanager
def quiet_spark() -> Iterator[None]:
    """Keep pyspark's logging of the errors it raises out of the notebook while the block
    runs: mlmagic says what went wrong in one line."""
    try:
        from pyspark.logger import PySparkLogger
    except ImportError:  # pyspark 3.5 logs none
        yield
        return
    for name in SPARK_ERROR_LOGGERS:  # made pyspark's kind first: it logs with extra fields
        PySparkLogger.getLogger(name)
    with quiet_loggers(SPARK_ERROR_LOGGERS, logging.CRITICAL):
        yield


def existing_table(session: Any, name: str) -> Any:
    """The table (or view) ``name`` as a DataFrame; one line if there is none."""
    if not _exists(session, name):
        raise NotFound(f"there is no table '{name}' in the notebook's Spark session; "
                       "spark.catalog.listTables() lists them.")
    return session.table(name)


def filtered(frame: Any, where: str, source: str) -> Any:
    """``frame`` filtered by the Spark SQL condition ``where``, analysed now (Spark Connect
    would wait for the first action), so a wrong condition is one line before any job."""
    from pyspark.errors import AnalysisException

    try:
        result = frame.filter(where)
        result.schema  # noqa: B018 - Spark Connect analyses here
        return result
    except AnalysisException as error:
        raise InvalidInput(f"--where '{where}' is not a condition on {source}: "
                           f"{spark_reason(error)}") from None


def checked_output(session: Any, output: str, source: str | None, mode: str | None) -> bool:
    """Check that the scored rows may go to table ``output``; whether it exists already."""
    if mode is not None and mode not in WRITE_MODES:
        raise InvalidInput(f"--mode is append or overwrite, not '{mode}'.")
    if not _exists(session, output):
        return False
    if source is not None and _identity(session, output) == _identity(session, source):
        raise InvalidInput(f"--output-table '{output}' is the table it scores; write the "
                           "predictions to another table.")
    if mode is None:
        raise InvalidInput(f"table '{output}' already exists: give --mode append or --mode "
                           "overwrite, or another --output-table.")
    return True


@dataclass(frozen=True)
class WrittenTable:
    """Scored rows written to a table: which, how many, how, and by which model."""

    table: str
    rows: int
    model: str
    mode: str
    library_output: str | None = None  # the library log, if the scoring wrote to it

    def _card(self):
        noun = "row" if self.rows == 1 else "rows"
        return card(f"wrote {self.rows} scored {noun} to table {self.table}",
                    ("table", self.table), ("rows written", self.rows),
                    ("how", self.mode), ("model", self.model),
                    ("library output", self.library_output))

    def _repr_html_(self) -> str:
        return self._card()._repr_html_()

    def __repr__(self) -> str:
        return repr(self._card())


def write_table(scored: Any, output: str, mode: str | None, existed: bool,
                model: str) -> WrittenTable:
    """Write ``scored`` as table ``output`` (``mode``: append to or overwrite one that exists)."""
    session = scored.sparkSession
    before = session.table(output).count() if existed and mode == "append" else 0
    scored.write.mode(mode or "error").saveAsTable(output)
    rows = session.table(output).count() - before
    how = {"append": "appended", "overwrite": "overwritten"}[mode] if existed else "new table"
    return WrittenTable(output, rows, model, how)


def job_canceller(session) -> Callable[[], object]:
    """What cancels ``session``'s running jobs: its SparkContext's ``cancelAllJobs``, or
    ``interruptAll`` on Spark Connect (which has no SparkContext)."""
    try:
        return session.sparkContext.cancelAllJobs
    except Exception:
        return session.interruptAll


def spark_reason(error: BaseException) -> str:
    """Spark's reason for refusing, in one line: the first line of its message, without the
    SQL state or the JVM's stack; for a Python worker's exception (the model's), that."""
    raised = raised_in(str(error))
    if raised:
        return f"a Python worker raised {raised}"[:300]
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reason = lines[0] if lines else type(error).__name__
    return reason.split(" SQLSTATE:")[0].rstrip(";. ")[:300]


def _exists(session, name: str) -> bool:
    from pyspark.errors import AnalysisException

    try:
        return session.catalog.tableExists(name)
    except AnalysisException as error:  # not a name Spark reads, or a catalog it lacks
        raise InvalidInput(f"'{name}' names no table Spark can read: {spark_reason(error)}"
                           ) from None


def _identity(session, name: str) -> tuple:
    table = session.catalog.getTable(name)
    return (table.catalog, tuple(table.namespace or ()), table.name.lower(), table.isTemporary)
