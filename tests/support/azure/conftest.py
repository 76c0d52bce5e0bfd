"""Fixtures of the emulator's own tests. The emulator itself is the session's (``azure`` in
tests/conftest.py): the SDKs keep a custom cloud's endpoints once read, so one emulator
serves a test process."""

from __future__ import annotations

import pickle

import pytest

PRICE, RAW, UNBUILDABLE = "emulated-price", "emulated-raw", "emulated-unbuildable"
NO_SUCH_PACKAGE = "mlmagic-no-such-package"  # on no package index


@pytest.fixture(scope="session")
def registered(azure_service) -> dict[str, str]:
    """Three models in the workspace's registry, by name: an MLflow model (price = 10 * rooms -
    age), the same needing a package that does not exist, and a model that is only a pickle,
    no MLmodel. Their files are put in the blob store where a run's artifacts are; the
    versions are made in the workspace's MLflow store."""
    import mlflow
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    client = mlflow.MlflowClient(tracking_uri=azure_service.mlflow_url)
    experiment = client.create_experiment("emulator-models")
    run = client.create_run(experiment).info.run_id
    folder = azure_service.blobs / "ExperimentRun" / f"dcid.{run}"
    houses = pd.DataFrame({"rooms": [1.0, 2.0, 3.0], "age": [30.0, 20.0, 5.0]})
    fitted = LinearRegression().fit(houses, 10 * houses["rooms"] - houses["age"])
    mlflow.sklearn.save_model(fitted, folder / "model")
    mlflow.sklearn.save_model(fitted, folder / "unbuildable",
                              pip_requirements=["scikit-learn", NO_SUCH_PACKAGE])
    (folder / "raw").mkdir()
    (folder / "raw" / "weights.pkl").write_bytes(pickle.dumps(fitted))
    versions = {}
    for name, path in ((PRICE, "model"), (RAW, "raw"), (UNBUILDABLE, "unbuildable")):
        client.create_registered_model(name)
        versions[name] = client.create_model_version(name, f"runs:/{run}/{path}", run).version
    return versions


@pytest.fixture
def quick(azure, monkeypatch):
    """The emulator, its endpoints and web services provisioned in a tenth of a second."""
    monkeypatch.setattr(azure.online, "provisioning_seconds", 0.1)
    monkeypatch.setattr(azure.legacy, "provisioning_seconds", 0.1)
    return azure
