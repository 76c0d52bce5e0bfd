"""From Azure Databricks to Azure ML (issue 15, items 4 and 5): a model version registered in
the Databricks workspace (Unity Catalog, or the workspace registry) copied into the linked Azure
ML workspace's registry by %aml_register NAME --to azureml, and by %aml_deploy to an Azure ML
target before it deploys; against both emulators at once, from a laptop's shell."""

from __future__ import annotations

import uuid

import pytest
from conftest import HOUSES, PRICE_CELL, WORKSPACE_FLAGS, WSID, error_after_progress, only_line

from mlmagic.core.copying import SOURCE_TAGS

FRAME = {"rooms": [1.0, 3.0], "age": [10.0, 20.0]}  # HOUSES: priced 0 and 10


def registry(uri: str, registry_uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=registry_uri)


def predictions(name: str, version: str, uri: str, registry_uri: str, folder) -> list[float]:
    """What version ``version`` of the registered model ``name`` predicts for HOUSES, its files
    downloaded from the registry at ``registry_uri``. (MLflow resolves ``models:/`` URIs in its
    current registry unless it is a Databricks one: for another, ask the registry where the
    files are.)"""
    import mlflow
    import pandas as pd

    where = (f"models:/{name}/{version}" if registry_uri.startswith("databricks")
             else registry(uri, registry_uri).get_model_version_download_uri(name, version))
    local = mlflow.artifacts.download_artifacts(where, dst_path=str(folder), tracking_uri=uri,
                                                registry_uri=registry_uri)
    return [round(float(p), 6) for p in mlflow.pyfunc.load_model(local).predict(
        pd.DataFrame(FRAME))]


def azure_versions(azure, name: str) -> list:
    """The versions of ``name`` in the Azure ML workspace's registry (its MLflow store)."""
    return registry(azure.mlflow_url, azure.mlflow_url).search_model_versions(f"name = '{name}'")


def unity_name() -> str:
    return f"main.default.churn_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def logged_model(databricks_service) -> str:
    """A model (price = 10 * rooms - age) trained and logged with a signature in the Databricks
    workspace, as a colleague's notebook would; each test registers it under a name of its
    own."""
    import mlflow
    from support.databricks.conftest import HOUSES as TRAINING
    from support.databricks.conftest import price_model

    with pytest.MonkeyPatch.context() as patch:
        for name, value in databricks_service.environment().items():
            patch.setenv(name, value)
        mlflow.set_tracking_uri("databricks")
        client = mlflow.MlflowClient("databricks")
        experiment = client.create_experiment(
            f"/Users/{databricks_service.user}/copies-{uuid.uuid4().hex[:8]}")
        with mlflow.start_run(experiment_id=experiment):
            info = mlflow.sklearn.log_model(price_model(), name="model",
                                            input_example=TRAINING[:2],
                                            pip_requirements=["scikit-learn"])
        mlflow.set_tracking_uri(None)
    return info.model_uri


@pytest.fixture
def churn(databricks, logged_model, capsys) -> str:
    """The logged model registered in Unity Catalog (Databricks' default registry) as version
    1 of a new name, with the alias champion; the name."""
    import mlflow

    name = unity_name()
    version = mlflow.register_model(logged_model, name).version
    registry("databricks", "databricks-uc").set_registered_model_alias(name, "champion",
                                                                        version)
    capsys.readouterr()
    return name


@pytest.fixture
def linked(shell, databricks, azure, capsys):
    """A laptop's shell tracking in the Databricks workspace, the Azure ML workspace linked."""
    folder = f"copy{uuid.uuid4().hex[:8]}"
    shell.run_line_magic("aml_connect", f"databricks -e /Users/{databricks.user}/{folder}/churn "
                                        f"{WORKSPACE_FLAGS} --track both")
    shell.run_cell("import pandas as pd\n" + HOUSES)
    capsys.readouterr()
    yield shell
    from mlmagic.core.session import current_session

    for name in list(current_session().endpoints):
        shell.run_line_magic("aml_undeploy", name)


def test_register_to_azureml_copies_a_unity_catalog_version_once(linked, databricks, azure,
                                                                  capsys, tmp_path):
    name = unity_name()
    assert linked.run_cell(PRICE_CELL.replace("--register price", f"--register {name}")).success
    capsys.readouterr()
    card = repr(linked.run_line_magic("aml_register", f"{name}:1 --to azureml"))
    copy = name.replace(".", "-")  # a name Azure ML takes
    assert f"model {copy} version 1 in Azure ML" in card
    assert f"copied {name} version 1 from Unity Catalog" in card
    assert f"model/{copy}:1/details?{WSID}" in card  # its page in the studio
    source = registry("databricks", "databricks-uc").get_model_version(name, "1")
    (version,) = azure_versions(azure, copy)
    tags = {key: version.tags.get(tag) for key, tag in SOURCE_TAGS.items()}
    assert tags == {"registry": "databricks-uc", "name": name, "version": "1",
                    "run_id": source.run_id, "workspace": databricks.url,
                    "page": f"{databricks.url}/explore/data/models/"
                            f"{name.replace('.', '/')}/version/1"}
    assert tags["page"] in card and source.run_id in card
    assert predictions(copy, "1", azure.tracking_uri(), azure.tracking_uri(),
                       tmp_path / "azure") == predictions(
        name, "1", "databricks", "databricks-uc", tmp_path / "databricks") == [0.0, 10.0]

    registry("databricks", "databricks-uc").set_registered_model_alias(name, "champion", "1")
    for again in (f"{name}@champion", name):  # by alias, and the latest version
        card = repr(linked.run_line_magic("aml_register", f"{again} --to azureml"))
        assert f"model {copy} version 1 in Azure ML" in card and "copied before" in card
    assert len(azure_versions(azure, copy)) == 1  # never a duplicate


