"""Fixtures: a real IPython shell, a clean working directory, a real `mlflow server`."""

from __future__ import annotations

import re
import sys

import pytest
from servers import TRACKING_ENV, MlflowServer

ENV_TO_CLEAR = (*TRACKING_ENV, "MLMAGIC_NOTEBOOK_PATH", "JPY_SESSION_NAME")

# A tracked cell that trains a small real model (price = 10 * rooms - age), logs it with an
# input example, and registers it as 'price'.
PRICE_CELL = (
    "%%track --name price-model --register price\n"
    "import mlflow\n"
    "import pandas as pd\n"
    "from sklearn.linear_model import LinearRegression\n"
    "X = pd.DataFrame({'rooms': [1.0, 2.0, 3.0, 4.0], 'age': [30.0, 20.0, 10.0, 5.0]})\n"
    "y = 10 * X['rooms'] - X['age']\n"
    "reg = LinearRegression().fit(X, y)\n"
    "mlflow.sklearn.log_model(reg, name='model', input_example=X.head(2),\n"
    "                         pip_requirements=['scikit-learn'])\n"
)

NO_SUCH_PACKAGE = "mlmagic-no-such-package"  # on no package index
# The same model needing a package no index has: it loads here, but no image can be built.
UNBUILDABLE_CELL = PRICE_CELL.replace("--register price", "--register price-unbuildable").replace(
    "pip_requirements=['scikit-learn']", f"pip_requirements=['scikit-learn', '{NO_SUCH_PACKAGE}']")


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    """Each test runs in an empty folder, with a home of its own and no tracking settings."""
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    for name in ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    yield work
    _reset_session()


def _reset_session() -> None:
    if "mlflow" not in sys.modules or "mlmagic.core.session" not in sys.modules:
        return  # nothing to reset (and no reason to import mlmagic, e.g. for the emulators)
    import mlflow

    from mlmagic.core.session import new_session

    leftover = mlflow.active_run()
    new_session().default_experiment = None  # and the next test's MlMagic has its default
    assert leftover is None, f"a test left the run {leftover.info.run_id} active"


@pytest.fixture
def shell():
    """The real InteractiveShell with mlmagic freshly loaded (settings at their defaults) and
    an empty namespace."""
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.reset(new_session=False)  # each test starts with an empty namespace
    ip.config.pop("MlMagic", None)  # %config in an earlier test is kept in the shell's config
    ip.run_line_magic("reload_ext", "mlmagic")
    ip.user_ns.pop("__vsc_ipynb_file__", None)
    return ip


