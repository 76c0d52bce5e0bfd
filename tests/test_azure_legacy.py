"""The legacy SDK v1 targets, ACI and AKS web services, through the real azureml-core against
the emulator: the source docs' options, asynchronous provisioning, keys, and scoring through
the entry script mlmagic writes (the emulator imports and runs it against the real model)."""

from __future__ import annotations

import logging
import subprocess
import sys

from conftest import (
    NO_SUCH_PACKAGE,
    UNBUILDABLE_CELL,
    WORKSPACE_FLAGS,
    WSID,
    error_after_progress,
    latest_price_version,
    only_line,
)

from mlmagic.core.session import current_session, new_session

SOURCE_DOCS_ACI = ("--cpu-cores 1 --memory-gb 1 --tag method=sklearn "
                   "--description 'Diabetes model' --location eastus2")


def deploy(shell, line: str):
    return shell.run_line_magic("aml_deploy", line)


def deploy_fails(shell, line: str) -> None:
    assert not shell.run_cell(f"%aml_deploy {line}").success


def test_aci_with_the_source_docs_options(priced, azure, capsys):
    version = latest_price_version(azure)
    card = repr(deploy(priced, f"price:{version} --target aci --name price-aci "
                       + SOURCE_DOCS_ACI))
    output = capsys.readouterr().err
    assert "ACI web services are deprecated" in output and "--target online" in output
    assert "endpoint price-aci: ready" in card and "/v1score/price-aci" in card
    assert f"endpoints/realtime/price-aci/detail?{WSID}" in card

    request = azure.legacy.requests[-1]
    assert request["computeType"] == "ACI"
    assert request["containerResourceRequirements"] == {"cpu": 1, "memoryInGB": 1}
    assert request["kvTags"] == {"method": "sklearn"}
    assert (request["description"], request["location"]) == ("Diabetes model", "eastus2")
    image = request["environmentImageRequest"]
    assert image["modelIds"] == [f"price:{version}"]
    pip = image["environment"]["python"]["condaDependencies"]["dependencies"][-1]["pip"]
    assert "azureml-defaults" in pip and any(p.startswith("scikit-learn") for p in pip)

    predictions = priced.run_line_magic("aml_predict", "price-aci houses")
    assert predictions.round(6).tolist() == [0.0, 10.0]  # 10 * rooms - age, by the entry script
    table = priced.run_line_magic("aml_endpoints", "").to_string()
    assert "price-aci" in table and "aci" in table and "healthy" in table

    priced.run_line_magic("aml_undeploy", "price-aci")
    assert "price-aci" not in azure.legacy.services


def test_aks_on_the_attached_cluster_with_a_key(priced, azure, capsys):
    version = latest_price_version(azure)
    card = repr(deploy(priced, f"price:{version} --target aks --compute k8s-cluster "
                       "--name price-aks --app-insights"))
    output = capsys.readouterr()
    assert "AKS web services are deprecated" in output.err and "--target kubernetes" in output.err
    request = azure.legacy.requests[-1]
    assert (request["computeType"], request["computeName"]) == ("AKS", "k8s-cluster")
    assert request["appInsightsEnabled"] is True
    key = azure.legacy.keys["price-aks"]
    assert key not in card + output.out + output.err  # the key signs requests, never shows
    assert priced.run_line_magic("aml_predict", "price-aks houses").round(6).tolist() == [0, 10]

    priced.run_line_magic("aml_register", "price --run last")
    newer = latest_price_version(azure)
    deploy(priced, f"price:{newer} --target aks --compute k8s-cluster --name price-aks")
    assert azure.legacy.requests[-1]["environmentImageRequest"]["modelIds"] == [f"price:{newer}"]
    assert f"price:{newer}" in priced.run_line_magic("aml_endpoints", "").to_string()


def test_a_web_service_from_another_session_is_listed_and_scored(priced, azure, capsys):
    version = latest_price_version(azure)
    deploy(priced, f"price:{version} --target aks --compute k8s-cluster --name price-old")
    new_session()  # as in a new notebook session
    priced.run_line_magic("aml_connect", WORKSPACE_FLAGS + " -e pricing")
    table = priced.run_line_magic("aml_endpoints", "")
    row = table[table["name"] == "price-old"].iloc[0]
    assert (row["target"], row["model"], row["state"]) == ("aks", f"price:{version}", "healthy")
    assert priced.run_line_magic("aml_predict", "price-old houses").round(6).tolist() == [0, 10]
    priced.run_line_magic("aml_undeploy", "price-old")
    assert "price-old" not in azure.legacy.services


def test_bad_options_are_one_line_before_any_call(priced, azure, capsys):
    version = latest_price_version(azure)
    azure.requests.clear()
    for options, expected in [
        ("--target aci --name Price_ACI", "not a valid web service name"),
        ("--target aks --name price-aks", "needs --compute NAME"),
        ("--target aks --compute k8s-cluster --location eastus2", "--location does not apply"),
        ("--target aci --compute k8s-cluster", "--compute does not apply to the aci target"),
    ]:
        deploy_fails(priced, f"price:{version} {options}")
        assert expected in only_line(capsys)
    deploy_fails(priced, "price:99 --target aci --name price-aci")
    assert "has no version 99" in only_line(capsys)
    assert not azure.paths("/modelmanagement")


def test_an_unknown_cluster_is_one_line_and_creates_nothing(priced, azure, capsys):
    version = latest_price_version(azure)
    deploy_fails(priced, f"price:{version} --target aks --compute no-such-cluster --name price-x")
    line = error_after_progress(capsys)
    assert "no-such-cluster is not an AKS cluster attached" in line
    assert not azure.legacy.services


def test_a_quota_error_is_one_line_and_creates_nothing(priced, azure, capsys):
    version = latest_price_version(azure)
    deploy_fails(priced, f"price:{version} --target aci --name price-big --cpu-cores 8")
    assert "Not enough quota: 8" in error_after_progress(capsys)
    assert not azure.legacy.services


def test_a_service_that_fails_to_start_is_deleted_and_said_so(priced, azure, capsys, caplog):
    # MLflow warns, loading the model here, that its package is not installed: not the point
    caplog.set_level(logging.ERROR, logger="mlflow.utils.requirements_utils")
    assert priced.run_cell(UNBUILDABLE_CELL).success  # its environment cannot be built
    capsys.readouterr()
    deploy_fails(priced, "price-unbuildable --target aci --name price-crash")
    line = error_after_progress(capsys)
    assert f"No matching distribution found for {NO_SUCH_PACKAGE}" in line
    assert "the service was deleted" in line
    assert "endpoints?wsid=" in line  # the studio link
    assert "price-crash" not in azure.legacy.services
    assert "price-crash" not in current_session().endpoints


def test_without_azureml_core_the_legacy_targets_name_the_extra(tmp_path):
    script = tmp_path / "no_v1.py"
    script.write_text(
        "import sys\n"
        "sys.modules['azureml.core'] = None  # as if azureml-core were not installed\n"
        "from mlmagic.azure.workspace import WorkspaceHandle, WorkspaceRef\n"
        "from mlmagic.azure import webservice\n"
        "from mlmagic.base.errors import MissingExtra\n"
        "handle = WorkspaceHandle(WorkspaceRef('sub', 'rg', 'ws'), credential=None)\n"
        "assert webservice.endpoints_in(handle) == []\n"
        "assert webservice.endpoint_in(handle, 'x') is None\n"
        "try:\n"
        "    handle.v1\n"
        "except MissingExtra as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ('the legacy ACI/AKS targets need azureml-core: '
                                     'pip install "mlmagic[azure-v1]"')
