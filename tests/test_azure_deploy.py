"""Deploying to Azure ML online endpoints through the real azure-ai-ml, against the emulator:
managed and Kubernetes online endpoints, asynchronous provisioning, traffic, keys, and a
scoring route that runs the real MLflow model behind Azure ML's input_data protocol."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest
from conftest import (
    NO_SUCH_PACKAGE,
    PRICE_CELL,
    UNBUILDABLE_CELL,
    WORKSPACE_FLAGS,
    WSID,
    error_after_progress,
    latest_price_version,
    only_line,
    register_raw_model,
)

from mlmagic.core.session import new_session


def test_online_deploy_predict_update_and_undeploy(priced, azure, capsys):
    version = latest_price_version(azure)
    summary = priced.run_line_magic(
        "aml_deploy", f"price:{version} --target online --endpoint price-api")
    card = repr(summary)
    assert "endpoint price-api: ready" in card and "/score/price-api" in card
    assert f"endpoints/realtime/price-api/detail?{WSID}" in card
    assert azure.online.endpoints["price-api"]["properties"]["traffic"] == {"blue": 100}
    assert azure.online.keys["price-api"] not in card  # the key is never shown
    # the card's curl line, pasted into a shell with the key in $ENDPOINT_KEY, is answered
    [line] = [row for label, row in summary.rows if label == "try it"]
    assert "[...]" not in line and "$ENDPOINT_KEY" in line, line
    pasted = subprocess.run(line, shell=True, capture_output=True, text=True, timeout=60, env={
        **os.environ, "ENDPOINT_KEY": azure.online.keys["price-api"],
        "CURL_CA_BUNDLE": str(azure.certificate)})
    assert pasted.returncode == 0 and json.loads(pasted.stdout) == pytest.approx([-20.0]), pasted
    predictions = priced.run_line_magic("aml_predict", "price-api houses")
    assert predictions.round(6).tolist() == [0.0, 10.0]  # 10 * rooms - age
    polls = [r for r in azure.requests if "/mfeOperationsStatus/" in r.path]
    assert len(polls) >= 3  # endpoint, deployment and traffic, each polled until done

    priced.run_line_magic("aml_register", "price --run last")
    newer = latest_price_version(azure)
    priced.run_line_magic("aml_deploy", f"price:{newer} --target online --endpoint price-api")
    assert azure.online.endpoints["price-api"]["properties"]["traffic"] == {"green": 100}
    assert [d for (e, d) in azure.online.deployments if e == "price-api"] == ["green"]
    model = azure.online.deployments[("price-api", "green")]["properties"]["model"]
    assert model.endswith(f"/models/price/versions/{newer}")
    assert "succeeded (green 100%)" in priced.run_line_magic("aml_endpoints", "").to_string()

    priced.run_line_magic("aml_undeploy", "price-api")
    assert "price-api" not in azure.online.endpoints


def test_kubernetes_target_deploys_on_the_attached_cluster(priced, azure, capsys):
    version = latest_price_version(azure)
    priced.run_line_magic(
        "aml_deploy", f"price:{version} --target kubernetes --compute k8s-cluster "
        "--endpoint price-k8s")
    resource = azure.online.endpoints["price-k8s"]
    assert resource["properties"]["compute"].endswith("k8s-cluster")
    deployment = azure.online.deployments[("price-k8s", "blue")]
    assert deployment["properties"]["endpointComputeType"] == "Kubernetes"
    assert priced.run_line_magic("aml_predict", "price-k8s houses").round(6).tolist() == [
        0.0, 10.0]


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("price:99 --target online --endpoint price-api", "price"),
        ("price --target online --endpoint 9-bad_name", "not a valid endpoint name"),
        ("price --target kubernetes --endpoint price-k8s", "needs --compute"),
        ("price --target kubernetes --compute nowhere --endpoint price-k8s", "nowhere"),
        ("price --target online --compute k8s-cluster", "--compute does not apply"),
        ("price --target local --instance-count 2", "--instance-count does not apply"),
        ("price --target online --endpoint price-big --instance-count 50", "Not enough quota"),
        ("price --target online --endpoint price-odd --instance-type Standard_DS3_v9",
         "'Standard_DS3_v9' is not supported"),
    ],
)
def test_bad_azure_deploys_are_one_line_and_leave_nothing(priced, azure, capsys, flags,
                                                          expected):
    assert not priced.run_cell(f"%aml_deploy {flags}").success
    assert expected in error_after_progress(capsys)
    assert not azure.online.endpoints


def test_a_deployment_that_fails_to_provision_is_cleaned_up(priced, azure, capsys, caplog):
    # MLflow warns, loading the model here, that its package is not installed: not the point
    caplog.set_level(logging.ERROR, logger="mlflow.utils.requirements_utils")
    assert priced.run_cell(UNBUILDABLE_CELL).success
    capsys.readouterr()
    assert not priced.run_cell(
        "%aml_deploy price-unbuildable --target online --endpoint price-bad").success
    line = error_after_progress(capsys)
    assert f"No matching distribution found for {NO_SUCH_PACKAGE}" in line and "studio:" in line
    assert "price-bad" not in azure.online.endpoints  # nothing half-created left behind


def test_a_model_that_is_no_mlflow_model_is_refused_before_anything_is_made(priced, azure,
                                                                           capsys):
    version = register_raw_model(priced, azure)  # a pickle, no MLmodel
    capsys.readouterr()
    azure.requests.clear()
    assert not priced.run_cell(
        f"%aml_deploy price-raw:{version} --target online --endpoint price-raw").success
    assert f"price-raw version {version} is not an MLflow model" in only_line(capsys)
    assert not [r for r in azure.requests if r.method == "PUT"]


def test_online_target_needs_a_workspace(shell, capsys):
    shell.run_line_magic("aml_connect", "")
    shell.run_cell(PRICE_CELL)
    capsys.readouterr()
    assert not shell.run_cell("%aml_deploy price --target online").success
    assert "deploys to an Azure ML workspace" in only_line(capsys)


def test_the_workspace_endpoints_are_listed_used_and_deleted_from_any_session(
    priced, azure, capsys
):
    version = latest_price_version(azure)
    priced.run_line_magic("aml_deploy", f"price:{version} --target online --endpoint price-api")
    new_session()  # a new session: the endpoint exists only in the workspace
    priced.run_line_magic("aml_connect", WORKSPACE_FLAGS + " -e pricing")
    listed = priced.run_line_magic("aml_endpoints", "")
    row = listed.set_index("name").loc["price-api"]
    assert (row["target"], row["model"]) == ("online", f"price:{version}")
    assert row["state"] == "succeeded (blue 100%)"
    assert priced.run_line_magic("aml_predict", "price-api houses").round(6).tolist() == [
        0.0, 10.0]
    capsys.readouterr()
    assert not priced.run_cell("%aml_undeploy price-api --deployment blue").success
    assert "takes 100% of price-api's traffic" in only_line(capsys)
    priced.run_line_magic("aml_undeploy", "price-api")
    assert "price-api" not in azure.online.endpoints
    assert priced.run_line_magic("aml_endpoints", "").empty


def test_an_azure_endpoint_outlives_the_kernel_that_deployed_it(priced, azure, workdir):
    """Only local endpoints live and die with the kernel: an online endpoint is a workspace's
    resource, and a kernel that exits (or a new session) must not delete it."""
    version = latest_price_version(azure)
    script = workdir / "deploy_and_exit.py"
    script.write_text(
        "import mlmagic\n"
        "mlmagic.connect(workspace='ws-churn', subscription='6d1c3a52-0000-4b1e-9c1f-"
        "2f6f1a7e0001', resource_group='rg-notebooks', experiment='pricing')\n"
        f"mlmagic.deploy('price:{version}', target_name='online', name='price-kept')\n"
    )
    done = subprocess.run([sys.executable, str(script)], cwd=workdir, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "price-kept" in azure.online.endpoints
    assert not [r for r in azure.requests if r.method == "DELETE"]

    priced.run_line_magic("aml_deploy", f"price:{version} --target online --endpoint price-too")
    new_session()
    assert "price-too" in azure.online.endpoints
