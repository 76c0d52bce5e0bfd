"""MLflow 3 on an Azure ML workspace whose MLflow service answers its logged-models routes
404, as Azure ML's did through 2026 (azure-sdk-for-python#44896, azureml-examples#3885):
what %%track, --register, %aml_register and %aml_deploy do there, in a real IPython shell."""

from __future__ import annotations

from conftest import PRICE_CELL, WORKSPACE_FLAGS, only_line
from mlflow import MlflowClient

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


def test_log_model_fails_the_cell_with_mlflows_error_and_nothing_is_registered(shell, azure,
                                                                              capsys):
    store = connected_without_logged_models(shell, azure, capsys)
    result = shell.run_cell(PRICE_CELL.replace("--register price", "--register price-lm"))
    assert "/api/2.0/mlflow/logged-models failed with error code 404" in str(
        result.error_in_exec)  # MLflow 3's log_model has no fallback
    out = capsys.readouterr().out
    assert "run price-model: FAILED" in out and "MlflowException" in out and "Traceback" in out
    run_id = current_session().last_tracked.run_id
    assert store.get_run(run_id).info.status == "FAILED"
    assert azure.storage.stored("ExperimentRun", f"dcid.{run_id}") == ["cell.py",
                                                                       "traceback.txt"]
    assert refused_logged_model_calls(azure) == ["logged-models"]
    assert not store.search_model_versions("name='price-lm'")
    assert not shell.run_cell("%aml_deploy price-lm --target online --endpoint price-lm").success
    assert "no registered model named 'price-lm'" in only_line(capsys)


def test_a_model_saved_as_run_artifacts_cannot_be_registered_either(shell, azure, capsys):
    """MLflow 2's way runs, but registering it fails in one line: MLflow 3.15's own
    list_artifacts (and register_model) look the run's logged models up too, and that 404 is
    taken for 'no model there'. (Before: a traceback from search_logged_models.)"""
    store = connected_without_logged_models(shell, azure, capsys)
    assert not shell.run_cell(SAVED_CELL).success  # --register takes logged models only
    assert "logged no model, so nothing was registered" in capsys.readouterr().out
    run_id = current_session().last_tracked.run_id
    assert store.get_run(run_id).info.status == "FINISHED"
    assert "model/MLmodel" in azure.storage.stored("ExperimentRun", f"dcid.{run_id}")

    assert not shell.run_cell("%aml_register price-saved --run last").success
    assert f"NotFound: the run {run_id} has no model at 'model'" in only_line(capsys)
    assert not store.search_model_versions("name='price-saved'")
    assert set(refused_logged_model_calls(azure)) == {"logged-models/search"}
