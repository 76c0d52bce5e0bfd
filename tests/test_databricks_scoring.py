"""Batch scoring on the cluster, as the source documents do it in an Azure Databricks notebook:
``%aml_score MODEL --table NAME`` reads the table with the notebook's own ``spark``, adds the
predictions through ``mlflow.pyfunc.spark_udf``, shows them with the notebook's ``display()``
and writes them back as a table. The notebook is the in-process shell made a notebook of the
emulated workspace (tests/support/databricks), its model registered in Unity Catalog there;
one real kernel scores through Spark Connect, as a shared cluster's notebook does."""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest
from conftest import PRICE_CELL, only_line
from support.databricks.notebook import DATABRICKS_VARIABLES, RUNTIME_VERSION, NotebookContext

HOUSES = pd.DataFrame({"rooms": [5.0, 6.0, 2.5, 3.0], "age": [1.0, 2.0, 40.0, 8.0]})
MODEL = "main.default.price"
REGISTER = PRICE_CELL.replace("--register price", f"--register {MODEL}")


@pytest.fixture(scope="module")
def cluster(databricks_service, tmp_path_factory):
    """The files of a notebook of the emulated workspace on a cluster with ``spark``; the
    cluster's SparkSession is stopped at the end of the module."""
    from pyspark.sql import SparkSession

    leftover = SparkSession.getActiveSession()  # an earlier module's: the cluster has its own
    if leftover is not None:
        leftover.stop()
    yield NotebookContext(databricks_service, tmp_path_factory.mktemp("cluster")).prepare()
    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()


@pytest.fixture
def notebook(shell, cluster, databricks_service, monkeypatch):
    """The in-process shell as that notebook (its context, ``dbutils``, ``spark``,
    ``display``), connected with nothing configured, the model registered in Unity Catalog and
    the table ``houses`` written with the notebook's ``spark``. Everything it changed in this
    process is put back afterwards."""
    import mlflow

    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    for name in DATABRICKS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in {"DATABRICKS_RUNTIME_VERSION": RUNTIME_VERSION,
                        "MLFLOW_TRACKING_URI": "databricks"}.items():
        monkeypatch.setenv(name, value)  # as the notebook sets them, and undone at the end
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in _runtime_modules():  # an earlier test may have marked dbruntime absent
        monkeypatch.delitem(sys.modules, name)
    databricks_service.reset()
    cluster.enter(shell)
    shell.run_line_magic("aml_connect", "")
    assert shell.run_cell(REGISTER).success
    shell.user_ns["houses_pd"] = HOUSES.copy()
    spark = shell.user_ns["spark"]
    for table in spark.catalog.listTables():
        spark.sql(f"DROP TABLE IF EXISTS {table.name}")
    spark.createDataFrame(HOUSES).write.saveAsTable("houses")
    yield shell
    for name in _runtime_modules():
        del sys.modules[name]
    shell.reset(new_session=False)  # no stopped spark left for the next module's shell
    assert not databricks_service.not_emulated, databricks_service.not_emulated


def _runtime_modules() -> list[str]:
    return [name for name in sys.modules if name.split(".")[0] == "dbruntime"]


def predictions(frame: pd.DataFrame) -> list[float]:
    """The registered model's own predictions for ``frame``'s houses."""
    import mlflow

    from mlmagic.core import resolve_model

    model = mlflow.pyfunc.load_model(resolve_model(MODEL).uri)
    return [float(value) for value in model.predict(frame[["rooms", "age"]])]


def table_rows(shell, name: str) -> pd.DataFrame:
    rows = shell.user_ns["spark"].table(name).toPandas()
    return rows.sort_values(list(rows.columns)).reset_index(drop=True)


def test_a_table_is_scored_with_the_notebooks_spark_and_shown_by_its_display(notebook):
    from pyspark.sql import SparkSession

    spark = notebook.user_ns["spark"]
    assert SparkSession.getActiveSession() is spark
    assert notebook.run_line_magic("aml_score", f"{MODEL} --table houses") is None
    shown = notebook.user_ns["display"].shown
    assert len(shown) == 1 and shown[0].sparkSession is spark  # the notebook's display, spark
    rows = shown[0].toPandas()
    assert list(rows.columns) == ["rooms", "age", "prediction"]
    assert rows["prediction"].tolist() == predictions(rows)
    assert SparkSession.getActiveSession() is spark  # no second session

    filtered = notebook.run_line_magic("aml_score", f"{MODEL} --table houses --where 'rooms > 4'"
                                       " --output big")
    assert filtered is None and len(shown) == 1  # kept in a variable, not shown
    rows = notebook.user_ns["big"].toPandas()
    assert sorted(rows["rooms"]) == [5.0, 6.0] and rows["prediction"].tolist() == predictions(rows)


