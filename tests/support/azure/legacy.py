"""SDK v1 model management for the Azure emulator: the workspace's models as azureml-core
sees them, ACI and AKS web services created asynchronously (an operation polled until the
service is healthy), their keys, and a scoring route that runs the entry script the SDK
uploaded (``init()``, then ``run(raw_body)``) against the real MLflow model.

Every route but scoring needs a token for the workspace (as the data plane does). A service
fails as on Azure when its environment cannot be built (a pip requirement no index has) or
its entry script's ``init()`` raises (the container crashes).

``add_legacy_routes(emulator)`` adds the rows to the emulator's route table.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import secrets
import shutil
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from .emulator import DATA, OPEN, WORKSPACE_PATH, AzureEmulator
from .models import build_log, model_folder, unavailable
from .network import BLOB_ACCOUNT
from .responses import Response, json_response

MMS = r"/modelmanagement/v1\.0" + WORKSPACE_PATH
AKS_DEFAULTS = {  # what the service fills in when a deployment configuration leaves it out
    "autoScaler": {"autoscaleEnabled": True, "maxReplicas": 10, "minReplicas": 1,
                   "refreshPeriodInSeconds": 1, "targetUtilization": 70},
    "livenessProbeRequirements": {"periodSeconds": 10, "initialDelaySeconds": 310,
                                  "timeoutSeconds": 2, "failureThreshold": 3,
                                  "successThreshold": 1},
    "dataCollection": {"eventHubEnabled": False, "storageEnabled": False},
}


@dataclass
class Services:
    """What the emulated workspace holds for SDK v1: web services, their operations, keys."""

    emulator: AzureEmulator
    provisioning_seconds: float = 1.5
    quota_cores: float = 4.0  # the subscription's container cores left
    services: dict[str, dict] = field(default_factory=dict)
    operations: dict[str, dict] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    scorers: dict[str, object] = field(default_factory=dict)  # name -> the loaded entry script
    requests: list[dict] = field(default_factory=list)  # the create/update payloads received
    lock: threading.Lock = field(default_factory=threading.Lock)

    def clear(self) -> None:
        """Forget every service (between tests)."""
        self.quota_cores = 4.0
        for held in (self.services, self.operations, self.keys, self.scorers):
            held.clear()
        self.requests.clear()

    # -- uploads (the entry script) ---------------------------------------------------------

    def create_uploads(self, **request) -> Response:
        """The artifact service's batch create, its upload URLs by storage host name, as
        azureml-core rebuilds them from the account name (reached through the proxy)."""
        response = self.emulator.storage.create(**request)
        path_style = f"{self.emulator.url}/{BLOB_ACCOUNT}/".encode()
        response.body = response.body.replace(path_style, f"https://{BLOB_ACCOUNT}/".encode())
        return response

    # -- models ----------------------------------------------------------------------------

    def get_model(self, model_id, **_) -> Response:
        import mlflow
        from mlflow.exceptions import MlflowException

        name, _, version = urllib.parse.unquote(model_id).partition(":")
        client = mlflow.MlflowClient(tracking_uri=self.emulator.mlflow_url)
        try:
            found = client.get_model_version(name, version)
        except MlflowException:
            return json_response(404, {"code": "NotFound",
                                       "message": f"Model {name}:{version} not found"})
        return json_response(200, _model_resource(found))

    # -- services ----------------------------------------------------------------------------

    def create_service(self, sub, rg, ws, body, **_) -> Response:
        payload = json.loads(body)
        self.requests.append(payload)
        name = payload["name"]
        kind = payload["computeType"]
        if kind == "AKS" and payload.get("computeName") not in self.emulator.computes:
            return json_response(400, {"code": "BadArgument", "message": (
                f"Compute {payload.get('computeName')} is not an AKS cluster attached to "
                "this workspace")})
        auth = payload.get("authEnabled", kind == "AKS")
        now = _now()
        with self.lock:
            self.scorers.pop(name, None)
            self.services[name] = {
                "name": name, "computeType": kind, "state": "Transitioning",
                "createdTime": self.services.get(name, {}).get("createdTime", now),
                "updatedTime": now, "createdBy": None, "authEnabled": auth,
                "aadAuthEnabled": False, "description": payload.get("description"),
                "kvTags": payload.get("kvTags") or {},
                "properties": payload.get("properties") or {},
                "location": payload.get("location"), "computeName": payload.get("computeName"),
                "appInsightsEnabled": payload.get("appInsightsEnabled", False),
                "containerResourceRequirements": {
                    "cpu": None, "cpuLimit": None, "memoryInGB": None, "memoryInGBLimit": None,
                    "gpu": None, **(payload.get("containerResourceRequirements") or {})},
                "environmentImageRequest": payload["environmentImageRequest"],
                "models": [self._model_of(model_id) for model_id in
                           payload["environmentImageRequest"].get("modelIds", [])],
                "scoringUri": f"{self.emulator.url}/v1score/{name}",
                "cname": None, "publicIp": None, "publicFqdn": None, "sslEnabled": False,
                "sslCertificate": None, "sslKey": None, "imageId": None, "imageDigest": None,
                "error": None, "maxConcurrentRequestsPerContainer": 1, "maxQueueWaitMs": 500,
                "numReplicas": None, "scoringTimeoutMs": 60000,
                **{key: {**default, **(payload.get(key) or {})}
                   for key, default in AKS_DEFAULTS.items()},
            }
            if auth:
                self.keys.setdefault(name, secrets.token_urlsafe(24))
            operation = self._operation(name, "Create")
        return Response(202, b"", {"Operation-Location": self._operation_url(sub, rg, ws,
                                                                             operation)})

    def validate(self, body, **_) -> Response:
        """The pre-flight check azureml-core makes: a service asking for more cores than the
        subscription's quota has left is refused here, before anything is created."""
        request = json.loads(body).get("createRequest") or {}
        cores = (request.get("containerResourceRequirements") or {}).get("cpu") or 0
        if cores > self.quota_cores:
            return json_response(200, {"error": {"message": (
                f"Not enough quota: {cores} cores requested, {self.quota_cores} available in "
                "this region. Request a quota increase or ask for fewer cores.")}})
        return json_response(200, {})

    def get_service(self, name, **_) -> Response:
        service = self._current(name)
        if service is None:
            return json_response(404, {"code": "NotFound", "message": f"Service {name} not found"})
        return json_response(200, service)

    def list_services(self, query, **_) -> Response:
        kind = query.get("computeType")
        names = [name for name, service in self.services.items()
                 if kind is None or service["computeType"] == kind]
        return json_response(200, {"value": [self._current(name) for name in names]})

    def delete_service(self, sub, rg, ws, name, **_) -> Response:
        with self.lock:
            if self.services.pop(name, None) is None:
                return json_response(404, {"code": "NotFound",
                                           "message": f"Service {name} not found"})
            self.keys.pop(name, None)
            self.scorers.pop(name, None)
        return Response(200, b"")

    def list_keys(self, name, **_) -> Response:
        if name not in self.services:
            return json_response(404, {"code": "NotFound", "message": f"Service {name} not found"})
        key = self.keys.get(name)
        return json_response(200, {"primaryKey": key, "secondaryKey": key and key[::-1]})

    def get_operation(self, operation_id, **_) -> Response:
        operation = self.operations.get(operation_id)
        if operation is None:
            return json_response(404, {"code": "NotFound", "message": "no such operation"})
        service = self._current(operation["service"]) or {}
        state = {"Healthy": "Succeeded", "Failed": "Failed"}.get(service.get("state"), "Running")
        return json_response(200, {
            "id": operation_id, "operationType": operation["type"], "state": state,
            "resourceLocation": f"/services/{operation['service']}",
            "error": service.get("error"),
        })

    # -- scoring ---------------------------------------------------------------------------

    def score(self, name, headers, body, **_) -> Response:
        service = self._current(name)
        if service is None:
            return Response(404, b"service not found")
        if service["authEnabled"]:
            key = (headers.get("Authorization") or "").removeprefix("Bearer ").strip()
            if key not in (self.keys[name], self.keys[name][::-1]):
                return Response(401, b"invalid key")
        if service["state"] != "Healthy":
            return Response(503, f"service {name} is {service['state']}".encode())
        try:
            result = self.scorers[name].run(body.decode(), dict(headers))
        except Exception as error:  # the entry script's failure is the service's 500
            return Response(500, f"{type(error).__name__}: {error}".encode())
        return json_response(200, result)

    # -- internals -------------------------------------------------------------------------

    def _operation(self, name: str, kind: str) -> str:
        operation_id = secrets.token_hex(8)
        self.operations[operation_id] = {"service": name, "type": kind,
                                         "ready_at": time.time() + self.provisioning_seconds}
        self.services[name]["_operation"] = operation_id
        return operation_id

    def _operation_url(self, sub, rg, ws, operation_id: str) -> str:
        return (f"{self.emulator.url}/modelmanagement/v1.0/subscriptions/{sub}/resourceGroups/"
                f"{rg}/providers/Microsoft.MachineLearningServices/workspaces/{ws}/operations/"
                f"{operation_id}")

    def _current(self, name: str) -> dict | None:
        """The service as Azure reports it now: provisioning finishes once its time is up, by
        starting the container (the uploaded entry script's ``init()``)."""
        with self.lock:
            service = self.services.get(name)
            if service is None:
                return None
            operation = self.operations.get(service.get("_operation", ""))
            if service["state"] == "Transitioning" and time.time() >= operation["ready_at"]:
                self._start_container(service)
            return {key: value for key, value in service.items() if not key.startswith("_")}

    def _start_container(self, service: dict) -> None:
        name = service["name"]
        missing = unavailable(_pip_requirements(service["environmentImageRequest"]))
        if missing:
            service["state"] = "Failed"
            service["error"] = {"code": "EnvironmentBuildFailed", "message": (
                f"Failed building the Environment. {build_log(missing)}")}
            return
        try:
            self.scorers[name] = self._load_entry_script(service)
        except Exception as error:  # what the container's log would show
            service["state"] = "Failed"
            service["error"] = _crash(service["computeType"], error)
            return
        service["state"] = "Healthy"

    def _load_entry_script(self, service: dict):
        """Lay out the container as Azure ML does (the model under AZUREML_MODEL_DIR, the
        uploaded assets in the working directory), import the entry script, call init()."""
        import os

        container = self.emulator.root / "containers" / service["name"] / secrets.token_hex(4)
        request = service["environmentImageRequest"]
        for asset in request.get("assets", []):
            self._download_asset(asset["url"], container)
        model = service["models"][0]
        model_dir = container / "azureml-models" / model["name"] / str(model["version"])
        shutil.copytree(self._model_folder(model), model_dir / "model")
        entry = container / request["driverProgram"]
        spec = importlib.util.spec_from_file_location(f"score_{service['name']}", entry)
        module = importlib.util.module_from_spec(spec)
        previous = os.environ.get("AZUREML_MODEL_DIR")
        os.environ["AZUREML_MODEL_DIR"] = str(model_dir)
        try:
            spec.loader.exec_module(module)
            module.init()
        finally:
            if previous is None:
                os.environ.pop("AZUREML_MODEL_DIR", None)
            else:
                os.environ["AZUREML_MODEL_DIR"] = previous
        return module

    def _download_asset(self, url: str, container: Path) -> None:
        """Copy an uploaded asset (``aml://artifact/ORIGIN/CONTAINER/PATH``) from the blob
        store into the container's working directory, as PATH."""
        origin, upload, path = url.removeprefix("aml://artifact/").split("/", 2)
        target = container / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.emulator.blobs / origin / upload / path, target)

    def _model_of(self, model_id: str) -> dict:
        import mlflow

        name, _, version = model_id.partition(":")
        client = mlflow.MlflowClient(tracking_uri=self.emulator.mlflow_url)
        return _model_resource(client.get_model_version(name, version))

    def _model_folder(self, model: dict) -> Path:
        return model_folder(self.emulator, model["name"], model["version"])


