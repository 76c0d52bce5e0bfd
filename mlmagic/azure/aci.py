"""Legacy Azure Container Instances web services (SDK v1; deprecated, succeeded by
``--target online``), with the source docs' options."""

from __future__ import annotations

from dataclasses import dataclass, field

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

NAME = "aci"
SUMMARY = "a legacy SDK v1 Azure Container Instances web service (deprecated: use online)"
REQUIRES = ("azureml.core", "azure-v1")
LEGACY = True
REGISTRY = "azureml"  # deploys from the workspace's registry
check = checks(NAME)
__all__ = ["DEFAULT_TIMEOUT", "Options", "delete", "deploy", "predict", "status"]


@dataclass
class Options(ServiceOptions):
    """An ACI web service's options (the source docs' ``deploy_configuration``)."""

    location: str | None = field(default=None, metadata=option("the Azure region to run in"))


def deploy(model, name: str, *, timeout: float, connection, options: Options,
           owner: Owner) -> Endpoint:
    """Deploy ``model`` to an ACI web service (1 core and 1 GB unless told otherwise)."""
    return deploy_service(
        model, name, connection, timeout, target="aci",
        configure=lambda webservice: webservice.AciWebservice.deploy_configuration(
            cpu_cores=options.cpu_cores or 1, memory_gb=options.memory_gb or 1,
            tags=options.tags, description=options.description, location=options.location),
    )
