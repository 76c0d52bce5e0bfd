"""The written contracts: every tracking backend and deploy target keeps its own, and the
registry builds the options the magic and the panel offer from the targets' ``Options``."""

from __future__ import annotations

import dataclasses

import pytest

from mlmagic.backends import TrackingBackend, backends
from mlmagic.base.errors import InvalidInput
from mlmagic.deploy import (
    DeployTarget,
    checked_options,
    option_specs,
    option_value,
    targets,
)


def test_every_backend_keeps_the_contract_and_one_takes_any_uri():
    found = backends()
    assert [module.NAME for module in found] == ["azureml", "databricks", "server", "local"]
    assert all(isinstance(module, TrackingBackend) for module in found)
    assert [module.CATCH_ALL for module in found] == [False, False, False, True]
    for uri in ("azureml://eastus.api.azureml.ms/mlflow/v1.0/x", "databricks", "databricks-uc",
                "https://mlflow.example", "sqlite:///m.db", "./mlruns"):
        takers = [module.NAME for module in found if module.handles(uri)]
        assert takers[0] != "local" or takers == ["local"], (uri, takers)


def test_every_target_keeps_the_contract():
    found = targets()
    assert list(found) == ["local", "kubernetes", "online", "aci", "aks"]
    for name, module in found.items():
        assert isinstance(module, DeployTarget), name
        assert name == module.NAME and module.SUMMARY and module.DEFAULT_TIMEOUT > 0
        assert dataclasses.is_dataclass(module.Options)
        assert all(item.metadata.get("help") for item in dataclasses.fields(module.Options))


def test_the_azure_ml_targets_deploy_from_the_workspace_s_registry_and_check_first():
    from mlmagic.backends import Backend
    from mlmagic.core.session import Connection

    found = targets()
    assert [n for n, m in found.items() if getattr(m, "REGISTRY", None) == "azureml"] == [
        "kubernetes", "online", "aci", "aks"]
    local = Connection(Backend("local", "sqlite:///m.db"), "e", "1", "test")
    workspace = Connection(Backend("azure ml", "azureml://x", workspace=object()), "e", "1", "t")
    linked = Connection(local.backend, "e", "1", "test", mirror=workspace)
    assert (local.azureml, workspace.azureml, linked.azureml) == (None, workspace, workspace)
    for name in ("kubernetes", "online", "aci", "aks"):
        with pytest.raises(InvalidInput, match=f"the {name} target deploys to an Azure ML"):
            found[name].check("churn-api", local)
        with pytest.raises(InvalidInput, match="not a valid"):
            found[name].check("9-bad_name", workspace)
        found[name].check("churn-api", workspace)
    assert not hasattr(found["local"], "check")


def test_each_option_is_offered_once_naming_the_targets_that_take_it():
    specs = {spec.name: spec for spec in option_specs()}
    assert specs["port"].targets == ("local",) and specs["port"].kind is int
    assert specs["compute"].targets == ("kubernetes", "aks")
    assert specs["instance_count"].targets == ("kubernetes", "online")
    assert (specs["tags"].kind, specs["tags"].flag, specs["tags"].short) == (dict, "--tag", "-t")
    assert (specs["enable_app_insights"].kind, specs["enable_app_insights"].flag) == (
        bool, "--app-insights")


@pytest.mark.parametrize(("target", "given", "says"), [
    ("local", {"compute": "c"}, "compute does not apply to the local target"),
    ("kubernetes", {}, "the kubernetes target needs compute NAME"),
    ("aks", {"cpu_cores": 1}, "the aks target needs compute NAME"),
    ("local", {"port": 70000}, "port"),
    ("online", {"instance_count": 0}, "instance count must be at least 1"),
    ("aci", {"memory_gb": -1.0}, "memory gb"),
    ("nowhere", {}, "unknown deploy target 'nowhere'"),
])
def test_options_a_target_does_not_take_or_needs_are_one_line(target, given, says):
    with pytest.raises(InvalidInput, match=says):
        checked_options(target, given)


def test_checked_options_are_the_targets_dataclass_without_the_blanks():
    options = checked_options("local", {"port": 8123, "compute": None})
    assert options == targets()["local"].Options(port=8123)


@pytest.mark.parametrize(("name", "text", "value"), [
    ("port", " 8080 ", 8080), ("cpu_cores", "0.5", 0.5), ("enable_app_insights", "Yes", True),
    ("tags", "team=ml, stage = dev", {"team": "ml", "stage": "dev"}),
    ("compute", "k8s-cluster", "k8s-cluster"),
])
def test_typed_option_values(name, text, value):
    spec = next(spec for spec in option_specs() if spec.name == name)
    assert option_value(spec, text) == value


@pytest.mark.parametrize(("name", "text"), [
    ("port", "eighty"), ("cpu_cores", "1,5"), ("enable_app_insights", "maybe"),
    ("tags", "team"), ("tags", "=ml"),
])
def test_option_values_of_the_wrong_kind_are_one_line(name, text):
    spec = next(spec for spec in option_specs() if spec.name == name)
    with pytest.raises(InvalidInput, match="expects"):
        option_value(spec, text)
