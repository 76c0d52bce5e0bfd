"""MLflow 3 on an Azure ML workspace whose MLflow service answers its logged-models routes
404, as Azure ML's did through 2026 (azure-sdk-for-python#44896, azureml-examples#3885):
what %%track, --register, %aml_register and %aml_deploy do there, in a real IPython shell."""

from __future__ import annotations

from conftest import PRICE_CELL, WORKSPACE_FLAGS, only_line
from mlflow import MlflowClient

from mlmagic.core.provenance import ARTIFACTS as PROVENANCE
from mlmagic.core.session import current_session

# MLflow 2's way of logging a model: saved here, uploaded as the run's artifacts.
SAVED_CELL = (
    "%%track --name saved-model --register price-saved\n"
    "import mlflow\n"
    "import pandas as pd\n"
    "from sklearn.linear_model import LinearRegression\n"
    "X = pd.DataFrame({'rooms': [1.0, 2.0, 3.0, 4.0], 'age': [30.0, 20.0, 10.0, 5.0]})\n"
    "reg = LinearRegression().fit(X, 10 * X['rooms'] - X['age'])\n"
    "mlflow.sklearn.save_model(reg, 'saved', input_example=X.head(2),\n"
    "                          pip_requirements=['scikit-learn'])\n"
    "mlflow.log_artifacts('saved', 'model')\n"
)


def connected_without_logged_models(shell, azure, capsys) -> MlflowClient:
    azure.logged_models = False
    shell.run_line_magic("aml_connect", WORKSPACE_FLAGS + " -e logged-models-off")
    shell.run_cell("import pandas as pd\n"
                   "houses = pd.DataFrame({'rooms': [1.0, 3.0], 'age': [10.0, 20.0]})")
    capsys.readouterr()
    return MlflowClient(tracking_uri=azure.mlflow_url)  # the workspace's store, read directly


def refused_logged_model_calls(azure) -> list[str]:
    return [r.path.split("/api/2.0/mlflow/")[1] for r in azure.requests
            if "/logged-models" in r.path and r.status == 404]


def test_log_model_fails_the_cell_with_mlflows_error_and_one_line_names_the_workaround(
        shell, azure, capsys):
    store = connected_without_logged_models(shell, azure, capsys)
    result = shell.run_cell(PRICE_CELL.replace("--register price", "--register price-lm"))
    assert "/api/2.0/mlflow/logged-models failed with error code 404" in str(
        result.error_in_exec)  # the user's own error: MLflow 3's log_model has no fallback
    shown = capsys.readouterr()
    assert "run price-model: FAILED" in shown.out and "MlflowException" in shown.out
    advice = [line for line in shown.err.splitlines() if "logged-models API" in line]
    assert len(advice) == 1 and "mlflow.log_artifacts(path, 'model')" in advice[0]
    run_id = current_session().last_tracked.run_id
    assert store.get_run(run_id).info.status == "FAILED"
    stored = azure.storage.stored("ExperimentRun", f"dcid.{run_id}")
    assert [path for path in stored if path not in PROVENANCE] == ["cell.py", "traceback.txt"]
    assert refused_logged_model_calls(azure) == ["logged-models"]
    assert not store.search_model_versions("name='price-lm'")
    assert not shell.run_cell("%aml_deploy price-lm --target online --endpoint price-lm").success
    assert "no registered model named 'price-lm'" in only_line(capsys)


def test_the_workaround_registers_deploys_and_shows_the_model_saved_as_run_artifacts(
        shell, azure, capsys):
    """The README's workaround: the model saved as the run's artifacts; --register finds it
    there, and it deploys and scores as a logged model would."""
    store = connected_without_logged_models(shell, azure, capsys)
    assert shell.run_cell(SAVED_CELL).success
    run_id = current_session().last_tracked.run_id
    assert store.get_run(run_id).info.status == "FINISHED"
    [version] = store.search_model_versions("name='price-saved'")
    assert version.run_id == run_id
    assert "model/MLmodel" in repr(shell.run_line_magic("aml_show", "last"))
    card = repr(shell.run_line_magic(
        "aml_deploy", "price-saved:1 --target online --endpoint price-saved"))
    assert "endpoint price-saved: ready" in card
    predictions = shell.run_line_magic("aml_predict", "price-saved houses")
    assert predictions.round(6).tolist() == [0.0, 10.0]  # 10 * rooms - age
    assert "price-saved version 2" in repr(
        shell.run_line_magic("aml_register", "price-saved --run last"))
    assert {v.run_id for v in store.search_model_versions("name='price-saved'")} == {run_id}
    assert refused_logged_model_calls(azure)  # the switch was on throughout
