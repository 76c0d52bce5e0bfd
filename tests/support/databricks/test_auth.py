"""The workspace's token check on every route but the open ones, through plain HTTP and
through MLflow: no token is 401, a wrong or expired one 403 ``Invalid access token.``, as
Azure Databricks answers."""

from __future__ import annotations

import pytest

from .calls import call

ROUTES = [
    ("GET", "/api/2.0/mlflow/experiments/search?max_results=1"),
    ("GET", "/api/2.0/preview/mlflow/experiments/search?max_results=1"),
    ("GET", "/api/2.0/preview/scim/v2/Me"),
    ("GET", "/api/2.0/fs/directories/Models/main/default"),
    ("GET", "/api/2.0/mlflow/unity-catalog/registered-models/search"),
    ("GET", "/api/2.0/clusters/list"),  # even a route it does not emulate
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_needs_a_live_token(databricks, method, path):
    missing = call(databricks, method, path)
    assert missing.status == 401
    wrong = call(databricks, method, path, token="dapi0000")
    assert (wrong.status, wrong.body) == (403, {"error_code": 403,
                                                "message": "Invalid access token."})
    assert wrong.headers["X-Databricks-Reason-Phrase"] == "Invalid access token."
    expiring = databricks.issue_token()
    assert call(databricks, method, path, token=expiring).status in (200, 404)
    databricks.expire(expiring)
    assert call(databricks, method, path, token=expiring).status == 403
    databricks.not_emulated.clear()
    logged = databricks.requests[-1]
    assert logged.token == f"{databricks.user} …{expiring[-4:]}" and expiring not in str(logged)


def test_the_open_routes_need_none(databricks):
    metadata = call(databricks, "GET", "/.well-known/databricks-config")
    assert metadata.status == 200
    assert metadata.body["workspace_id"] == databricks.workspace_id


def test_mlflow_with_a_wrong_token_raises_invalid_access_token(databricks, monkeypatch):
    import mlflow
    from mlflow.exceptions import MlflowException

    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi0000000000000000")
    with pytest.raises(MlflowException, match="403: Invalid access token") as refused:
        mlflow.MlflowClient().search_experiments(max_results=1)
    assert refused.value.error_code == "PERMISSION_DENIED"
    assert "dapi0000000000000000" not in str(refused.value)  # the SDK masks it


def test_a_token_that_expires_mid_run_is_refused(databricks, experiment, monkeypatch):
    import mlflow
    from mlflow.exceptions import MlflowException

    token = databricks.issue_token()
    monkeypatch.setenv("DATABRICKS_TOKEN", token)
    client = mlflow.MlflowClient()
    run = client.create_run(experiment).info.run_id
    client.log_param(run, "rooms", 3)
    databricks.expire(token)
    with pytest.raises(MlflowException, match="Invalid access token"):
        client.log_metric(run, "rmse", 1.0)
    monkeypatch.setenv("DATABRICKS_TOKEN", databricks.token)
    client.set_terminated(run, "FAILED")
    assert client.get_run(run).data.metrics == {}
