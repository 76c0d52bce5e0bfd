"""Azure ML managed online endpoints (the successor of ACI web services).

A model from the workspace registry is deployed with no scoring script and no environment
(an MLflow "no-code" deployment). A new version goes to the other of two deployments, blue
and green; when it is ready the traffic moves to it and the old one is deleted.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from mlmagic.azure import sdk
from mlmagic.base.checks import checked_count
from mlmagic.base.display import Waiting
from mlmagic.base.errors import ConnectionFailed, InvalidInput, MlmagicError, NotFound
from mlmagic.base.failures import answer_reason
from mlmagic.base.secrets import first_line
from mlmagic.deploy import Endpoint, Owner, option

NAME = "online"
SUMMARY = "an Azure ML managed online endpoint"
REQUIRES = ("azure.ai.ml", "azure")
LEGACY = False
REGISTRY = "azureml"  # deploys from the workspace's registry
DEFAULT_TIMEOUT = 1800.0  # Azure takes minutes to provision
DEFAULT_INSTANCE_TYPE = "Standard_DS3_v2"
NAME_RULE = re.compile(r"[a-zA-Z][a-zA-Z0-9-]{1,30}[a-zA-Z0-9]")


@dataclass
class Options:
    """The options of online endpoints (managed, and on Kubernetes)."""

    instance_type: str | None = field(default=None, metadata=option(
        "the VM or cluster instance type"))
    instance_count: int | None = field(default=None, metadata=option(
        "how many instances", check=lambda count: checked_count(count, "instance count")))


def deploy(model, name: str, *, timeout: float, connection, options: Options,
           owner: Owner) -> Endpoint:
    """Create or update a managed online endpoint serving ``model`` (a ModelRef)."""
    from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint

    return deploy_to(
        model, name, connection, timeout, target="online",
        new_endpoint=lambda: ManagedOnlineEndpoint(name=name, auth_mode="key"),
        new_deployment=lambda slot, model_id: ManagedOnlineDeployment(
            name=slot, endpoint_name=name, model=model_id,
            instance_type=options.instance_type or DEFAULT_INSTANCE_TYPE,
            instance_count=options.instance_count or 1,
        ),
    )


@sdk.quiet()
def deploy_to(model, name: str, connection, timeout: float, *, target: str, new_endpoint,
              new_deployment) -> Endpoint:
    """The deployment steps that managed and Kubernetes online endpoints share."""
    workspace = workspace_of(connection, target)
    check_name(name)
    registered_version(model)
    client = workspace.ml_client()
    deadline = time.monotonic() + timeout
    existing = _existing(client, name)
    if existing is None:
        _wait(lambda: client.online_endpoints.begin_create_or_update(new_endpoint()),
              f"creating endpoint {name}", deadline, workspace)
    slots = _deployments(client, name)
    serving = (existing.traffic or {}) if existing is not None else {}
    slot = "green" if serving.get("blue") or ("blue" in slots and "green" not in slots) else "blue"
    model_id = f"azureml:{model.name}:{model.version}"
    try:
        _wait(lambda: client.online_deployments.begin_create_or_update(
            new_deployment(slot, model_id)), f"deploying {model} to {name}/{slot}", deadline,
            workspace)
    except MlmagicError as error:
        _clean_up_failed(client, name, slot, created=existing is None)
        raise error from None
    endpoint = client.online_endpoints.get(name)
    endpoint.traffic = {slot: 100}
    scoring_uri = _wait(lambda: client.online_endpoints.begin_create_or_update(endpoint),
                        f"moving the traffic of {name} to {slot}", deadline,
                        workspace).scoring_uri
    for old in slots:
        if old != slot:
            client.online_deployments.begin_delete(name=old, endpoint_name=name).result()
    return Endpoint(name, target, str(model), scoring_uri, {
        "deployment": slot, "workspace": workspace,
        "studio": workspace.studio_link(f"endpoints/realtime/{name}/detail"),
        "protocol": "input_data", "key variable": "ENDPOINT_KEY",
        "key hint": f"set ENDPOINT_KEY to its key: az ml online-endpoint get-credentials -n "
                    f"{name}",
    }, handle=client.online_endpoints.get_keys(name).primary_key)


@sdk.quiet()
def status(endpoint: Endpoint) -> str:
    """The endpoint's provisioning state and its traffic, as Azure reports them."""
    try:
        found = endpoint.details["workspace"].ml_client().online_endpoints.get(endpoint.name)
    except Exception:
        return "unreachable"
    traffic = ", ".join(f"{slot} {share}%" for slot, share in (found.traffic or {}).items())
    return f"{str(found.provisioning_state).split('.')[-1].lower()} ({traffic or 'no traffic'})"


def predict(endpoint: Endpoint, frame) -> list:
    """Post a pandas DataFrame to the endpoint in Azure ML's ``input_data`` form."""
    return post_input_data(endpoint, frame, endpoint.handle or _key(endpoint))