def _pip_requirements(image_request: dict) -> list[str]:
    """The pip packages of a web service's conda environment (with Azure ML's own inference
    packages, which its base images provide)."""
    python = (image_request.get("environment") or {}).get("python") or {}
    dependencies = (python.get("condaDependencies") or {}).get("dependencies") or []
    pip = [p for d in dependencies if isinstance(d, dict) for p in d.get("pip", [])]
    return [p for p in pip if not p.startswith(("azureml-defaults", "azureml-inference"))]


def _crash(kind: str, error: Exception) -> dict:
    """Azure's error for a container whose entry script's init() raised ``error``."""
    code = {"ACI": "AciDeploymentFailed"}.get(kind, "KubernetesDeploymentFailed")
    return {"code": code, "message": (
        f"{'Aci' if kind == 'ACI' else 'Kubernetes'} Deployment failed with exception: Your "
        "container application crashed. This may be caused by errors in your scoring file's "
        f"init() function. {type(error).__name__}: {error}")}


def _model_resource(version) -> dict:
    created = datetime.datetime.fromtimestamp(version.creation_timestamp / 1000,
                                              tz=datetime.timezone.utc).isoformat()
    return {
        "id": f"{version.name}:{version.version}", "name": version.name,
        "version": int(version.version), "framework": "Custom", "frameworkVersion": None,
        "mimeType": "application/octet-stream", "unpack": False,
        "url": f"aml://artifact/{version.source}", "description": version.description,
        "createdTime": created, "createdBy": None, "tags": version.tags or {},
        "kvTags": version.tags or {}, "properties": {"flavors": "python_function"},
        "experimentName": None, "runId": version.run_id, "datasets": [],
    }


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def add_legacy_routes(emulator: AzureEmulator) -> Services:
    """Teach the emulator SDK v1 model management; the returned object holds its state."""
    state = Services(emulator)
    emulator.parts.append(state)
    service = MMS + r"/services/(?P<name>[^/]+)"
    for method, pattern, handler in (
        ("POST", r"/artifact/v2\.0" + WORKSPACE_PATH + r"/artifacts/batch/metadata/"
                 r"(?P<origin>[^/]+)/(?P<container>[^/]+)", state.create_uploads),
        ("GET", MMS + r"/models/(?P<model_id>[^/]+)", state.get_model),
        ("POST", MMS + r"/services", state.create_service),
        ("POST", MMS + r"/services/validate", state.validate),
        ("GET", MMS + r"/services", state.list_services),
        ("GET", service, state.get_service),
        ("DELETE", service, state.delete_service),
        ("POST", service + r"/listkeys", state.list_keys),
        ("GET", MMS + r"/operations/(?P<operation_id>[^/]+)", state.get_operation),
    ):
        emulator.route(method, pattern, handler, plane=DATA)
    emulator.route("POST", r"/v1score/(?P<name>[^/]+)", state.score, plane=OPEN)
    return state
