"""Logging inside `%%track`: buffered and batched, yet nothing lost, in order, and MLflow's
own rules (validation, param changes) still apply at the call."""

from __future__ import annotations

import mlflow
import pytest

import mlmagic

POINTS = 10_000
LOOP = (
    "import mlflow\n"
    f"for step in range({POINTS}):\n"
    "    mlflow.log_metric('loss', 1.0 / (step + 1), step=step)\n"
)


def history(run_id: str, key: str = "loss"):
    return mlflow.MlflowClient().get_metric_history(run_id, key)


def assert_all_points(run_id: str) -> None:
    points = history(run_id)
    assert len(points) == POINTS
    assert [p.step for p in points] == list(range(POINTS))
    assert all(p.value == 1.0 / (p.step + 1) for p in points)
    timestamps = [p.timestamp for p in points]
    assert timestamps == sorted(timestamps) and timestamps[0] > 0


@pytest.mark.parametrize("backend", ["sqlite", "http"])
def test_ten_thousand_points_are_all_in_the_store(shell, backend, request):
    uri = request.getfixturevalue("mlflow_server") if backend == "http" else ""
    shell.run_line_magic("aml_connect", f"{uri} --experiment points-{backend}")
    assert shell.run_cell("%%track --name many\n" + LOOP).success
    run = mlmagic.last_run()
    assert run.info.status == "FINISHED"
    assert run.data.metrics["loss"] == 1.0 / POINTS
    assert_all_points(run.info.run_id)


def test_a_cell_that_raises_after_logging_keeps_every_point(shell):
    shell.run_line_magic("aml_connect", "")
    result = shell.run_cell("%%track\n" + LOOP + "raise RuntimeError('diverged')\n")
    assert isinstance(result.error_in_exec, RuntimeError)
    run = mlmagic.last_run()
    assert run.info.status == "FAILED"
    assert_all_points(run.info.run_id)


def test_an_interrupted_cell_keeps_every_point(shell):
    shell.run_line_magic("aml_connect", "")
    shell.run_cell("%%track\n" + LOOP + "raise KeyboardInterrupt\n")
    run = mlmagic.last_run()
    assert run.info.status == "KILLED"
    assert_all_points(run.info.run_id)


def test_params_tags_and_metric_dicts_arrive(shell):
    shell.run_line_magic("aml_connect", "")
    cell = (
        "%%track --param seed=1\n"
        "import mlflow\n"
        "mlflow.log_params({f'p{i}': i for i in range(150)})\n"
        "mlflow.set_tags({f't{i}': i for i in range(150)})\n"
        "mlflow.set_tag('stage', 'dev')\n"
        "mlflow.log_param('same', 1)\n"
        "mlflow.log_param('same', 1)\n"
        "mlflow.log_metrics({'a': 1.0, 'b': 2.0}, step=3)\n"
    )
    assert shell.run_cell(cell).success
    run = mlmagic.last_run()
    assert len(run.data.params) == 152 and run.data.params["p149"] == "149"
    assert run.data.tags["t149"] == "149" and run.data.tags["stage"] == "dev"
    assert run.data.metrics == {"a": 1.0, "b": 2.0}
    assert history(run.info.run_id, "a")[0].step == 3


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("mlflow.log_metric('loss', 'high')", 'Invalid value "high" for parameter \'value\''),
        ("mlflow.log_param('lr', 1)\nmlflow.log_param('lr', 2)", "Changing param values"),
        ("mlflow.log_metric('bad/../key', 1.0)", 'Invalid value "bad/../key"'),
    ],
)
def test_mlflow_errors_still_raise_at_the_call(shell, line, message):
    shell.run_line_magic("aml_connect", "")
    result = shell.run_cell("%%track\nimport mlflow\n" + line)
    assert isinstance(result.error_in_exec, mlflow.exceptions.MlflowException)
    assert message in str(result.error_in_exec)
    assert mlmagic.last_run().info.status == "FAILED"


def test_logging_to_another_run_goes_to_that_run(shell):
    shell.run_line_magic("aml_connect", "")
    other = mlflow.MlflowClient().create_run(mlmagic.status().experiment_id)
    cell = f"%%track\nimport mlflow\nmlflow.log_metric('x', 5.0, run_id='{other.info.run_id}')"
    assert shell.run_cell(cell).success
    assert mlflow.get_run(other.info.run_id).data.metrics == {"x": 5.0}
    assert mlmagic.last_run().data.metrics == {}


def test_mlflow_functions_are_restored_after_the_cell(shell):
    original = mlflow.log_metric
    shell.run_line_magic("aml_connect", "")
    shell.run_cell("%%track\nimport mlflow\ninside = mlflow.log_metric")
    assert shell.user_ns["inside"] is not original
    assert mlflow.log_metric is original


def test_metrics_after_a_logged_model_go_through_mlflow_and_the_summary_shows_them(
    shell, capsys
):
    shell.run_line_magic("aml_connect", "")
    cell = (
        "%%track --name linked\n"
        "import mlflow\n"
        "from sklearn.linear_model import LinearRegression\n"
        "reg = LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])\n"
        "info = mlflow.sklearn.log_model(reg, name='model')\n"
        "mlflow.log_metric('r2', 1.0)\n"
    )
    assert shell.run_cell(cell).success
    assert "r2=1" in capsys.readouterr().out
    tracked = mlflow.get_logged_model(shell.user_ns["info"].model_id)
    # the same cell in a plain MLflow run: the model must be linked to the metric exactly as
    # MLflow links it (MLflow 3.17 does, 3.15 does not)
    with mlflow.start_run():
        shell.run_cell(cell.split("\n", 1)[1])
    plain = mlflow.get_logged_model(shell.user_ns["info"].model_id)
    assert [m.key for m in tracked.metrics or []] == [m.key for m in plain.metrics or []]