def test_a_workspace_registry_version_keeps_its_name(linked, databricks, azure, monkeypatch,
                                                      capsys, tmp_path):
    import mlflow

    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "databricks")  # the workspace's own registry
    assert mlflow.get_registry_uri() == "databricks"
    name = f"price_{uuid.uuid4().hex[:8]}"
    assert linked.run_cell(PRICE_CELL.replace("--register price", f"--register {name}")).success
    capsys.readouterr()
    card = repr(linked.run_line_magic("aml_register", f"{name} --to azureml"))
    assert f"model {name} version 1 in Azure ML" in card
    assert f"copied {name} version 1 from the Databricks workspace" in card
    (version,) = azure_versions(azure, name)
    assert version.tags[SOURCE_TAGS["registry"]] == "databricks"
    assert predictions(name, "1", azure.tracking_uri(), azure.tracking_uri(), tmp_path) == [
        0.0, 10.0]


@pytest.mark.parametrize("line, expected", [
    ("{model}:9 --to azureml", "has no version 9"),
    ("{model}@nobody --to azureml", "has no alias 'nobody'"),
    ("main.default.nothing_here --to azureml", "no registered model named"),
    ("{model} --to elsewhere", "invalid choice: 'elsewhere'"),
    ("{model} --to azureml --run last", "takes a registered version"),
])
def test_a_bad_copy_is_one_line_and_copies_nothing(linked, churn, azure, capsys, line,
                                                    expected):
    assert not linked.run_cell("%aml_register " + line.format(model=churn)).success
    assert expected in only_line(capsys)
    assert azure_versions(azure, churn.replace(".", "-")) == []


def test_without_an_azure_ml_workspace_nothing_is_copied_or_deployed(shell, databricks, churn,
                                                                     azure, capsys):
    shell.run_line_magic("aml_connect", f"databricks -e /Users/{databricks.user}/unlinked")
    capsys.readouterr()
    assert not shell.run_cell(f"%aml_register {churn} --to azureml").success
    line = only_line(capsys)
    assert "--track both" in line and "--workspace" in line
    assert not shell.run_cell(f"%aml_deploy {churn}:1 --target online").success
    assert "deploys to an Azure ML workspace" in only_line(capsys)
    assert azure_versions(azure, churn.replace(".", "-")) == []


def test_deploy_copies_a_databricks_version_to_azure_ml_first(linked, churn, azure, capsys):
    copy = churn.replace(".", "-")
    card = repr(linked.run_line_magic(
        "aml_deploy", f"{churn}:1 --target online --endpoint churn-api"))
    said = [line for line in capsys.readouterr().err.splitlines() if "Azure ML as" in line]
    assert said == [f"mlmagic: copied {churn} version 1 from Unity Catalog to Azure ML as "
                    f"{copy} version 1"]
    assert "endpoint churn-api: ready" in card
    model = azure.online.deployments[("churn-api", "blue")]["properties"]["model"]
    assert model.endswith(f"/models/{copy}/versions/1")
    assert linked.run_line_magic("aml_predict", "churn-api houses").round(6).tolist() == [
        0.0, 10.0]

    # a legacy target: the copy made for the online endpoint is the one deployed
    linked.run_line_magic("aml_deploy", f"{churn}@champion --target aci --name churn-aci")
    said = [line for line in capsys.readouterr().err.splitlines() if "Azure ML as" in line]
    assert said == [f"mlmagic: {churn} version 1 from Unity Catalog is in Azure ML as {copy} "
                    "version 1 already (copied before)"]
    request = azure.legacy.requests[-1]
    assert request["environmentImageRequest"]["modelIds"] == [f"{copy}:1"]
    assert linked.run_line_magic("aml_predict", "churn-aci houses").round(6).tolist() == [
        0.0, 10.0]
    assert len(azure_versions(azure, copy)) == 1


def test_a_failing_copy_is_one_line_and_nothing_is_deployed(linked, churn, azure, capsys):
    azure.deny_mlflow = True  # the workspace's registry refuses this identity
    assert not linked.run_cell(f"%aml_deploy {churn}:1 --target online --endpoint churn-api"
                               ).success
    line = only_line(capsys)
    assert f"could not copy {churn} version 1" in line and "nothing was deployed" in line
    assert not azure.online.endpoints
    azure.deny_mlflow = False
    assert azure_versions(azure, churn.replace(".", "-")) == []


def test_a_bad_endpoint_name_is_refused_before_the_copy(linked, churn, azure, capsys):
    assert not linked.run_cell(f"%aml_deploy {churn} --target online --endpoint 9-bad_name"
                               ).success
    assert "not a valid endpoint name" in error_after_progress(capsys)
    assert azure_versions(azure, churn.replace(".", "-")) == []
    assert not azure.online.endpoints
