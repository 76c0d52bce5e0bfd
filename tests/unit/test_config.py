"""Where the tracking target comes from when connect() is given none: base/config's order."""

from __future__ import annotations

import json

from mlmagic.base.config import EMBEDDED, resolve_settings

RUNTIME = {"DATABRICKS_RUNTIME_VERSION": "15.4"}


def test_nothing_configured_is_the_embedded_store(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    settings = resolve_settings(tmp_path, environ={})
    assert (settings.tracking_uri, settings.origin) == (None, EMBEDDED)


def test_in_a_databricks_runtime_nothing_configured_is_the_workspaces_mlflow(tmp_path,
                                                                            monkeypatch):
    # never a SQLite file on the driver's disk, which is lost when the cluster stops
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    settings = resolve_settings(tmp_path, environ=RUNTIME)
    assert (settings.tracking_uri, settings.origin) == ("databricks", "the Databricks runtime")


def test_what_the_user_configured_wins_over_the_runtime(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    given = resolve_settings(tmp_path, environ={**RUNTIME, "MLFLOW_TRACKING_URI": "azureml://x"})
    assert given.tracking_uri == "azureml://x"
    (tmp_path / "pyproject.toml").write_text('[tool.mlmagic]\ntracking_uri = "http://h:5000"\n')
    assert resolve_settings(tmp_path, environ=RUNTIME).tracking_uri == "http://h:5000"
    (tmp_path / "pyproject.toml").unlink()
    # the init script's config.json (a linked Azure ML workspace) wins too
    (tmp_path / ".azureml").mkdir()
    (tmp_path / ".azureml" / "config.json").write_text(json.dumps(
        {"subscription_id": "s", "resource_group": "g", "workspace_name": "w"}))
    linked = resolve_settings(tmp_path, environ=RUNTIME)
    assert linked.tracking_uri is None and linked.workspace["workspace_name"] == "w"


def test_the_databricks_runtime_version_is_read_as_major_and_minor():
    from mlmagic.base.config import databricks_runtime

    assert databricks_runtime({}) is None
    assert databricks_runtime(RUNTIME) == (15, 4)
    assert databricks_runtime({"DATABRICKS_RUNTIME_VERSION": "12.2"}) == (12, 2)
    assert databricks_runtime({"DATABRICKS_RUNTIME_VERSION": "13"}) == (13, 0)
    # serverless gives 'client.N.M': a runtime, of no number to compare
    assert databricks_runtime({"DATABRICKS_RUNTIME_VERSION": "client.1.13"}) is None
