"""Registration: `%aml_register`, `%%track --register`, `%aml_models`, and one resolver for
NAME, NAME:VERSION, NAME@ALIAS and URIs."""

from __future__ import annotations

import mlflow
import pytest
from conftest import only_line

import mlmagic
from mlmagic.core import models, resolve_model

TRAIN = (
    "import mlflow\n"
    "from sklearn.linear_model import LinearRegression\n"
    "reg = LinearRegression().fit([[0.0], [1.0], [2.0]], [{b}, {b} + 2.0, {b} + 4.0])\n"
    "mlflow.sklearn.log_model(reg, name='model', pip_requirements=['scikit-learn'])\n"
)


@pytest.fixture
def registered(shell):
    """'churn' registered twice from tracked cells (intercepts 1.0 and 5.0)."""
    shell.run_line_magic("aml_connect", "--experiment registry")
    for intercept in (1.0, 5.0):
        cell = f"%%track --name fit-{intercept} --register churn\n" + TRAIN.format(b=intercept)
        assert shell.run_cell(cell).success
    return shell


def predict(reference: str) -> float:
    return mlflow.pyfunc.load_model(resolve_model(reference).uri).predict([[0.0]])[0]


def test_track_register_adds_versions_and_shows_them(capsys, registered):
    assert "model churn version 2" in capsys.readouterr().out
    assert resolve_model("churn").version == "2"
    assert predict("churn") == pytest.approx(5.0)
    assert predict("churn:1") == pytest.approx(1.0)
    version = mlflow.MlflowClient().get_model_version("churn", "2")
    assert version.run_id == mlmagic.last_run().info.run_id


def test_register_magic_with_alias_and_tags(registered):
    summary = registered.run_line_magic(
        "aml_register", "churn --run last --alias champion --tag stage=test"
    )
    assert "model churn version 3" in repr(summary) and "champion" in repr(summary)
    assert resolve_model("churn@champion").version == "3"
    assert mlflow.MlflowClient().get_model_version("churn", "3").tags == {"stage": "test"}
    first_run = mlflow.MlflowClient().get_model_version("churn", "1").run_id
    registered.run_line_magic("aml_register", f"pricing --run {first_run}")
    assert predict("pricing") == pytest.approx(1.0)
    registered.run_line_magic("aml_register", "pricing --uri models:/churn@champion")
    assert predict("pricing:2") == pytest.approx(5.0)


def test_references_resolve_to_uris(registered):
    assert resolve_model("models:/churn/1").version == "1"
    run_uri = f"runs:/{mlmagic.last_run().info.run_id}/model"
    assert resolve_model(run_uri).uri == run_uri and resolve_model(run_uri).name is None


def test_models_lists_models_and_versions(registered):
    table = registered.run_line_magic("aml_models", "")
    assert list(table["name"]) == ["churn"] and list(table["latest_version"]) == [2]
    versions = models("churn")
    assert list(versions["version"]) == [2, 1]


BAD_INPUT = [
    ("%aml_register churn --run 0123456789abcdef", "NotFound: no run with id"),
    ("%aml_register churn --path weights", "NotFound: the run"),
    ("%aml_register churn --uri models:/nope/1", "NotFound: no registered model named"),
    ("%aml_register churn --uri models:/churn/9", "NotFound: the model 'churn' has no version 9"),
    ("%aml_register churn --uri models:/churn@ghost", "NotFound: the model 'churn' has no alias"),
    ("%aml_models nope", "NotFound: no registered model named 'nope'"),
    ("%aml_register", "UsageError: the following arguments are required: name"),
]


def test_bad_references_are_one_line_and_register_nothing(registered, capsys):
    for line, expected in BAD_INPUT:
        capsys.readouterr()
        assert not registered.run_cell(line).success
        assert only_line(capsys).startswith(expected), line
    assert len(models("churn")) == 2


def test_track_register_without_a_logged_model_registers_nothing(registered, capsys):
    capsys.readouterr()
    result = registered.run_cell("%%track --register churn\nx = 1")
    assert "logged no model, so nothing was registered" in capsys.readouterr().out
    assert not result.success
    assert mlmagic.last_run().info.status == "FINISHED"
    assert len(models("churn")) == 2
