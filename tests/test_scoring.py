"""Batch scoring: pandas in process, and Spark through a pandas UDF on a real local session."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import PRICE_CELL, only_line

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
