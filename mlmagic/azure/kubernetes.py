"""Azure ML Kubernetes online endpoints on an attached cluster (the successor of AKS web
services): the same steps as managed online endpoints, on ``--compute NAME``."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlmagic.azure import online
from mlmagic.azure.online import DEFAULT_TIMEOUT, delete, deploy_to, predict, status
from mlmagic.deploy import Endpoint, Owner, option

NAME = "kubernetes"
SUMMARY = "an Azure ML Kubernetes online endpoint on an attached cluster"
REQUIRES = online.REQUIRES
LEGACY = False
REGISTRY = "azureml"  # deploys from the workspace's registry
check = online.checks(NAME)
__all__ = ["DEFAULT_TIMEOUT", "Options", "delete", "deploy", "predict", "status"]


@dataclass
class Options(online.Options):
    """A Kubernetes online endpoint's options: the cluster, and those of online endpoints."""

    compute: str | None = field(default=None, metadata=option(
        "the cluster attached to the workspace", required=True, metavar="NAME"))


def deploy(model, name: str, *, timeout: float, connection, options: Options,
           owner: Owner) -> Endpoint:
    """Create or update a Kubernetes online endpoint on the attached cluster ``compute``."""
    from azure.ai.ml.entities import KubernetesOnlineDeployment, KubernetesOnlineEndpoint

    return deploy_to(
        model, name, connection, timeout, target="kubernetes",
        new_endpoint=lambda: KubernetesOnlineEndpoint(name=name, compute=options.compute,
                                                      auth_mode="key"),
        new_deployment=lambda slot, model_id: KubernetesOnlineDeployment(
            name=slot, endpoint_name=name, model=model_id,
            instance_type=options.instance_type,  # None: the cluster's default instance type
            instance_count=options.instance_count or 1,
        ),
    )
