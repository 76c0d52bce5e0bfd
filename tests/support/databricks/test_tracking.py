"""MLflow's ``databricks`` tracking store against the emulator with a laptop's settings
(DATABRICKS_HOST and a personal access token): runs, artifacts through the Files API or through
signed URLs, MLflow 3 logged models, search, the workspace registry, and the emulator's own
strictness (experiment names, signed URLs, routes it does not emulate)."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest

from .calls import call
from .conftest import HOUSES, price_model


def test_a_run_logs_params_metrics_and_artifacts(databricks, experiment, tmp_path):
    import mlflow

    notes = tmp_path / "notes.txt"
    notes.write_text("rooms matter")
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_params({"rooms": 3, "alpha": 0.5})
        mlflow.log_metric("rmse", 1.25)
        mlflow.log_artifact(str(notes), "docs")
    run_id = run.info.run_id
    assert run.info.artifact_uri == (
        f"dbfs:/databricks/mlflow-tracking/{experiment}/{run_id}/artifacts")

    found = mlflow.search_runs([experiment], "params.rooms = '3'", output_format="list")
    assert [r.info.run_id for r in found] == [run_id]
    assert found[0].data.metrics == {"rmse": 1.25}
    assert found[0].info.user_id == databricks.user
    client = mlflow.MlflowClient()
    assert [a.path for a in client.list_artifacts(run_id, "docs")] == ["docs/notes.txt"]
    local = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/docs/notes.txt",
                                                dst_path=str(tmp_path / "back"))
    assert Path(local).read_text() == "rooms matter"
    stored = f"/WorkspaceInternal/Mlflow/Artifacts/{experiment}/Runs/{run_id}/artifacts"
    assert f"/api/2.0/fs/files{stored}/docs/notes.txt" in databricks.paths()
    assert databricks.storage.stored(stored) == [f"{stored}/docs/notes.txt"]


def test_without_the_sdk_artifacts_go_through_signed_urls(databricks, experiment, tmp_path,
                                                          monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_DISABLE_DATABRICKS_SDK_FOR_RUN_ARTIFACTS", "true")
    notes = tmp_path / "notes.txt"
    notes.write_text("through a SAS URL")
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_artifact(str(notes))
    run_id = run.info.run_id
    assert [a.path for a in mlflow.MlflowClient().list_artifacts(run_id)] == ["notes.txt"]
    local = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/notes.txt",
                                                dst_path=str(tmp_path / "back"))
    assert Path(local).read_text() == "through a SAS URL"

    paths = databricks.paths()
    assert "/api/2.0/mlflow/artifacts/credentials-for-write" in paths
    assert "/api/2.0/mlflow/artifacts/credentials-for-read" in paths
    assert not any(p.startswith("/api/2.0/fs/") for p in paths)
    blob = f"/dbstorage/WorkspaceInternal/Mlflow/Artifacts/{experiment}/Runs/{run_id}"
    puts = [r for r in databricks.requests if r.method == "PUT" and r.path.startswith(blob)]
    assert {r.query.get("comp") for r in puts} == {"block", "blocklist"}  # Azure's Put Block
    assert all(r.token is None for r in puts)  # a signed URL carries no workspace token


def test_a_logged_model_is_kept_under_its_id_and_loads(databricks, experiment):
    import mlflow

    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(price_model(), name="model", input_example=HOUSES[:2],
                                        pip_requirements=["scikit-learn"])
    assert info.artifact_path == (
        f"dbfs:/databricks/mlflow-tracking/{experiment}/logged_models/{info.model_id}/artifacts")
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    assert list(loaded.predict(HOUSES[:2])) == pytest.approx([-20.0, 0.0])
    stored = f"/WorkspaceInternal/Mlflow/Artifacts/{experiment}/LoggedModels/{info.model_id}"
    assert f"{stored}/artifacts/MLmodel" in databricks.storage.stored(stored)
    assert mlflow.search_logged_models([experiment], output_format="list")[0].model_id == (
        info.model_id)


def test_the_workspace_registry_is_the_tracking_server_s(databricks, experiment):
    import mlflow

    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(price_model(), name="model", input_example=HOUSES[:2],
                                        pip_requirements=["scikit-learn"])
    registry = mlflow.MlflowClient(registry_uri="databricks")
    name = f"price-workspace-{experiment}"
    registry.create_registered_model(name)
    version = registry.create_model_version(name, info.model_uri, info.run_id)
    assert (version.version, version.status) == ("1", "READY")
    assert registry.get_registered_model(name).name == name
    assert "/api/2.0/mlflow/model-versions/create" in databricks.paths()


def test_a_workspace_registry_version_s_files_are_listed_and_signed_for_download(
        databricks, experiment, tmp_path):
    """What MLflow's DatabricksModelsArtifactRepository asks for a ``models:/NAME/VERSION`` of
    the workspace registry: the version's files (a logged model's, or a model among a run's
    artifacts), and a signed URL to read each."""
    import mlflow

    with mlflow.start_run(experiment_id=experiment) as run:
        info = mlflow.sklearn.log_model(price_model(), name="model", input_example=HOUSES[:2],
                                        pip_requirements=["scikit-learn"])
        mlflow.sklearn.save_model(price_model(), tmp_path / "saved")
        mlflow.log_artifacts(str(tmp_path / "saved"), "saved")
    registry = mlflow.MlflowClient(registry_uri="databricks")
    name = f"price-files-{experiment}"
    registry.create_registered_model(name)
    registry.create_model_version(name, info.model_uri, run.info.run_id)
    registry.create_model_version(name, f"{run.info.artifact_uri}/saved", run.info.run_id)
    for version in ("1", "2"):
        local = mlflow.artifacts.download_artifacts(
            f"models:/{name}/{version}", dst_path=str(tmp_path / version),
            tracking_uri="databricks", registry_uri="databricks")
        loaded = mlflow.pyfunc.load_model(local)
        assert list(loaded.predict(HOUSES[:2])) == pytest.approx([-20.0, 0.0])
    assert "/api/2.0/mlflow/model-versions/list-artifacts" in databricks.paths()
    assert "/api/2.0/mlflow/model-versions/get-signed-download-uri" in databricks.paths()
    unknown = call(databricks, "GET", "/api/2.0/mlflow/model-versions/list-artifacts?"
                   + urllib.parse.urlencode({"name": name, "version": "9", "path": ""}),
                   token=databricks.token)
    assert (unknown.status, unknown.body["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")


def test_an_experiment_name_must_be_a_workspace_path(databricks):
    import mlflow
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException, match="must be an absolute path within the Databricks "
                                              "workspace") as refused:
        mlflow.MlflowClient().create_experiment("churn")
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"


def test_a_profile_in_databrickscfg_is_a_laptop_s_other_way(databricks, monkeypatch, tmp_path):
    import mlflow

    for name in ("DATABRICKS_HOST", "DATABRICKS_TOKEN"):
        monkeypatch.delenv(name)
    databricks.write_profile(tmp_path / "home" / ".databrickscfg", "emulated")
    client = mlflow.MlflowClient(tracking_uri="databricks://emulated")
    assert client.search_experiments(max_results=1) is not None
    assert databricks.requests[-1].token.startswith(databricks.user)


def test_a_signed_url_reads_or_writes_only_its_own_blob_until_it_expires(databricks,
                                                                          experiment):
    import mlflow

    run = mlflow.MlflowClient().create_run(experiment).info.run_id
    asked = {"run_id": run, "path": ["a.txt"]}
    write = call(databricks, "POST", "/api/2.0/mlflow/artifacts/credentials-for-write",
                 token=databricks.token, body=asked).body["credential_infos"][0]
    assert (write["type"], write["path"]) == ("AZURE_SAS_URI", "a.txt")
    blob = {"x-ms-blob-type": "BlockBlob", "Content-Type": "application/octet-stream"}
    assert call(databricks, "PUT", write["signed_uri"], body=b"1", headers=blob).status == 201
    read = call(databricks, "POST", "/api/2.0/mlflow/artifacts/credentials-for-read",
                token=databricks.token, body=asked).body["credential_infos"][0]["signed_uri"]
    assert call(databricks, "GET", read).body == 1

    refused = call(databricks, "PUT", read, body=b"2", headers=blob)
    assert refused.status == 403 and b"AuthorizationPermissionMismatch" in refused.body
    other = write["signed_uri"].replace("/a.txt?", "/b.txt?")
    assert b"Signature did not match" in call(databricks, "PUT", other, body=b"2",
                                              headers=blob).body
    databricks.storage.sas_lifetime = -1
    stale = call(databricks, "POST", "/api/2.0/mlflow/artifacts/credentials-for-read",
                 token=databricks.token, body=asked).body["credential_infos"][0]["signed_uri"]
    expired = call(databricks, "GET", stale)
    assert expired.status == 403
    assert b"Signature not valid in the specified time frame" in expired.body
    unknown = call(databricks, "POST", "/api/2.0/mlflow/artifacts/credentials-for-read",
                   token=databricks.token, body={"run_id": "no-such-run", "path": ["a"]})
    assert (unknown.status, unknown.body["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")


def test_a_route_it_does_not_emulate_is_recorded(databricks):
    answer = call(databricks, "GET", "/api/2.0/clusters/list", token=databricks.token)
    assert (answer.status, answer.body["error_code"]) == (404, "NotEmulated")
    assert [(r.method, r.path) for r in databricks.not_emulated] == [
        ("GET", "/api/2.0/clusters/list")]
    databricks.not_emulated.clear()  # this test caused it on purpose


def test_host_metadata_and_the_current_user(databricks):
    from databricks.sdk import WorkspaceClient

    workspace = WorkspaceClient()
    assert workspace.current_user.me().user_name == databricks.user
    assert workspace.config.workspace_id == databricks.workspace_id
    assert "/.well-known/databricks-config" in databricks.paths()
    assert urllib.parse.urlparse(workspace.config.host).hostname == "127.0.0.1"


def test_a_logged_model_s_files_have_signed_urls_too(databricks, experiment):
    import mlflow

    model = mlflow.MlflowClient().create_logged_model(experiment).model_id
    api = f"/api/2.0/mlflow/logged-models/{model}/artifacts"
    upload = call(databricks, "POST", f"{api}/credentials-for-upload", token=databricks.token,
                  body={"paths": ["MLmodel"]}).body["credentials"][0]
    assert (upload["path"], upload["credential_info"]["type"]) == ("MLmodel", "AZURE_SAS_URI")
    assert call(databricks, "PUT", upload["credential_info"]["signed_uri"], body=b"flavors: {}",
                headers={"x-ms-blob-type": "BlockBlob"}).status == 201
    listed = call(databricks, "GET", f"{api}/directories", token=databricks.token).body
    assert listed == {"files": [{"path": "MLmodel", "is_dir": False, "file_size": 11}]}
    download = call(databricks, "POST", f"{api}/credentials-for-download",
                    token=databricks.token, body={"paths": ["MLmodel"]}).body
    url = download["credentials"][0]["credential_info"]["signed_uri"]
    assert call(databricks, "GET", url).body == b"flavors: {}"