def post_input_data(endpoint: Endpoint, frame, key: str | None) -> list:
    """Post a pandas DataFrame to an Azure ML scoring URI as ``{"input_data": split}``,
    signed with the endpoint's ``key`` if it has one; the predictions."""
    body = json.dumps({"input_data": frame.to_dict(orient="split")}, default=str).encode()
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(endpoint.url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise InvalidInput(f"the endpoint {endpoint.name} refused the data (HTTP "
                           f"{error.code}): {answer_reason(error.read())}") from None
    except OSError as error:
        raise ConnectionFailed(f"the endpoint {endpoint.name} does not answer ({error}).") from None


@sdk.quiet()
def delete(endpoint: Endpoint) -> None:
    """Delete the endpoint and its deployments from the workspace."""
    client = endpoint.details["workspace"].ml_client()
    client.online_endpoints.begin_delete(name=endpoint.name).result()


@sdk.quiet()
def delete_deployment(endpoint: Endpoint, deployment: str) -> None:
    """Delete one deployment of the endpoint; it must take no traffic."""
    client = endpoint.details["workspace"].ml_client()
    traffic = client.online_endpoints.get(endpoint.name).traffic or {}
    if deployment not in _deployments(client, endpoint.name):
        raise NotFound(f"the endpoint {endpoint.name} has no deployment '{deployment}' "
                       f"(it has: {', '.join(traffic) or 'none'}).")
    if traffic.get(deployment):
        raise InvalidInput(f"the deployment '{deployment}' takes {traffic[deployment]}% of "
                           f"{endpoint.name}'s traffic; deploy another version first, or "
                           "undeploy the whole endpoint.")
    client.online_deployments.begin_delete(name=deployment, endpoint_name=endpoint.name).result()


@sdk.quiet()
def endpoints_in(workspace) -> list[Endpoint]:
    """The workspace's online endpoints (managed and Kubernetes), whoever made them."""
    client = workspace.ml_client()
    return [_as_endpoint(client, found, workspace) for found in client.online_endpoints.list()]


@sdk.quiet()
def endpoint_in(workspace, name: str) -> Endpoint | None:
    """The workspace's online endpoint ``name``, or None if there is none."""
    client = workspace.ml_client()
    found = _existing(client, name)
    return None if found is None else _as_endpoint(client, found, workspace)


def _as_endpoint(client, online, workspace) -> Endpoint:
    models = [_model_name(d.model) for d in client.online_deployments.list(online.name)]
    kind = "kubernetes" if getattr(online, "compute", None) else "online"
    return Endpoint(online.name, kind, ", ".join(models), online.scoring_uri, {
        "workspace": workspace,
        "studio": workspace.studio_link(f"endpoints/realtime/{online.name}/detail")})


def _model_name(model) -> str:
    """NAME:VERSION of a deployment's model (an ARM id …/models/NAME/versions/V)."""
    parts = str(model).rstrip("/").split("/")
    return f"{parts[-3]}:{parts[-1]}" if len(parts) >= 3 and parts[-2] == "versions" else str(
        model)


def workspace_of(connection, target: str):
    """The connected workspace, or a line saying that this target needs one."""
    if connection.backend.workspace is None:
        raise InvalidInput(
            f"the {target} target deploys to an Azure ML workspace; connect to one first "
            "(%aml_connect --workspace NAME --subscription ID --resource-group RG)."
        )
    return connection.backend.workspace


def registered_version(model) -> str:
    """The version of a workspace-registered model, or a line saying to register it."""
    if not (model.name and model.version):
        raise InvalidInput(
            f"{model} is not a registered model version. Register it first "
            "(%aml_register NAME --run RUN), then deploy NAME:VERSION."
        )
    return model.version


def checks(target: str, name_rule=None):
    """The ``check`` of the Azure ML target ``target``: a workspace to deploy to, and the
    rule for its names (``name_rule``; by default Azure's for endpoint names)."""

    def check(name: str, connection) -> None:
        """What is checked before anything is made (or copied) for this target."""
        workspace_of(connection, target)
        (name_rule or check_name)(name)

    return check


check = checks(NAME)


def check_name(name: str) -> None:
    """Azure's rule for endpoint names, checked before any call."""
    if not NAME_RULE.fullmatch(name):
        raise InvalidInput(
            f"'{name}' is not a valid endpoint name: 3 to 32 letters, digits or hyphens, "
            "starting with a letter and not ending with a hyphen. Give another with --name."
        )


def _existing(client, name: str):
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return client.online_endpoints.get(name)
    except ResourceNotFoundError:
        return None


def _deployments(client, name: str) -> list[str]:
    return [d.name for d in client.online_deployments.list(endpoint_name=name)]


def _wait(begin, doing: str, deadline: float, workspace) -> Any:
    """Start an Azure long-running operation (``begin()``) and wait for it with a one-line
    progress; its result."""
    from azure.core.exceptions import HttpResponseError

    def too_slow() -> Exception:
        return ConnectionFailed(f"{doing}: not done when the timeout ran out; it goes on in "
                                f"Azure. See {workspace.studio_link('endpoints')} or try a "
                                "longer --timeout.")

    try:
        with Waiting(doing, timeout=deadline - time.monotonic(), every=1,
                     timed_out=too_slow) as waiting:
            poller = begin()
            for _ in waiting:
                if poller.done():
                    result = poller.result()
                    waiting.done()
                    return result
    except HttpResponseError as error:
        reason = getattr(getattr(error, "error", None), "message", None) or str(error)
        raise MlmagicError(f"{doing} failed: {first_line(reason)} "
                           f"(studio: {workspace.studio_link('endpoints')})") from None


def _clean_up_failed(client, name: str, slot: str, *, created: bool) -> None:
    """Leave nothing half-created: the failed deployment, and the endpoint if it is new."""
    if created:
        client.online_endpoints.begin_delete(name=name).result()
    else:
        client.online_deployments.begin_delete(name=slot, endpoint_name=name).result()


@sdk.quiet()
def _key(endpoint: Endpoint) -> str:
    client = endpoint.details["workspace"].ml_client()
    try:
        endpoint.handle = client.online_endpoints.get_keys(endpoint.name).primary_key
    except Exception:
        raise NotFound(f"cannot get the key of the endpoint {endpoint.name}.") from None
    return endpoint.handle