def test_the_namespaces_spark_comes_before_the_active_session(notebook):
    from pyspark.sql import SparkSession

    active = notebook.user_ns["spark"]
    own = notebook.user_ns["spark"] = active.newSession()  # a session of the notebook's own
    own.createDataFrame(HOUSES).createOrReplaceTempView("only_in_own")  # a view each sees alone
    active.createDataFrame(HOUSES[:1]).createOrReplaceTempView("only_in_active")  # now active
    assert SparkSession.getActiveSession() is active
    notebook.run_line_magic("aml_score", f"{MODEL} --table only_in_own")
    shown = notebook.user_ns["display"].shown
    assert shown[-1].sparkSession is own and len(shown[-1].toPandas()) == len(HOUSES)
    del notebook.user_ns["spark"]  # no spark in the namespace: the active session
    assert notebook.run_cell(f"%aml_score {MODEL} --table only_in_active").success
    assert shown[-1].sparkSession is active and len(shown[-1].toPandas()) == 1


def test_output_table_is_written_and_said_in_one_card(notebook, capsys):
    written = notebook.run_line_magic("aml_score", f"{MODEL} --table houses "
                                      "--output-table houses_scored")
    assert repr(written).startswith("wrote 4 scored rows to table houses_scored")
    assert "houses_scored" in written._repr_html_()
    rows = table_rows(notebook, "houses_scored")
    assert len(rows) == 4 and rows["prediction"].tolist() == predictions(rows)
    assert notebook.user_ns["display"].shown == []  # the card says it; nothing recomputed

    capsys.readouterr()
    line = f"%aml_score {MODEL} --table houses --where 'rooms < 4' --output-table houses_scored"
    assert not notebook.run_cell(line).success  # it exists, and no --mode was given
    assert "already exists" in (said := only_line(capsys)) and "--mode" in said
    assert len(table_rows(notebook, "houses_scored")) == 4

    appended = notebook.run_line_magic("aml_score", line[len("%aml_score "):] + " --mode append")
    assert repr(appended).startswith("wrote 2 scored rows to table houses_scored")
    assert len(table_rows(notebook, "houses_scored")) == 6
    notebook.run_line_magic("aml_score", line[len("%aml_score "):] + " --mode overwrite")
    rows = table_rows(notebook, "houses_scored")
    assert sorted(rows["rooms"]) == [2.5, 3.0] and rows["prediction"].tolist() == predictions(rows)


BAD_LINES = [
    ("--table ghost", "no table 'ghost'"),
    ("--table ghost --output-table ghost_scored", "no table 'ghost'"),
    ("--table houses --where 'rooms >>> '", "--where"),
    ("--table houses --where 'floors > 2' --output-table by_floor", "floors"),
    ("--table houses --where 'rooms + 1' --output-table by_floor", "--where"),
    ("--table houses --input houses_pd", "--table"),
    ("--table houses --output-table houses --mode overwrite", "the table it scores"),
    ("--table houses --mode append", "--mode"),
    ("--table houses --mode replace --output-table by_floor", "--mode"),
    ("--table houses --output scored --output-table by_floor", "--output-table"),
    ("--table no_age --output-table no_age_scored", "age"),
]


def test_bad_input_is_one_line_and_changes_nothing(notebook, capsys):
    spark = notebook.user_ns["spark"]
    spark.createDataFrame(HOUSES[["rooms"]]).write.saveAsTable("no_age")
    tables = sorted(t.name for t in spark.catalog.listTables())
    before = table_rows(notebook, "houses")
    for options, expected in BAD_LINES:
        capsys.readouterr()
        assert not notebook.run_cell(f"%aml_score {MODEL} {options}").success, options
        said = only_line(capsys)
        assert expected in said, (options, said)
        assert "Traceback" not in said and "JVM" not in said
    assert "spark.catalog.listTables()" in _said(notebook, capsys, "--table ghost")
    assert sorted(t.name for t in spark.catalog.listTables()) == tables  # nothing written
    assert table_rows(notebook, "houses").equals(before)
    assert notebook.user_ns["display"].shown == []


def _said(shell, capsys, options: str) -> str:
    capsys.readouterr()
    shell.run_cell(f"%aml_score {MODEL} {options}")
    return only_line(capsys)


@pytest.fixture(scope="module")
def shared_cluster(databricks_service, tmp_path_factory):
    """A real kernel as a notebook on a shared cluster: its ``spark`` is a Spark Connect
    session to the cluster (a Spark Connect server of its own, whose Python workers run in the
    same runtime), with no ``sc``: (context, kernel)."""
    from kernels import Kernel
    from servers import SparkConnectServer

    root = tmp_path_factory.mktemp("shared-cluster")
    context = NotebookContext(databricks_service, root / "context", spark=False).prepare()
    env = {**context.environment(), "HOME": str(root)}
    env.pop("MLFLOW_TRACKING_URI")
    server = SparkConnectServer(root / "cluster", env,
                                {"spark.sql.warehouse.dir": str(context.warehouse)}).start()
    (root / "work").mkdir()
    kernel = Kernel(root / "work", env).start()
    started = kernel.run("from pyspark.sql import SparkSession\n"
                         f"spark = SparkSession.builder.remote({server.url!r}).getOrCreate()\n"
                         "print(type(spark).__module__)")
    assert started.status == "ok", started.text
    assert started.text.splitlines()[-1] == "pyspark.sql.connect.session"
    yield context, kernel
    kernel.stop()
    server.stop()


