"""Batch scoring: pandas in process, and Spark through a pandas UDF on a real local session."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import PRICE_CELL, only_line
from kernels import Kernel
from servers import clean_environment

HOUSES = pd.DataFrame({"rooms": [5.0, 6.0, 2.5], "age": [1.0, 2.0, 40.0]})
EXPECTED = [49.0, 58.0, -15.0]


@pytest.fixture(scope="module")
def spark():
    from mlmagic.core import spark_session

    session = spark_session()
    yield session
    session.stop()


@pytest.fixture
def price(shell):
    shell.run_line_magic("aml_connect", "--experiment scoring")
    assert shell.run_cell(PRICE_CELL).success
    shell.user_ns["houses"] = HOUSES.copy()
    return shell


def test_pandas_scoring_adds_the_prediction_column(price):
    scored = price.run_line_magic("aml_score", "price --input houses")
    assert list(scored.columns) == ["rooms", "age", "prediction"]
    assert np.allclose(scored["prediction"], EXPECTED)
    assert list(price.user_ns["houses"].columns) == ["rooms", "age"]  # the input is unchanged


def test_spark_scoring_matches_pyfunc(price, spark):
    assert price.run_line_magic("aml_score", "price --input houses --spark --output scored") is None
    scored = price.user_ns["scored"]
    assert type(scored).__module__.startswith("pyspark.sql")
    rows = scored.toPandas()
    assert list(rows.columns) == ["rooms", "age", "prediction"]
    assert np.allclose(rows["prediction"], EXPECTED)

    spark.createDataFrame(HOUSES).createOrReplaceTempView("houses_table")
    from_table = price.run_line_magic("aml_score", "price --table houses_table").toPandas()
    assert np.allclose(from_table["prediction"], EXPECTED)
    price.user_ns["spark_houses"] = spark.createDataFrame(HOUSES)
    from_spark = price.run_line_magic("aml_score", "price:1 --input spark_houses").toPandas()
    assert np.allclose(from_spark["prediction"], EXPECTED)
    where = price.run_line_magic("aml_score", "price --input houses --where 'rooms > 3'")
    assert type(where).__module__.startswith("pyspark.sql")  # a condition is Spark's
    assert np.allclose(where.toPandas()["prediction"], EXPECTED[:2])


def test_bad_scoring_input_is_one_line(price, capsys):
    price.user_ns["no_age"] = HOUSES[["rooms"]]
    cases = [
        ("%aml_score price --input no_age", "InvalidInput: the model could not score this input"),
        ("%aml_score price", "InvalidInput: nothing to score"),
        ("%aml_score ghost --input houses", "NotFound: no registered model named 'ghost'"),
        ("%aml_score price --input missing", "InvalidInput: there is no variable 'missing'"),
    ]
    for line, expected in cases:
        capsys.readouterr()
        assert not price.run_cell(line).success
        assert only_line(capsys).startswith(expected), line


def test_missing_pyspark_is_one_line_naming_the_extra():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "sys.modules['pyspark'] = None  # as if pyspark were not installed\n"
        "from mlmagic.core import spark_session\n"
        "try:\n"
        "    spark_session()\n"
        "except Exception as error:\n"
        "    print(error._render_traceback_()[0])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == (
        'MissingExtra: Spark scoring needs pyspark: pip install "mlmagic[spark]"'
    )


def test_a_notebook_scoring_on_spark_keeps_the_libraries_output_in_the_log(workdir):
    """In a real kernel, the first Spark scoring starts the JVM: its start-up lines, log4j,
    the stage progress bar and MLflow's env-manager lines go to the kernel's library log;
    the notebook shows the result, and the card names the log."""
    home = workdir.parent / "home"
    with Kernel(workdir, {**clean_environment(), "HOME": str(home)}) as kernel:
        kernel.set_up("%load_ext mlmagic", "%aml_connect --experiment scoring", PRICE_CELL,
                      f"import pandas as pd\nhouses = pd.DataFrame({HOUSES.to_dict('list')!r})")
        scored = kernel.run("%aml_score price --input houses --spark --output scored")
        shown = kernel.run("scored.toPandas()")
        written = kernel.run("%aml_score price --input houses --output-table scored_houses")
    for cell in (scored, shown, written):
        assert cell.status == "ok" and cell.noise == [], cell.text
    assert scored.outputs == []  # kept in a variable: nothing to show
    assert "prediction" in shown.text and "49.0" in shown.text and "-15.0" in shown.text
    [log] = (home / ".mlmagic" / "logs").glob("kernel-*.log")
    assert "wrote 3 scored rows to table scored_houses" in written.text
    assert f"library output  {log}" in written.text
    kept = log.read_text(encoding="utf-8")
    for line in ("Using Spark's default log4j profile", "NativeCodeLoader",
                 "WARNING mlflow.pyfunc: Calling `spark_udf()` with `env_manager=\"local\"`"):
        assert line in kept
    assert "[Stage" not in kept  # no console progress bar in a session mlmagic starts
