"""`%%track`: a cell becomes an MLflow run with its params, metrics, source and outcome."""

from __future__ import annotations

import mlflow
import pytest
from conftest import only_line

import mlmagic
from mlmagic.core.provenance import ARTIFACTS as PROVENANCE
from mlmagic.core.session import current_session


@pytest.fixture
def connected(shell):
    shell.run_line_magic("aml_connect", "--experiment tracking")
    return shell


def artifacts(run_id: str) -> list[str]:
    """The run's artifacts, but for what reproduces it (tests/test_reproduce.py tries those)."""
    return sorted(a.path for a in mlflow.artifacts.list_artifacts(run_id=run_id)
                  if a.path not in PROVENANCE)


def runs_count() -> int:
    return len(mlflow.search_runs(experiment_ids=[current_session().connection.experiment_id]))


def test_cell_logs_params_tags_metrics_and_source(connected, capsys):
    cell = (
        "%%track --name baseline --param lr=0.1 --param layers=3 --tag team=risk\n"
        "import mlflow\n"
        "for step in range(5):\n"
        "    mlflow.log_metric('loss', 1 / (step + 1), step=step)\n"
        "mlflow.log_param('optimizer', 'adam')\n"
    )
    assert connected.run_cell(cell).success
    run = mlmagic.last_run()
    assert run.info.run_name == "baseline"
    assert run.info.status == "FINISHED"
    assert run.data.params == {"lr": "0.1", "layers": "3", "optimizer": "adam"}
    assert run.data.tags["team"] == "risk"
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(s, 1 / (s + 1)) for s in range(5)]
    assert artifacts(run.info.run_id) == ["cell.py"]
    source = mlflow.artifacts.load_text(f"{run.info.artifact_uri}/cell.py")
    assert "mlflow.log_metric('loss'" in source
    summary = capsys.readouterr().out
    assert "run baseline: FINISHED" in summary and "loss=0.2" in summary
    assert run.info.run_id in summary


def test_capture_logs_numbers_as_metrics_and_scalars_as_params_but_never_secrets(
    connected, capsys
):
    cell = (
        "%%track --capture accuracy,n_trees,model_kind,use_gpu,db_password,apiKey,table,missing\n"
        "import numpy as np\n"
        "accuracy = np.float64(0.93)\n"
        "n_trees = 200\n"
        "model_kind = 'forest'\n"
        "use_gpu = False\n"
        "db_password = 'hunter2'\n"
        "apiKey = 'k-123'\n"
        "table = [1, 2, 3]\n"
    )
    assert connected.run_cell(cell).success
    run = mlmagic.last_run()
    assert run.data.metrics == {"accuracy": 0.93, "n_trees": 200.0}
    assert run.data.params == {"model_kind": "forest", "use_gpu": "False"}
    printed = capsys.readouterr()
    notes = printed.err
    assert "'db_password' looks like a secret; it was not logged." in notes
    assert "'apiKey' looks like a secret" in notes
    assert "'table' is a list" in notes
    assert "'missing' is not defined" in notes
    assert "hunter2" not in printed.out + printed.err
    assert "hunter2" not in str(run.data) and "k-123" not in str(run.data)


def test_secret_looking_params_and_tags_are_masked(connected, capsys):
    line = "%%track --param storage_token=abc --param depth=4 --tag client_secret=xyz\npass"
    assert connected.run_cell(line).success
    run = mlmagic.last_run()
    assert run.data.params == {"depth": "4", "storage_token": "***"}
    assert run.data.tags["client_secret"] == "***"
    notes = capsys.readouterr().err
    assert "the param 'storage_token' looks like a secret; it is logged as ***." in notes
    assert "the tag 'client_secret' looks like a secret; it is logged as ***." in notes


def test_failing_cell_reraises_the_users_exception_and_closes_the_run_failed(connected, capsys):
    cell = (
        "%%track --name broken\n"
        "class DataError(Exception):\n"
        "    pass\n"
        "error = DataError('column price is missing')\n"
        "raise error\n"
    )
    result = connected.run_cell(cell)
    assert result.error_in_exec is connected.user_ns["error"]
    assert str(result.error_in_exec) == "column price is missing"
    assert mlflow.active_run() is None
    run = mlmagic.last_run()
    assert run.info.status == "FAILED"
    assert artifacts(run.info.run_id) == ["cell.py", "traceback.txt"]
    traceback_text = mlflow.artifacts.load_text(f"{run.info.artifact_uri}/traceback.txt")
    assert "DataError: column price is missing" in traceback_text
    shown = capsys.readouterr().out
    assert "run broken: FAILED" in shown
    assert "DataError" in shown and "column price is missing" in shown


