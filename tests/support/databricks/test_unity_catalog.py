"""MLflow's ``databricks-uc`` registry (the default registry of the ``databricks`` tracking
URI) against the emulator's Unity Catalog: a model with a signature registers under a
three-level name, its files written through the Files API until the version is finalized;
a model without a signature, or a two-level name, is refused as Unity Catalog refuses it."""

from __future__ import annotations

import uuid

import pytest

from .calls import call
from .conftest import HOUSES, price_model


def logged(experiment, **options):
    import mlflow

    with mlflow.start_run(experiment_id=experiment):
        return mlflow.sklearn.log_model(price_model(), name="model",
                                        pip_requirements=["scikit-learn"], **options)


def test_a_model_with_a_signature_registers_in_main_default(databricks, experiment):
    import mlflow

    info = logged(experiment, input_example=HOUSES[:2])
    first = mlflow.register_model(info.model_uri, "main.default.price")
    client = mlflow.MlflowClient()
    assert client._registry_uri == "databricks-uc"
    version = client.get_model_version("main.default.price", first.version)
    assert (version.status, version.run_id) == ("READY", info.run_id)
    client.set_registered_model_alias("main.default.price", "champion", version.version)
    assert client.get_model_version_by_alias("main.default.price", "champion").version == (
        version.version)
    assert client.get_registered_model("main.default.price").aliases == {
        "champion": version.version}
    found = client.search_model_versions("name = 'main.default.price'")
    assert version.version in [v.version for v in found]
    loaded = mlflow.pyfunc.load_model("models:/main.default.price@champion")
    assert list(loaded.predict(HOUSES[:2])) == pytest.approx([-20.0, 0.0])

    stored = f"/Models/main/default/price/{version.version}"
    assert f"{stored}/MLmodel" in databricks.storage.stored(stored)
    late = call(databricks, "PUT", f"/api/2.0/fs/files{stored}/extra.txt?overwrite=true",
                token=databricks.token, body=b"x",
                headers={"Content-Type": "application/octet-stream"})
    assert (late.status, late.body["error_code"]) == (403, "PERMISSION_DENIED")


def test_a_model_without_a_signature_is_refused(databricks, experiment):
    import mlflow
    from mlflow.exceptions import MlflowException

    info = logged(experiment)  # no input example, no signature
    name = f"main.default.unsigned_{uuid.uuid4().hex[:6]}"
    with pytest.raises(MlflowException, match="did not contain any signature metadata"):
        mlflow.register_model(info.model_uri, name)
    assert mlflow.MlflowClient().search_model_versions(f"name = '{name}'") == []


@pytest.mark.parametrize("name", ["default.price", "price"])
def test_a_name_without_three_levels_is_refused(databricks, experiment, name):
    import mlflow
    from mlflow.exceptions import MlflowException

    info = logged(experiment, input_example=HOUSES[:2])
    with pytest.raises(MlflowException, match="specify all three levels") as refused:
        mlflow.register_model(info.model_uri, name)
    assert "Workspace Model Registry" in str(refused.value)  # MLflow's hint for this refusal


def test_a_catalog_or_schema_must_exist(databricks):
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    with pytest.raises(MlflowException, match="Catalog 'nowhere' does not exist"):
        client.create_registered_model("nowhere.default.price")
    with pytest.raises(MlflowException, match="Schema 'main.nowhere' does not exist"):
        client.create_registered_model("main.nowhere.price")


def test_a_version_is_finalized_only_with_its_files(databricks):
    name = f"main.default.empty_{uuid.uuid4().hex[:6]}"
    api = "/api/2.0/mlflow/unity-catalog"
    assert call(databricks, "POST", f"{api}/registered-models/create", token=databricks.token,
                body={"name": name}).status == 200
    created = call(databricks, "POST", f"{api}/model-versions/create", token=databricks.token,
                   body={"name": name, "source": "models:/m-none"}).body["model_version"]
    assert created["status"] == "PENDING_REGISTRATION"
    refused = call(databricks, "POST", f"{api}/model-versions/finalize", token=databricks.token,
                   body={"name": name, "version": created["version"]})
    assert refused.status == 400 and "no MLmodel" in refused.body["message"]


def test_without_the_sdk_a_version_s_files_go_through_presigned_urls(databricks, experiment):
    import mlflow

    databricks.unity.sdk_artifacts = False  # reset by the fixture
    info = logged(experiment, input_example=HOUSES[:2])
    name = f"main.default.presigned_{uuid.uuid4().hex[:6]}"
    version = mlflow.register_model(info.model_uri, name).version
    loaded = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    assert list(loaded.predict(HOUSES[:2])) == pytest.approx([-20.0, 0.0])
    paths = databricks.paths()
    assert "/api/2.0/mlflow/unity-catalog/model-versions/generate-temporary-credentials" in paths
    assert "/api/2.0/fs/create-upload-url" in paths
    assert not any(p.startswith("/api/2.0/fs/files/Models/") for p in paths)
