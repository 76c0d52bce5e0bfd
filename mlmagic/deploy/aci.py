"""Legacy Azure Container Instances web services (SDK v1; deprecated, succeeded by
``--target online``), with the source docs' options."""

from __future__ import annotations

from mlmagic.deploy import Endpoint
from mlmagic.deploy.webservice import DEFAULT_TIMEOUT, delete, deploy_service, predict, status

REQUIRES = ("azureml.core", "azure-v1")
OPTIONS = ("cpu_cores", "memory_gb", "tags", "description", "location")
__all__ = ["DEFAULT_TIMEOUT", "OPTIONS", "delete", "deploy", "predict", "status"]


def deploy(model, name: str, *, timeout: float, connection, cpu_cores: float | None = None,
           memory_gb: float | None = None, tags: dict | None = None,
           description: str | None = None, location: str | None = None) -> Endpoint:
    """Deploy ``model`` to an ACI web service (1 core and 1 GB unless told otherwise)."""
    return deploy_service(
        model, name, connection, timeout, target="aci",
        configure=lambda webservice: webservice.AciWebservice.deploy_configuration(
            cpu_cores=cpu_cores or 1, memory_gb=memory_gb or 1, tags=tags,
            description=description, location=location),
    )