def test_interrupted_cell_is_killed_and_leaves_no_active_run(connected):
    result = connected.run_cell("%%track --name stopped\nraise KeyboardInterrupt")
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert mlflow.active_run() is None
    assert mlmagic.last_run().info.status == "KILLED"


def test_runs_the_cell_left_open_are_closed_and_our_outcome_is_kept(connected):
    cell = (
        "%%track --name parent\n"
        "import mlflow\n"
        "child = mlflow.start_run(nested=True, run_name='forgotten')\n"
        "raise RuntimeError('stop')\n"
    )
    result = connected.run_cell(cell)
    assert isinstance(result.error_in_exec, RuntimeError)
    assert mlflow.active_run() is None
    child_id = connected.user_ns["child"].info.run_id
    assert mlflow.get_run(child_id).info.status == "FAILED"
    assert mlmagic.last_run().info.status == "FAILED"

    result = connected.run_cell("%%track\nimport mlflow\nmlflow.end_run()\nraise ValueError('x')")
    assert isinstance(result.error_in_exec, ValueError)
    assert mlmagic.last_run().info.status == "FAILED"


def test_last_expression_is_the_cells_output(connected):
    result = connected.run_cell("%%track\nx = 20\nx * 2 + 2")
    assert result.result == 42
    # a trailing semicolon keeps it quiet, as in any cell; the expression still runs
    result = connected.run_cell("%%track\nx = 20\nx.bit_length();  # no output")
    assert result.success and result.result is None


def test_syntax_error_creates_no_run(connected, capsys):
    before = runs_count()
    result = connected.run_cell("%%track\nif True print('x')")
    assert isinstance(result.error_in_exec, SyntaxError)
    assert runs_count() == before


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("%%track --param lr\npass", "InvalidInput: --param expects KEY=VALUE, got 'lr'"),
        ("%%track --tag =x\npass", "InvalidInput: --tag expects KEY=VALUE, got '=x'"),
        ("%%track --capture 1abc\npass", "InvalidInput: capture expects variable names"),
        ("%%track --nme x\npass", "UsageError: unrecognized arguments: --nme x"),
    ],
)
def test_bad_options_are_one_line_and_create_no_run(connected, capsys, line, expected):
    before = runs_count()
    capsys.readouterr()
    result = connected.run_cell(line)
    assert only_line(capsys).startswith(expected)
    assert not result.success
    assert runs_count() == before


def test_an_active_run_needs_nested(connected, capsys):
    outer = mlflow.start_run(run_name="outer")
    try:
        capsys.readouterr()
        connected.run_cell("%%track\npass")
        assert "is still active" in only_line(capsys)
        assert connected.run_cell("%%track --nested --name inner\npass").success
        inner = mlmagic.last_run()
        assert inner.data.tags["mlflow.parentRunId"] == outer.info.run_id
        assert mlflow.active_run().info.run_id == outer.info.run_id
    finally:
        mlflow.end_run()


def test_experiment_option_is_for_this_run_only(connected, client):
    connected.run_cell("%%track --experiment side-study\npass")
    side = client().get_experiment_by_name("side-study")
    assert mlmagic.last_run().info.experiment_id == side.experiment_id
    assert current_session().connection.experiment_name == "tracking"


def test_no_source_option_and_setting(connected):
    connected.run_cell("%%track --no-source\nx = 1")
    assert artifacts(mlmagic.last_run().info.run_id) == []
    connected.run_line_magic("config", "MlMagic.log_source = False")
    connected.run_cell("%%track\nx = 1")
    assert artifacts(mlmagic.last_run().info.run_id) == []


def test_show_summary_setting(connected, capsys):
    connected.run_line_magic("config", "MlMagic.show_summary = False")
    capsys.readouterr()
    connected.run_cell("%%track --name silent\nx = 1")
    assert "silent" not in capsys.readouterr().out


