"""Legacy Azure Kubernetes Service web services (SDK v1; deprecated, succeeded by
``--target kubernetes``) on the AKS cluster attached as ``--compute NAME``."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlmagic.azure import aci
from mlmagic.azure.webservice import (
    DEFAULT_TIMEOUT,
    ServiceOptions,
    checks,
    delete,
    deploy_service,
    predict,
    status,
)
from mlmagic.deploy import Endpoint, Owner, option

NAME = "aks"
SUMMARY = "a legacy SDK v1 AKS web service (deprecated: use kubernetes)"
REQUIRES = aci.REQUIRES
LEGACY = True
REGISTRY = "azureml"  # deploys from the workspace's registry
check = checks(NAME)
__all__ = ["DEFAULT_TIMEOUT", "Options", "delete", "deploy", "predict", "status"]


@dataclass
class Options(ServiceOptions):
    """An AKS web service's options."""

    compute: str | None = field(default=None, metadata=option(
        "the cluster attached to the workspace", required=True, metavar="NAME"))
    enable_app_insights: bool | None = field(default=None, metadata=option(
        "send the service's telemetry to Application Insights", flag="--app-insights"))


def deploy(model, name: str, *, timeout: float, connection, options: Options,
           owner: Owner) -> Endpoint:
    """Deploy ``model`` to an AKS web service on the attached cluster ``compute``."""
    return deploy_service(
        model, name, connection, timeout, target="aks",
        configure=lambda webservice: webservice.AksWebservice.deploy_configuration(
            compute_target_name=options.compute, cpu_cores=options.cpu_cores,
            memory_gb=options.memory_gb, tags=options.tags, description=options.description,
            enable_app_insights=options.enable_app_insights),
    )
