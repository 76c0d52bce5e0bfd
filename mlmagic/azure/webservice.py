"""Legacy Azure ML web services (SDK v1, azureml-core): what the ACI and AKS targets share.

New ACI and AKS web services are deprecated (SDK v1 support ended on 2026-06-30); managed
online endpoints succeed ACI and Kubernetes online endpoints succeed AKS. These targets serve
notebooks written for SDK v1. The model comes from the workspace registry; an entry script
written here loads it with MLflow and answers Azure ML's ``{"input_data": …}`` protocol, in an
environment made from the model's own conda requirements.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from mlmagic.azure import INSTALL_V1, online, sdk
from mlmagic.azure.online import post_input_data, registered_version, workspace_of
from mlmagic.base.checks import checked_positive
from mlmagic.base.display import Waiting, notify
from mlmagic.base.errors import ConnectionFailed, InvalidInput, MissingExtra, MlmagicError, NotFound
from mlmagic.base.secrets import first_line
from mlmagic.deploy import Endpoint, option

DEFAULT_TIMEOUT = 1800.0
NAME_RULE = re.compile(r"[a-z]([-a-z0-9]{1,30})[a-z0-9]")
SUCCESSORS = {"aci": "online", "aks": "kubernetes"}

ENTRY_SCRIPT = '''\
"""Written by mlmagic: serves an MLflow model on Azure ML's {"input_data": split} protocol."""
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import mlflow.pyfunc
import pandas as pd


def init():
    global model
    root = Path(os.environ["AZUREML_MODEL_DIR"])
    model = mlflow.pyfunc.load_model(str(min(root.rglob("MLmodel")).parent))


def run(raw_data):
    split = json.loads(raw_data)["input_data"]
    frame = pd.DataFrame(split["data"], columns=split.get("columns"), index=split.get("index"))
    predictions = model.predict(frame)
    return predictions.tolist() if hasattr(predictions, "tolist") else list(predictions)
