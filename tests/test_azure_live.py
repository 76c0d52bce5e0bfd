"""The Azure scenario against a real workspace: `pytest -m azure`, with
MLMAGIC_LIVE_AZURE_CONFIG naming the workspace's config.json and Azure credentials in the
environment (az login, a managed identity, or AZURE_CLIENT_ID / AZURE_TENANT_ID /
AZURE_CLIENT_SECRET). Skipped otherwise; it has never run on the project's machines, which
have no Azure account and no internet."""

from __future__ import annotations

import os
import uuid

import pytest
from conftest import PRICE_CELL
from mlflow import MlflowClient

from mlmagic.core.session import current_session

CONFIG = os.environ.get("MLMAGIC_LIVE_AZURE_CONFIG")

pytestmark = [
    pytest.mark.azure,
    pytest.mark.skipif(not CONFIG, reason="set MLMAGIC_LIVE_AZURE_CONFIG to a workspace "
                       "config.json (and Azure credentials) to run against a real workspace"),
]


@pytest.fixture(autouse=True)
def real_environment(monkeypatch):
    """The workdir fixture gives each test a fresh HOME; az login's token cache lives in
    the real one."""
    monkeypatch.setenv("HOME", os.path.expanduser(f"~{os.environ.get('USER', '')}"))


def test_connect_track_and_register_in_a_real_workspace(shell, capsys):
    experiment = f"mlmagic-live-{uuid.uuid4().hex[:8]}"
    connection = shell.run_line_magic("aml_connect", f"--config {CONFIG} -e {experiment}")
    assert connection.backend.name == "azure ml"
    assert shell.run_cell(PRICE_CELL).success
    client = MlflowClient(tracking_uri=connection.tracking_uri)
    run = client.get_run(current_session().last_tracked.run_id)
    assert run.info.status == "FINISHED"
    assert "https://ml.azure.com/runs/" in capsys.readouterr().out
    assert client.search_model_versions("name='price'")
