"""Online endpoints through the real azure-ai-ml MLClient and plain HTTPS scoring: traffic
must sum to 0 or 100 and name the endpoint's deployments, scoring shares requests by
traffic, an instance type must exist, and a no-code deployment needs an MLflow model."""

from __future__ import annotations

from collections import Counter

import pytest

from .calls import call
from .conftest import NO_SUCH_PACKAGE, PRICE, RAW, UNBUILDABLE


@pytest.fixture
def client(quick, registered):
    """azure-ai-ml's MLClient on the workspace, as its managed identity."""
    from azure.ai.ml import MLClient
    from azure.identity import ManagedIdentityCredential

    workspace = quick.workspaces[0]
    return MLClient(ManagedIdentityCredential(), workspace.subscription,
                    workspace.resource_group, workspace.name, enable_telemetry=False)


def new_endpoint(client, name: str, **kind):
    from azure.ai.ml.entities import KubernetesOnlineEndpoint, ManagedOnlineEndpoint

    made = KubernetesOnlineEndpoint if kind.get("compute") else ManagedOnlineEndpoint
    return client.online_endpoints.begin_create_or_update(
        made(name=name, auth_mode="key", **kind)).result()


def deploy(client, endpoint: str, slot: str, model: str, version: str,
           instance_type: str = "Standard_DS3_v2", kubernetes: bool = False):
    from azure.ai.ml.entities import KubernetesOnlineDeployment, ManagedOnlineDeployment

    made = KubernetesOnlineDeployment if kubernetes else ManagedOnlineDeployment
    return client.online_deployments.begin_create_or_update(made(
        name=slot, endpoint_name=endpoint, model=f"azureml:{model}:{version}",
        instance_type=instance_type, instance_count=1)).result()


def set_traffic(client, name: str, traffic: dict[str, int]):
    endpoint = client.online_endpoints.get(name)
    endpoint.traffic = traffic
    return client.online_endpoints.begin_create_or_update(endpoint).result()


def test_traffic_sums_to_0_or_100_over_the_endpoints_deployments(client, registered):
    from azure.core.exceptions import HttpResponseError

    new_endpoint(client, "traffic")
    for slot in ("blue", "green"):
        deploy(client, "traffic", slot, PRICE, registered[PRICE])
    for wrong, expected in (({"blue": 50}, "sum up to 0 or 100"),
                            ({"blue": 60, "green": 60}, "sum up to 0 or 100"),
                            ({"blue": 50, "red": 50}, "do not exist in endpoint 'traffic': red")):
        with pytest.raises(HttpResponseError, match=expected) as refused:
            set_traffic(client, "traffic", wrong)
        assert refused.value.status_code == 400
    assert set_traffic(client, "traffic", {"blue": 70, "green": 30}).traffic == {
        "blue": 70, "green": 30}
    set_traffic(client, "traffic", {"blue": 0, "green": 0})  # sent as {}: none takes traffic
    assert client.online_endpoints.get("traffic").traffic == {"blue": 0, "green": 0}


def test_scoring_shares_the_requests_by_traffic(quick, client, registered):
    new_endpoint(client, "shared")
    for slot in ("blue", "green"):
        deploy(client, "shared", slot, PRICE, registered[PRICE])
    endpoint = set_traffic(client, "shared", {"blue": 70, "green": 30})
    key = client.online_endpoints.get_keys("shared").primary_key
    path = endpoint.scoring_uri.removeprefix(quick.url)
    houses = {"input_data": {"columns": ["rooms", "age"], "data": [[1.0, 10.0], [3.0, 20.0]]}}
    served = Counter()
    for _ in range(100):
        answer = call(quick, "POST", path, body=houses, headers={"Authorization": f"Bearer {key}"})
        assert [round(p, 6) for p in answer.body] == [0.0, 10.0]  # 10 * rooms - age
        served[answer.headers["azureml-model-deployment"]] += 1
    assert served == {"blue": 70, "green": 30}
    pinned = call(quick, "POST", path, body=houses, headers={
        "Authorization": f"Bearer {key}", "azureml-model-deployment": "green"})
    assert pinned.headers["azureml-model-deployment"] == "green"


def test_an_instance_type_that_does_not_exist_is_refused(client, registered):
    from azure.core.exceptions import HttpResponseError

    new_endpoint(client, "sizes")
    with pytest.raises(HttpResponseError, match="'Standard_DS3_v9' is not supported") as refused:
        deploy(client, "sizes", "blue", PRICE, registered[PRICE], "Standard_DS3_v9")
    assert refused.value.status_code == 400
    new_endpoint(client, "sizes-k8s", compute="k8s-cluster")
    with pytest.raises(HttpResponseError, match="'gpu-huge' is not supported on the cluster"):
        deploy(client, "sizes-k8s", "blue", PRICE, registered[PRICE], "gpu-huge",
               kubernetes=True)
    assert deploy(client, "sizes-k8s", "blue", PRICE, registered[PRICE], None,
                  kubernetes=True).provisioning_state == "Succeeded"


def test_a_no_code_deployment_needs_an_mlflow_model_and_requirements_that_exist(
    quick, client, registered
):
    from azure.core.exceptions import HttpResponseError

    new_endpoint(client, "no-code")
    with pytest.raises(HttpResponseError, match="no MLmodel file"):
        deploy(client, "no-code", "blue", RAW, registered[RAW])
    assert client.online_deployments.get("blue", "no-code").provisioning_state == "Failed"
    with pytest.raises(HttpResponseError, match=f"No matching distribution found for "
                                                f"{NO_SUCH_PACKAGE}"):
        deploy(client, "no-code", "blue", UNBUILDABLE, registered[UNBUILDABLE])
    assert deploy(client, "no-code", "green", PRICE, registered[PRICE]
                  ).provisioning_state == "Succeeded"
