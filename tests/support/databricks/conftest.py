"""Fixtures of the emulator's own tests. The emulator itself is the session's
(``databricks_service`` / ``databricks`` in tests/conftest.py)."""

from __future__ import annotations

import pandas as pd
import pytest
from kernels import Kernel

from .notebook import NotebookContext

HOUSES = pd.DataFrame({"rooms": [1.0, 2.0, 3.0, 4.0], "age": [30.0, 20.0, 10.0, 5.0]})


def price_model():
    """A fitted model of price = 10 * rooms - age."""
    from sklearn.linear_model import LinearRegression

    return LinearRegression().fit(HOUSES, 10 * HOUSES["rooms"] - HOUSES["age"])


@pytest.fixture
def experiment(databricks):
    """A fresh experiment in the user's workspace folder; its id."""
    import uuid

    import mlflow

    return mlflow.MlflowClient().create_experiment(
        f"/Users/{databricks.user}/emulator-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def notebook(databricks_service, tmp_path_factory):
    """A real Jupyter kernel started as a Databricks notebook of the emulated workspace (its
    context, dbutils, spark; no Databricks credentials in its environment): (context,
    kernel)."""
    root = tmp_path_factory.mktemp("notebook")
    context = NotebookContext(databricks_service, root / "context").prepare()
    work = root / "work"
    work.mkdir()
    kernel = Kernel(work, {**context.environment(), "HOME": str(root)}).start()
    yield context, kernel
    kernel.stop()
