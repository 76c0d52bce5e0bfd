"""Azure ML Kubernetes online endpoints on an attached cluster (the successor of AKS web
services): the same steps as managed online endpoints, on ``--compute NAME``."""

from __future__ import annotations

from mlmagic.deploy import Endpoint
from mlmagic.deploy.online import DEFAULT_TIMEOUT, delete, deploy_to, predict, status
from mlmagic.errors import InvalidInput

REQUIRES = ("azure.ai.ml", "azure")
OPTIONS = ("compute", "instance_type", "instance_count")
__all__ = ["DEFAULT_TIMEOUT", "OPTIONS", "delete", "deploy", "predict", "status"]


def deploy(model, name: str, *, timeout: float, connection, compute: str | None = None,
           instance_type: str | None = None, instance_count: int | None = None) -> Endpoint:
    """Create or update a Kubernetes online endpoint on the attached cluster ``compute``."""
    if not compute:
        raise InvalidInput("the kubernetes target needs --compute NAME: the Kubernetes cluster "
                           "attached to the workspace.")
    from azure.ai.ml.entities import KubernetesOnlineDeployment, KubernetesOnlineEndpoint

    return deploy_to(
        model, name, connection, timeout, target="kubernetes",
        new_endpoint=lambda: KubernetesOnlineEndpoint(name=name, compute=compute,
                                                      auth_mode="key"),
        new_deployment=lambda slot, model_id: KubernetesOnlineDeployment(
            name=slot, endpoint_name=name, model=model_id,
            instance_type=instance_type,  # None: the cluster's default instance type
            instance_count=instance_count or 1,
        ),
    )