'''


@dataclass
class ServiceOptions:
    """The options ACI and AKS web services share."""

    cpu_cores: float | None = field(default=None, metadata=option(
        "CPU cores per container", check=lambda n: checked_positive(n, "cpu cores")))
    memory_gb: float | None = field(default=None, metadata=option(
        "memory per container, in GB", check=lambda n: checked_positive(n, "memory gb")))
    tags: dict[str, str] | None = field(default=None, metadata=option(
        "tag the web service (repeatable)", flag="--tag", short="-t", metavar="KEY=VALUE"))
    description: str | None = field(default=None, metadata=option(
        "the web service's description"))


def deploy_service(model, name: str, connection, timeout: float, configure, *,
                   target: str) -> Endpoint:
    """Deploy ``model`` (a registered ModelRef) as the web service ``name``, wait until it is
    healthy, and return it. ``configure(azureml.core.webservice)`` makes the deployment
    configuration."""
    workspace = workspace_of(connection, target)
    check_name(name)
    version = registered_version(model)
    notify(f"{target.upper()} web services are deprecated (Azure ML SDK v1, support ended "
           f"2026-06-30); --target {SUCCESSORS[target]} deploys to their successor.")
    core, WebserviceException = _azureml_core()
    configuration = configure(core.webservice)
    with sdk.quiet(), tempfile.TemporaryDirectory() as folder:
        try:
            registered = core.Model(workspace.v1, name=model.name, version=int(version))
        except WebserviceException:
            raise NotFound(f"the workspace has no model {model.name}:{version} (%aml_models "
                           f"{model.name} lists its versions).") from None
        script = Path(folder) / "score.py"
        script.write_text(ENTRY_SCRIPT)
        inference = core.model.InferenceConfig(entry_script=str(script),
                                               environment=_environment(core, model, name))
        existed = _service(workspace, name) is not None
        try:
            service = core.Model.deploy(workspace.v1, name, [registered], inference,
                                        configuration, overwrite=True, show_output=False)
        except WebserviceException as error:
            raise MlmagicError(f"deploying {model} to {name} failed: {_reason(error)}") from None
    _wait_until_healthy(service, f"deploying {model} to {target.upper()} service {name}",
                        timeout, workspace, existed=existed)
    endpoint = _as_endpoint(service, workspace)
    endpoint.handle = _key(service)
    return endpoint


def status(endpoint: Endpoint) -> str:
    """The service's state as Azure reports it (healthy, transitioning, unhealthy, failed)."""
    service = _service(endpoint.details["workspace"], endpoint.name)
    return "deleted" if service is None else str(service.state).lower()


def predict(endpoint: Endpoint, frame) -> list:
    """Post a pandas DataFrame to the service in Azure ML's ``input_data`` form."""
    if endpoint.handle is None:
        endpoint.handle = _key(_existing_service(endpoint))
    return post_input_data(endpoint, frame, endpoint.handle)


def delete(endpoint: Endpoint) -> None:
    """Delete the web service from the workspace."""
    service = _existing_service(endpoint)
    with sdk.quiet():
        service.delete()


def endpoints_in(workspace) -> list[Endpoint]:
    """The workspace's ACI and AKS web services; none when azureml-core is not installed."""
    try:
        core, _ = _azureml_core()
    except MissingExtra:
        return []
    with sdk.quiet():
        services = core.Webservice.list(workspace.v1)
    return [_as_endpoint(service, workspace) for service in services
            if _kind(service) in SUCCESSORS]


def endpoint_in(workspace, name: str) -> Endpoint | None:
    """The workspace's web service ``name``, or None (also without azureml-core)."""
    try:
        service = _service(workspace, name)
    except MissingExtra:
        return None
    if service is None or _kind(service) not in SUCCESSORS:
        return None
    return _as_endpoint(service, workspace)


def checks(target: str):
    """The ``check`` of the legacy target ``target``: a workspace to deploy to, and SDK v1's
    rule for service names."""
    return online.checks(target, check_name)


def check_name(name: str) -> None:
    """SDK v1's rule for service names, checked before any call."""
    if not NAME_RULE.fullmatch(name):
        raise InvalidInput(
            f"'{name}' is not a valid web service name: 3 to 32 lowercase letters, digits or "
            "hyphens, starting with a letter and ending with a letter or digit. Give another "
            "with --name."
        )


def _azureml_core():
    """azureml-core and its WebserviceException, or a line naming the extra to install."""
    try:
        import azureml.core
        import azureml.core.model
        import azureml.core.webservice
        from azureml.exceptions import WebserviceException
    except ImportError:
        raise MissingExtra(INSTALL_V1) from None
    return azureml.core, WebserviceException



def _environment(core, model, name: str):
    """An environment from the model's conda requirements, plus Azure ML's inference server."""
    import mlflow.pyfunc

    conda = mlflow.pyfunc.get_model_dependencies(model.uri, format="conda")
    environment = core.Environment.from_conda_specification(f"{name}-env"[:32], conda)
    environment.python.conda_dependencies.add_pip_package("azureml-defaults")
    return environment


def _service(workspace, name: str):
    """The workspace's web service ``name``, or None."""
    core, WebserviceException = _azureml_core()
    try:
        with sdk.quiet():
            return core.Webservice(workspace.v1, name=name)
    except WebserviceException:
        return None


def _key(service) -> str | None:
    """The service's primary key, or None when it takes requests without one."""
    if not service.auth_enabled:
        return None
    with sdk.quiet():
        return service.get_keys()[0]


def _existing_service(endpoint: Endpoint):
    found = _service(endpoint.details["workspace"], endpoint.name)
    if found is None:
        raise NotFound(f"the web service {endpoint.name} is no longer in the workspace.")
    return found


def _wait_until_healthy(service, doing: str, timeout: float, workspace, *,
                        existed: bool) -> None:
    """Poll the service's state with a one-line progress until it is healthy; on failure say
    why, and delete a service this deployment created."""

    def too_slow() -> Exception:
        return ConnectionFailed(
            f"{doing}: not healthy when the timeout ran out; it goes on in Azure. See "
            f"{workspace.studio_link('endpoints')} or try a longer --timeout.")

    with Waiting(doing, timeout=timeout, every=1, timed_out=too_slow) as waiting:
        for _ in waiting:
            with sdk.quiet():
                service.update_deployment_state()
            state = str(service.state)
            if state == "Healthy":
                return waiting.done()
            if state in ("Failed", "Unhealthy"):
                if not existed:
                    with sdk.quiet(), contextlib.suppress(Exception):
                        service.delete()
                left = "the service is kept as it was" if existed else "the service was deleted"
                raise MlmagicError(f"{doing} failed: {_service_error(service)}; {left} "
                                   f"(studio: {workspace.studio_link('endpoints')}).")
            waiting.detail = state.lower()


def _service_error(service) -> str:
    error = getattr(service, "error", None) or {}
    message = error.get("message") if isinstance(error, dict) else str(error)
    return first_line(message or "") or "no reason given"


def _reason(error) -> str:
    """The service's own message, out of azureml-core's multi-line exception text."""
    text = str(getattr(error, "message", error))
    found = re.search(r'"message":\s*"([^"]+)"', text)
    return found.group(1) if found else first_line(text)


def _kind(service) -> str:
    return str(service.compute_type).lower()


def _as_endpoint(service, workspace) -> Endpoint:
    models = ", ".join(f"{model.name}:{model.version}" for model in service.models or [])
    signed = {"key variable": "ENDPOINT_KEY",
              "key hint": "set ENDPOINT_KEY to its key (the service's Consume page in studio)"
              } if service.auth_enabled else {}
    return Endpoint(service.name, _kind(service), models, service.scoring_uri, {
        "workspace": workspace,
        "studio": workspace.studio_link(f"endpoints/realtime/{service.name}/detail"),
        "protocol": "input_data", **signed,
    })