@pytest.fixture
def client():
    """An MlflowClient for the store the session is connected to."""
    from mlflow import MlflowClient

    from mlmagic.core.session import current_session

    return lambda: MlflowClient(tracking_uri=current_session().connection.tracking_uri)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` on 127.0.0.1 and a free port, for the whole test session."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server")).start()
    yield server.url
    server.stop()


@pytest.fixture
def server(tmp_path_factory):
    """A real `mlflow server` of this test's own (its store empty), stopped after it."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server")).start()
    yield server
    server.stop()


def only_line(capsys) -> str:
    """The one line a failing magic printed (stdout and stderr together); fails otherwise."""
    captured = capsys.readouterr()
    lines = [line for line in (captured.out + captured.err).splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got: {lines}"
    assert "Traceback" not in lines[0]
    return lines[0]


@pytest.fixture(scope="session")
def azure_service(tmp_path_factory):
    """The Azure emulator on 127.0.0.1 for the whole session, its MLflow API forwarded to a
    real `mlflow server` of its own (the workspace's store), a Kubernetes cluster attached."""
    from support.azure import Workspace, start_workspace

    server = MlflowServer(tmp_path_factory.mktemp("workspace-store")).start()
    emulator = start_workspace(
        tmp_path_factory.mktemp("azure"), server,
        Workspace("6d1c3a52-0000-4b1e-9c1f-2f6f1a7e0001", "rg-notebooks", "ws-churn"),
    )
    emulator.computes.add("k8s-cluster")
    yield emulator
    emulator.stop()
    server.stop()


@pytest.fixture
def azure(azure_service, monkeypatch):
    """The emulator with the Azure SDKs pointed at it (public settings only, signing in as
    its managed identity) and its request log emptied; a test fails if anything it caused was
    not emulated."""
    for name, value in azure_service.environment().items():
        monkeypatch.setenv(name, value)
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET",
                 "AZURE_AUTHORITY_HOST"):
        monkeypatch.delenv(name, raising=False)
    azure_service.reset()
    yield azure_service
    assert not azure_service.not_emulated, f"not emulated: {azure_service.not_emulated}"


@pytest.fixture(scope="session")
def databricks_service(tmp_path_factory):
    """The Databricks workspace emulator on 127.0.0.1 for the whole session, its MLflow API
    forwarded to a real `mlflow server` of its own (the workspace's tracking store)."""
    from support.databricks import start_workspace

    server = MlflowServer(tmp_path_factory.mktemp("databricks-store")).start()
    emulator = start_workspace(tmp_path_factory.mktemp("databricks"), server)
    yield emulator
    emulator.stop()
    server.stop()


@pytest.fixture
def databricks(databricks_service, monkeypatch):
    """The Databricks emulator with a laptop's settings (MLflow's ``databricks`` tracking URI,
    DATABRICKS_HOST and a personal access token) and its request log emptied; a test fails if
    anything it caused was not emulated."""
    import mlflow
    from support.databricks.notebook import DATABRICKS_VARIABLES

    # MLflow keeps the tracking and registry URIs an earlier test of this worker set (mlmagic's
    # connects set them); without them it reads the environment below
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    for name in DATABRICKS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in databricks_service.environment().items():
        monkeypatch.setenv(name, value)
    databricks_service.reset()
    yield databricks_service
    assert not databricks_service.not_emulated, (
        f"not emulated: {databricks_service.not_emulated}")


WORKSPACE_FLAGS = (
    "--workspace ws-churn --subscription 6d1c3a52-0000-4b1e-9c1f-2f6f1a7e0001 "
    "--resource-group rg-notebooks"
)

WSID = (
    "wsid=/subscriptions/6d1c3a52-0000-4b1e-9c1f-2f6f1a7e0001/resourceGroups/rg-notebooks/"
    "providers/Microsoft.MachineLearningServices/workspaces/ws-churn"
)

HOUSES = "houses = pd.DataFrame({'rooms': [1.0, 3.0], 'age': [10.0, 20.0]})"


@pytest.fixture
def priced(shell, azure, capsys):
    """Connected to the emulated workspace, with the model 'price' registered there."""
    shell.run_line_magic("aml_connect", WORKSPACE_FLAGS + " -e pricing")
    assert shell.run_cell(PRICE_CELL).success
    shell.run_cell("import pandas as pd\n" + HOUSES)
    capsys.readouterr()
    yield shell
    from mlmagic.core.session import current_session

    for name in list(current_session().endpoints):
        shell.run_line_magic("aml_undeploy", name)


def error_after_progress(capsys) -> str:
    """The one error line a failed deploy printed, after its progress lines (which a
    notebook shows as one line, rewritten in place)."""
    captured = capsys.readouterr()
    lines = [line for line in re.split(r"[\r\n]+", captured.out + captured.err) if line.strip()]
    others = [line for line in lines if not line.startswith("mlmagic: ")]
    assert len(others) == 1, f"expected one error line, got: {others}"
    assert "Traceback" not in others[0]
    return others[0]


def register_raw_model(shell, azure, name: str = "price-raw") -> str:
    """Register, as a colleague could with azure-ai-ml, a model that is no MLflow model (a
    pickle, no MLmodel) from a run tracked in the shell; its version."""
    from mlflow import MlflowClient

    from mlmagic.core.session import current_session

    assert shell.run_cell(
        "%%track --name raw-weights\n"
        "import mlflow, pickle\n"
        "open('weights.pkl', 'wb').write(pickle.dumps({'rooms': 10.0, 'age': -1.0}))\n"
        "mlflow.log_artifact('weights.pkl', 'raw')\n").success
    run_id = current_session().last_tracked.run_id
    store = MlflowClient(tracking_uri=azure.mlflow_url)
    if not store.search_registered_models(f"name = '{name}'"):
        store.create_registered_model(name)
    return store.create_model_version(name, f"runs:/{run_id}/raw", run_id).version


def latest_price_version(azure) -> str:
    from mlflow import MlflowClient

    versions = MlflowClient(tracking_uri=azure.mlflow_url).search_model_versions("name='price'")
    return max(versions, key=lambda v: int(v.version)).version
