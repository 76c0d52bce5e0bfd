"""The workspace's MLflow API and artifact service, through azureml-mlflow (MLflow's client on
the workspace's azureml:// tracking URI) and plain HTTPS: an artifact path is created once,
and MLflow 3's logged-models routes can answer 404 as Azure ML's service did."""

from __future__ import annotations

import pytest

from .calls import call, management_token


@pytest.fixture
def tracking(azure):
    """MLflow's client on the workspace, signing in with azureml-mlflow's default credential
    chain (the managed identity here). The workspace is MLflow's tracking URI meanwhile:
    azureml-mlflow's artifact repository finds its workspace there."""
    import mlflow
    from azureml.mlflow._common._cloud import cloud

    # azureml-mlflow reads the custom cloud (ARM_CLOUD_METADATA_URL) once, when imported,
    # maybe before the variable was set
    cloud.KNOWN_CLOUDS.update(cloud.get_known_clouds())
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(azure.tracking_uri())
    yield mlflow.MlflowClient()
    mlflow.set_tracking_uri(previous)


def new_run(tracking, experiment: str) -> str:
    found = tracking.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else tracking.create_experiment(experiment)
    return tracking.create_run(experiment_id).info.run_id


def test_an_artifact_path_is_created_once(azure, tracking, tmp_path):
    run = new_run(tracking, "emulator-artifacts")
    notes = tmp_path / "notes.txt"
    notes.write_text("first")
    tracking.log_artifact(run, str(notes))
    notes.write_text("second")
    with pytest.raises(Exception, match=f"UserError: Resource Conflict: ArtifactId "
                                         f"ExperimentRun/dcid.{run}/notes.txt already exists"):
        tracking.log_artifact(run, str(notes))
    tracking.log_artifact(run, str(notes), "again")
    assert {a.path for a in tracking.list_artifacts(run)} == {"notes.txt", "again"}
    assert (azure.blobs / "ExperimentRun" / f"dcid.{run}" / "notes.txt").read_text() == "first"

    batch = (f"/history/v1.0{azure.workspaces[0].arm_id}/experimentids/0/runs/{run}"
             "/artifacts/batch/metadata")
    answer = call(azure, "POST", batch, token=management_token(azure),
                  body={"paths": [{"path": "notes.txt"}, {"path": "new.txt"}]})
    assert answer.status == 200 and list(answer.body["artifacts"]) == ["new.txt"]
    assert "already exists" in answer.body["errors"]["notes.txt"]["error"]["message"]


def test_logged_models_can_answer_404_as_azure_ml_did(azure, tracking):
    from mlflow.exceptions import MlflowException

    experiment = tracking.get_experiment(tracking.get_run(
        new_run(tracking, "emulator-logged-models")).info.experiment_id).experiment_id
    assert tracking.create_logged_model(experiment).model_id.startswith("m-")

    azure.logged_models = False
    with pytest.raises(MlflowException, match="logged-models failed with error code 404"):
        tracking.create_logged_model(experiment)
    api = f"/mlflow/v2.0{azure.workspaces[0].arm_id}/api/2.0/mlflow"
    token = management_token(azure)
    for method, path in (("POST", "/logged-models"), ("GET", "/logged-models/m-1"),
                         ("POST", "/logged-models/search")):
        answer = call(azure, method, api + path, token=token,
                      body={} if method == "POST" else None)
        assert (answer.status, answer.body) == (404, b"")
    assert call(azure, "GET", api + "/experiments/search?max_results=1",
                token=token).status == 200


def test_an_experiment_name_is_letters_digits_underscores_and_dashes(azure, tracking):
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException, match="experiment name '/Users/someone/churn'"):
        tracking.create_experiment("/Users/someone/churn")
    assert tracking.get_experiment(tracking.create_experiment("someone_churn-2")).name == (
        "someone_churn-2")


def test_an_unreachable_workspace_drops_every_connection_unanswered(azure):
    import http.client

    azure.unreachable = True
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        call(azure, "GET", "/metadata/endpoints?api-version=2019-05-01")
    azure.unreachable = False
    assert call(azure, "GET", "/metadata/endpoints?api-version=2019-05-01").status == 200


def test_a_model_name_is_letters_digits_underscores_and_dashes(azure, tracking):
    """Azure ML's rule for model names (its REST API's pattern for workspaces/models:
    ``^[a-zA-Z0-9][a-zA-Z0-9\\-_]{0,254}$``): a Unity Catalog three-level name is refused."""
    import uuid

    from mlflow.exceptions import MlflowException

    suffix = uuid.uuid4().hex[:6]
    for refused in (f"main.default.churn_{suffix}", f"-churn{suffix}", f"churn model{suffix}"):
        with pytest.raises(MlflowException, match=f"model name '{refused}' is invalid"):
            tracking.create_registered_model(refused)
    assert tracking.search_registered_models(f"name = 'main.default.churn_{suffix}'") == []
    taken = f"main-default-churn_{suffix}"
    assert tracking.create_registered_model(taken).name == taken