def run_ok(kernel, code: str) -> str:
    done = kernel.run(code, timeout=300)
    assert done.status == "ok", done.text
    return done.text


def test_a_shared_cluster_notebook_scores_a_table_through_spark_connect(shared_cluster,
                                                                        databricks_service):
    context, kernel = shared_cluster
    databricks_service.reset()
    run_ok(kernel, "%load_ext mlmagic\n%aml_connect")
    run_ok(kernel, REGISTER.replace(MODEL, "main.default.price_connect"))
    run_ok(kernel, "import pandas as pd\n"
                   f"houses = pd.DataFrame({HOUSES.to_dict(orient='list')!r})\n"
                   "spark.createDataFrame(houses).write.saveAsTable('houses')")
    written = kernel.run("%aml_score main.default.price_connect --table houses "
                         "--where 'rooms > 4' --output-table houses_scored", timeout=300)
    assert "wrote 2 scored rows to table houses_scored" in written.text
    displayed = kernel.run("%aml_score main.default.price_connect --table houses", timeout=300)
    for cell in (written, displayed):  # MLflow's env-manager lines went to the library log
        assert cell.status == "ok" and cell.noise == [], cell.text
    found = json.loads(run_ok(kernel, (
        "import json, mlflow, mlmagic\n"
        "model = mlflow.pyfunc.load_model(mlmagic.resolve_model("
        "'main.default.price_connect').uri)\n"
        "written = spark.table('houses_scored').toPandas()\n"
        "shown = display.shown[-1]\n"
        "print(json.dumps({'written': written.to_dict(orient='list'),\n"
        "    'expected': [float(p) for p in model.predict(written[['rooms', 'age']])],\n"
        "    'shown': type(shown).__module__, 'same': shown.sparkSession is spark,\n"
        "    'rows': len(shown.toPandas())}))")).splitlines()[-1])
    assert sorted(found["written"]["rooms"]) == [5.0, 6.0]
    assert found["written"]["prediction"] == found["expected"]
    assert found["shown"] == "pyspark.sql.connect.dataframe" and found["same"]
    assert found["rows"] == len(HOUSES)
    assert (context.warehouse / "houses_scored").is_dir()  # written by the cluster's Spark
    missing = kernel.run("%aml_score main.default.price_connect --table ghost")
    assert missing.status == "error"
    assert [line for line in missing.text.splitlines() if line.strip()] == [
        "NotFound: there is no table 'ghost' in the notebook's Spark session; "
        "spark.catalog.listTables() lists them."]
    assert not databricks_service.not_emulated, databricks_service.not_emulated


@pytest.fixture(scope="module")
def remote_cluster(tmp_path_factory):
    """A Spark Connect server standing for a Databricks cluster reached from a laptop."""
    from servers import SparkConnectServer, clean_environment

    root = tmp_path_factory.mktemp("remote-cluster")
    server = SparkConnectServer(root, {**clean_environment(*DATABRICKS_VARIABLES),
                                       "PYSPARK_PYTHON": sys.executable}).start()
    yield server
    server.stop()


def test_databricks_connect_from_a_laptop_is_one_line_naming_what_to_use(shell, remote_cluster,
                                                                         monkeypatch, capsys):
    """A laptop's ``spark`` from Databricks Connect is a Spark Connect session whose requests
    carry the cluster's id (``x-databricks-cluster-id``); there MLflow's spark_udf needs a
    prebuilt model environment, which mlmagic does not build."""
    from pyspark.sql import SparkSession

    monkeypatch.setenv("SPARK_CONNECT_MODE_ENABLED", "1")  # as pyspark's remote() does; undone
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    # pyspark's Spark Connect reads __main__.__spec__, which the in-process shell's module lacks
    monkeypatch.setattr(sys.modules["__main__"], "__spec__", None, raising=False)
    shell.run_line_magic("aml_connect", "--experiment laptop")
    assert shell.run_cell(PRICE_CELL).success
    spark = SparkSession.builder.remote(
        f"{remote_cluster.url}/;x-databricks-cluster-id=0601-182128-dcbte59m").create()
    try:
        shell.user_ns["spark"] = spark
        spark.createDataFrame(HOUSES).createOrReplaceTempView("houses")
        capsys.readouterr()
        assert not shell.run_cell("%aml_score price --table houses --output-table scored").success
        said = only_line(capsys)
        assert "Databricks Connect" in said and "--input" in said, said
        assert not spark.catalog.tableExists("scored")
    finally:
        spark.stop()
        del shell.user_ns["spark"]