def test_with_the_summary_off_a_finished_cell_shows_nothing_in_a_notebook(mlflow_server,
                                                                         workdir):
    """On a tracking server MLflow prints its own "View run" links when a run ends; with
    show_summary off the user asked for silence, and a real kernel shows nothing."""
    from kernels import Kernel
    from servers import clean_environment

    with Kernel(workdir, {**clean_environment(), "HOME": str(workdir.parent / "home")}) as kernel:
        kernel.set_up("%load_ext mlmagic", f"%aml_connect {mlflow_server} -e quiet",
                      "%config MlMagic.show_summary = False")
        silent = kernel.run("%%track --name silent\nx = 1")
        logged = kernel.run("import mlflow\n%config MlMagic.show_summary = True\n"
                            "print(mlflow.search_runs(experiment_names=['quiet'])"
                            "['tags.mlflow.runName'].tolist())")
    assert silent.status == "ok" and silent.outputs == []
    assert logged.text == "['silent']"


@pytest.mark.parametrize("front_end", ["override", "vscode", "jupyter", "none"])
def test_notebook_path_becomes_the_source_tags(connected, monkeypatch, workdir, front_end):
    notebook = workdir / "train.ipynb"
    notebook.write_text("{}")
    if front_end == "override":
        monkeypatch.setenv("MLMAGIC_NOTEBOOK_PATH", "/projects/churn/train.ipynb")
    elif front_end == "vscode":
        connected.user_ns["__vsc_ipynb_file__"] = "/home/me/train.ipynb"
    elif front_end == "jupyter":
        monkeypatch.setenv("JPY_SESSION_NAME", "notebooks/train.ipynb")
    assert connected.run_cell("%%track\nx = 1").success
    tags = mlmagic.last_run().data.tags
    expected = {
        "override": "/projects/churn/train.ipynb",
        "vscode": "/home/me/train.ipynb",
        "jupyter": str(notebook),
    }.get(front_end)
    if expected:
        assert tags["mlflow.source.name"] == expected
        assert tags["mlflow.source.type"] == "NOTEBOOK"
    else:
        assert tags.get("mlflow.source.type") != "NOTEBOOK"


def test_model_logged_in_the_cell_belongs_to_the_run(connected):
    cell = (
        "%%track --name model\n"
        "import mlflow\n"
        "from sklearn.linear_model import LinearRegression\n"
        "reg = LinearRegression().fit([[0.0], [1.0], [2.0]], [1.0, 3.0, 5.0])\n"
        "info = mlflow.sklearn.log_model(reg, name='model')\n"
    )
    assert connected.run_cell(cell).success
    run = mlmagic.last_run()
    assert connected.user_ns["info"].run_id == run.info.run_id
    loaded = mlflow.pyfunc.load_model(connected.user_ns["info"].model_uri)
    assert loaded.predict([[3.0]])[0] == pytest.approx(7.0)


def test_autolog_is_on_for_the_cell_only(connected):
    cell = (
        "%%track --autolog --name auto\n"
        "from sklearn.linear_model import Ridge\n"
        "Ridge(alpha=0.5).fit([[0.0], [1.0], [2.0]], [1.0, 3.0, 5.0])\n"
    )
    assert connected.run_cell(cell).success
    run = mlmagic.last_run()
    assert run.data.params["alpha"] == "0.5"
    assert "training_score" in run.data.metrics

    manual = "%%track --name manual\nRidge(alpha=0.7).fit([[0.0], [1.0]], [1, 2])"
    assert connected.run_cell(manual).success
    assert "alpha" not in mlmagic.last_run().data.params


def test_track_connects_to_the_default_when_not_connected(shell, workdir):
    assert current_session().connection is None
    assert shell.run_cell("%%track\nx = 1").success
    assert current_session().connection.origin == "embedded default"
    assert (workdir / "mlflow.db").is_file()
    assert mlmagic.last_run().info.status == "FINISHED"


def test_magics_inside_a_tracked_cell_work(connected):
    assert connected.run_cell("%%track --name outer\nfound = %aml_runs\n").success
    assert len(connected.user_ns["found"]) >= 1
