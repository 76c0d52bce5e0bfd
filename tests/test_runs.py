"""`%aml_runs`: the experiment's runs as a pandas DataFrame."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import only_line


@pytest.fixture
def three_runs(shell):
    shell.run_line_magic("aml_connect", "--experiment sweep")
    for alpha, rmse in [(0.1, 3.0), (1.0, 2.0), (10.0, 4.0)]:
        cell = f"%%track --name a{alpha} --param alpha={alpha} --capture rmse\nrmse = {rmse}"
        assert shell.run_cell(cell).success
    return shell


def test_runs_is_a_dataframe_assignable_from_the_magic(three_runs):
    assert three_runs.run_cell("df = %aml_runs").success
    df = three_runs.user_ns["df"]
    assert isinstance(df, pd.DataFrame)
    assert sorted(df["params.alpha"]) == ["0.1", "1.0", "10.0"]
    assert set(df["status"]) == {"FINISHED"}


def test_filter_order_and_max(three_runs):
    df = three_runs.run_line_magic("aml_runs", '--filter "metrics.rmse < 3.5"')
    assert sorted(df["metrics.rmse"]) == [2.0, 3.0]
    df = three_runs.run_line_magic("aml_runs", '--order-by "metrics.rmse ASC" --max 2')
    assert list(df["metrics.rmse"]) == [2.0, 3.0]
    df = three_runs.run_line_magic("aml_runs", "--filter \"params.alpha = '10.0'\"")
    assert list(df["tags.mlflow.runName"]) == ["a10.0"]


def test_max_runs_setting_limits_the_default(three_runs):
    three_runs.run_line_magic("config", "MlMagic.max_runs = 1")
    assert len(three_runs.run_line_magic("aml_runs", "")) == 1


def test_other_experiment(three_runs):
    three_runs.run_cell("%%track --experiment other --name elsewhere\npass")
    df = three_runs.run_line_magic("aml_runs", "--experiment other")
    assert list(df["tags.mlflow.runName"]) == ["elsewhere"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('%aml_runs --order-by "sideways"', 'InvalidInput: --order-by "sideways" is not an '
         "order MLflow understands"),
        ("%aml_runs --experiment nowhere", "NotFound: no experiment named 'nowhere'"),
        ("%aml_runs --max 0", "InvalidInput: --max must be at least 1"),
        ("%aml_runs --max many", "UsageError: argument -m/--max: invalid int value"),
    ],
)
def test_bad_searches_are_one_line(three_runs, capsys, line, expected):
    capsys.readouterr()
    result = three_runs.run_cell(line)
    assert only_line(capsys).startswith(expected)
    assert not result.success


@pytest.mark.parametrize(
    ("bad", "reason", "advice"),
    [
        ("accuracy > 0.9", "'accuracy' is not a run attribute (metrics, params and tags need "
         "their prefix)", 'Write e.g. --filter "metrics.accuracy > 0.9" or "params.alpha = '),
        ("rmse < 3", "'rmse' is not a run attribute", 'Did you mean --filter "metrics.rmse < 3"?'),
        ("metrics.rmse < 3 AND alpah = '1.0'", "'alpah' is not a run attribute",
         "Did you mean --filter \"metrics.rmse < 3 AND params.alpha = '1.0'\"?"),
        ("colour.rmse = 1", "Invalid entity type 'colour'",
         'Did you mean --filter "metrics.rmse = 1"?'),
        ("metrics.acc >", "Invalid clause(s) in filter string: 'metrics.acc', '>'",
         'Write e.g. --filter "metrics.accuracy > 0.9"'),
        ("metrics.rmse >> 1", "Invalid comparator '>>'", 'Write e.g. --filter'),
    ],
)
def test_a_bad_filter_is_mlmagics_own_line_with_a_valid_example(three_runs, capsys, bad, reason,
                                                                 advice):
    three_runs.user_ns["df"] = "before"
    capsys.readouterr()
    for line in (f'df = %aml_runs --filter "{bad}"',
                 f'df = %aml_runs --filter "{bad}" --order-by "metrics.rmse DESC"'):
        assert not three_runs.run_cell(line).success
        shown = only_line(capsys)
        assert shown.startswith(f'InvalidInput: --filter "{bad}" is not a filter MLflow '
                                f"understands: {reason}"), shown
        assert advice in shown, shown
        assert "Valid keys are" not in shown and "run_name', " not in shown  # no raw key list
        assert three_runs.user_ns["df"] == "before"  # nothing changed
