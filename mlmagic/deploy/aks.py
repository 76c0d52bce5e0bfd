"""Legacy Azure Kubernetes Service web services (SDK v1; deprecated, succeeded by
``--target kubernetes``) on the AKS cluster attached as ``--compute NAME``."""

from __future__ import annotations

from mlmagic.deploy import Endpoint
from mlmagic.deploy.webservice import DEFAULT_TIMEOUT, delete, deploy_service, predict, status
from mlmagic.errors import InvalidInput

REQUIRES = ("azureml.core", "azure-v1")
OPTIONS = ("compute", "cpu_cores", "memory_gb", "tags", "description", "enable_app_insights")
__all__ = ["DEFAULT_TIMEOUT", "OPTIONS", "delete", "deploy", "predict", "status"]


def deploy(model, name: str, *, timeout: float, connection, compute: str | None = None,
           cpu_cores: float | None = None, memory_gb: float | None = None,
           tags: dict | None = None, description: str | None = None,
           enable_app_insights: bool | None = None) -> Endpoint:
    """Deploy ``model`` to an AKS web service on the attached cluster ``compute``."""
    if not compute:
        raise InvalidInput("the aks target needs --compute NAME: the AKS cluster attached to "
                           "the workspace.")
    return deploy_service(
        model, name, connection, timeout, target="aks",
        configure=lambda webservice: webservice.AksWebservice.deploy_configuration(
            compute_target_name=compute, cpu_cores=cpu_cores, memory_gb=memory_gb, tags=tags,
            description=description, enable_app_insights=enable_app_insights),
    )
