"""Online endpoints for the Azure emulator: managed and Kubernetes online endpoints, their
deployments and traffic, keys, asynchronous provisioning polled as Azure's long-running
operations are, and a scoring route that runs the real MLflow model behind Azure ML's
``input_data`` protocol.

``add_endpoint_routes(emulator)`` adds the rows to the emulator's route table.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field

from .emulator import OPEN, WORKSPACE_PATH, AzureEmulator
from .responses import Response, arm_error, json_response

ENDPOINT = WORKSPACE_PATH + r"/onlineEndpoints/(?P<endpoint>[^/]+)"
DEPLOYMENT = ENDPOINT + r"/deployments/(?P<deployment>[^/]+)"


@dataclass
class Operation:
    """A long-running operation: "InProgress" until ``ready_at``, then its outcome."""

    ready_at: float
    failure: str | None = None

    def status(self) -> str:
        if time.time() < self.ready_at:
            return "InProgress"
        return "Failed" if self.failure else "Succeeded"


@dataclass
class Endpoints:
    """What the emulated workspace holds: endpoints, deployments, keys, operations."""

    emulator: AzureEmulator
    provisioning_seconds: float = 1.5
    failing_deployments: set[str] = field(default_factory=set)  # names that fail to provision
    quota_instances: int = 20  # the subscription's core quota, in instances
    endpoints: dict[str, dict] = field(default_factory=dict)
    deployments: dict[tuple[str, str], dict] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    operations: dict[str, Operation] = field(default_factory=dict)
    models: dict[str, object] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def clear(self) -> None:
        """Forget every endpoint (between tests)."""
        for held in (self.failing_deployments, self.endpoints, self.deployments, self.keys):
            held.clear()

    # -- long-running operations ---------------------------------------------------------

    def _start(self, resource: dict, failure: str | None = None) -> str:
        operation_id = secrets.token_hex(8)
        self.operations[operation_id] = Operation(time.time() + self.provisioning_seconds,
                                                  failure)
        resource["properties"]["provisioningState"] = "Creating"
        resource["_operation"] = operation_id
        return operation_id

    def _current(self, resource: dict) -> dict:
        """The resource as ARM shows it now (its provisioning state follows its operation)."""
        operation = self.operations.get(resource.get("_operation", ""))
        shown = {k: v for k, v in resource.items() if not k.startswith("_")}
        if operation is not None:
            shown["properties"] = {**resource["properties"], "provisioningState": {
                "InProgress": "Creating", "Succeeded": "Succeeded", "Failed": "Failed"}[
                operation.status()]}
        return shown

    def _accepted(self, resource: dict, operation_id: str, query) -> Response:
        api = query.get("api-version", "")
        poll = f"{self.emulator.url}/operations/{operation_id}?api-version={api}"
        return json_response(201, self._current(resource), **{"Azure-AsyncOperation": poll,
                                                               "Retry-After": "1"})

    def operation(self, operation_id, **_) -> Response:
        found = self.operations.get(operation_id)
        if found is None:
            return arm_error(404, "OperationNotFound", f"no operation {operation_id}")
        body = {"status": found.status()}
        if found.status() == "Failed":
            body["error"] = {"code": "DeploymentFailed", "message": found.failure}
        return json_response(200, body, **{"Retry-After": "1"})

    # -- endpoints -----------------------------------------------------------------------

    def put_endpoint(self, sub, rg, ws, endpoint, headers, body, query, **_) -> Response:
        found = self.emulator.find_workspace(sub, rg, ws)
        if isinstance(found, Response):
            return found
        sent = json.loads(body)
        compute = sent.get("properties", {}).get("compute")
        if compute and not self._compute_known(compute):
            return arm_error(400, "ComputeNotFound", f"compute '{compute}' is not attached to "
                             "the workspace")
        with self.lock:
            existing = self.endpoints.get(endpoint)
            resource = {
                "id": f"{found.arm_id}/onlineEndpoints/{endpoint}",
                "name": endpoint,
                "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
                "location": found.region,
                "kind": sent.get("kind", "Managed"),
                "tags": sent.get("tags") or {},
                "identity": {"type": "SystemAssigned", "principalId": "0", "tenantId": "0"},
                "properties": {
                    **sent.get("properties", {}),
                    "scoringUri": f"{self.emulator.url}/score/{endpoint}",
                    "swaggerUri": f"{self.emulator.url}/score/{endpoint}/swagger.json",
                },
            }
            traffic = resource["properties"].get("traffic") or {}
            unknown = [d for d in traffic if (endpoint, d) not in self.deployments]
            if unknown:
                return arm_error(400, "BadRequest", f"traffic names unknown deployments: "
                                 f"{', '.join(unknown)}")
            self.endpoints[endpoint] = resource
            self.keys.setdefault(endpoint, secrets.token_urlsafe(24))
            operation_id = self._start(resource)
            if existing is not None:  # an update is quick
                self.operations[operation_id].ready_at = time.time()
        return self._accepted(resource, operation_id, query)

    def _refused(self, sub, rg, ws, endpoint, headers) -> Response | None:
        """The error for a request about a missing endpoint (or workspace, or token)."""
        found = self.emulator.find_workspace(sub, rg, ws)
        if isinstance(found, Response):
            return found
        if endpoint not in self.endpoints:
            return arm_error(404, "ResourceNotFound", f"online endpoint '{endpoint}' not found")
        return None

    def _deleting(self, query) -> Response:
        operation_id = secrets.token_hex(8)
        self.operations[operation_id] = Operation(time.time() + 0.2)
        poll = (f"{self.emulator.url}/operations/{operation_id}"
                f"?api-version={query.get('api-version', '')}")
        return Response(202, b"", {"Azure-AsyncOperation": poll, "Location": poll,
                                   "Retry-After": "1"})

    def get_endpoint(self, sub, rg, ws, endpoint, headers, **_) -> Response:
        refused = self._refused(sub, rg, ws, endpoint, headers)
        return refused or json_response(200, self._current(self.endpoints[endpoint]))

    def list_endpoints(self, sub, rg, ws, headers, **_) -> Response:
        found = self.emulator.find_workspace(sub, rg, ws)
        if isinstance(found, Response):
            return found
        return json_response(200, {"value": [self._current(e) for e in self.endpoints.values()]})

    def delete_endpoint(self, sub, rg, ws, endpoint, headers, query, **_) -> Response:
        found = self.emulator.find_workspace(sub, rg, ws)
        if isinstance(found, Response):
            return found
        with self.lock:
            if self.endpoints.pop(endpoint, None) is None:
                return Response(204)
            for key in [k for k in self.deployments if k[0] == endpoint]:
                del self.deployments[key]
            self.keys.pop(endpoint, None)
        return self._deleting(query)

    def list_keys(self, sub, rg, ws, endpoint, headers, **_) -> Response:
        refused = self._refused(sub, rg, ws, endpoint, headers)
        return refused or json_response(200, {"primaryKey": self.keys[endpoint],
                                   "secondaryKey": self.keys[endpoint][::-1]})

    # -- deployments ---------------------------------------------------------------------

    def put_deployment(self, sub, rg, ws, endpoint, deployment, headers, body, query, **_
                       ) -> Response:
        refused = self._refused(sub, rg, ws, endpoint, headers)
        if refused:
            return refused
        found = self.emulator.find_workspace(sub, rg, ws)
        sent = json.loads(body)
        properties = sent.get("properties", {})
        wanted = (sent.get("sku") or {}).get("capacity", 1)
        if wanted > self.quota_instances:
            return arm_error(400, "QuotaExceeded", f"Not enough quota available for "
                             f"{properties.get('instanceType')} in SubscriptionId: {sub}. "
                             f"Current usage/limit: 0/{self.quota_instances}. Additional "
                             f"needed: {wanted}")
        with self.lock:
            resource = {
                "id": f"{found.arm_id}/onlineEndpoints/{endpoint}/deployments/{deployment}",
                "name": deployment,
                "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/"
                        "deployments",
                "location": found.region,
                "kind": sent.get("kind", "Managed"),
                "sku": sent.get("sku") or {"name": "Default", "capacity": 1},
                "tags": sent.get("tags") or {},
                "properties": {"scaleSettings": {"scaleType": "Default"},
                               "containerResourceRequirements": {
                                   "containerResourceRequests": {},
                                   "containerResourceLimits": {}},
                               **properties},
            }
            self.deployments[(endpoint, deployment)] = resource
            failure = (f"the deployment '{deployment}' failed to provision: the container "
                       "exited" if deployment in self.failing_deployments else None)
            operation_id = self._start(resource, failure)
        return self._accepted(resource, operation_id, query)

    def get_deployment(self, sub, rg, ws, endpoint, deployment, headers, **_) -> Response:
        found = self.emulator.find_workspace(sub, rg, ws)
        if isinstance(found, Response):
            return found
        resource = self.deployments.get((endpoint, deployment))
        if resource is None:
            return arm_error(404, "ResourceNotFound", f"deployment '{deployment}' not found")
        return json_response(200, self._current(resource))

    def list_deployments(self, sub, rg, ws, endpoint, headers, **_) -> Response:
        found = self.emulator.find_workspace(sub, rg, ws)
        if isinstance(found, Response):
            return found
        return json_response(200, {"value": [self._current(r) for (e, _), r
                                             in self.deployments.items() if e == endpoint]})

    def delete_deployment(self, sub, rg, ws, endpoint, deployment, headers, query, **_
                          ) -> Response:
        found = self.emulator.find_workspace(sub, rg, ws)
        if isinstance(found, Response):
            return found
        traffic = (self.endpoints.get(endpoint) or {}).get("properties", {}).get("traffic") or {}
        if traffic.get(deployment):
            return arm_error(400, "BadRequest", f"deployment '{deployment}' still takes "
                             f"{traffic[deployment]}% of the traffic")
        self.deployments.pop((endpoint, deployment), None)
        return self._deleting(query)

    def _compute_known(self, compute: str | None) -> bool:
        return bool(compute) and compute.rstrip("/").split("/")[-1] in self.emulator.computes

    # -- scoring -------------------------------------------------------------------------

    def score(self, endpoint, headers, body, **_) -> Response:
        if endpoint not in self.endpoints:
            return Response(404, b"endpoint not found")
        key = (headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        if key not in (self.keys[endpoint], self.keys[endpoint][::-1]):
            return Response(401, b"invalid key")
        traffic = self.endpoints[endpoint]["properties"].get("traffic") or {}
        live = [d for d, share in traffic.items() if share > 0]
        wanted = headers.get("azureml-model-deployment")
        name = wanted or (live[0] if live else None)
        if name is None:
            return Response(424, b"no deployment takes traffic")
        deployment = self.deployments.get((endpoint, name))
        if deployment is None or self._current(deployment)["properties"][
                "provisioningState"] != "Succeeded":
            return Response(424, f"deployment {name} is not ready".encode())
        payload = json.loads(body)
        if "input_data" not in payload:
            return json_response(400, {"message": "the request needs 'input_data'"})
        import pandas as pd

        split = payload["input_data"]
        frame = pd.DataFrame(split["data"], columns=split.get("columns"),
                             index=split.get("index"))
        model = self._model(deployment["properties"]["model"])
        predictions = model.predict(frame)
        values = predictions.tolist() if hasattr(predictions, "tolist") else list(predictions)
        return json_response(200, values)

    def _model(self, arm_model_id: str):
        """The real MLflow model behind a workspace model id (…/models/NAME/versions/V)."""
        if arm_model_id not in self.models:
            import mlflow

            parts = arm_model_id.rstrip("/").split("/")
            name, version = parts[-3], parts[-1]
            client = mlflow.MlflowClient(tracking_uri=self.emulator.mlflow_url)
            source = client.get_model_version(name, version).source
            model_id = source.removeprefix("models:/")
            folder = self.emulator.blobs / "ExperimentRun" / f"dcid.{model_id}"
            if not (folder / "MLmodel").exists():  # registered from a run's artifact path
                run_id, _, path = source.removeprefix("runs:/").partition("/")
                folder = self.emulator.blobs / "ExperimentRun" / f"dcid.{run_id}" / path
            self.models[arm_model_id] = mlflow.pyfunc.load_model(str(folder))
        return self.models[arm_model_id]


def add_endpoint_routes(emulator: AzureEmulator) -> Endpoints:
    """Teach the emulator online endpoints; the returned object holds their state."""
    state = Endpoints(emulator)
    emulator.parts.append(state)
    emulator.route("GET", r"/operations/(?P<operation_id>[^/]+)", state.operation)
    emulator.route("GET", WORKSPACE_PATH + r"/onlineEndpoints", state.list_endpoints)
    emulator.route("PUT", ENDPOINT, state.put_endpoint)
    emulator.route("GET", ENDPOINT, state.get_endpoint)
    emulator.route("DELETE", ENDPOINT, state.delete_endpoint)
    emulator.route("POST", ENDPOINT + r"/listKeys", state.list_keys)
    emulator.route("GET", ENDPOINT + r"/deployments", state.list_deployments)
    emulator.route("PUT", DEPLOYMENT, state.put_deployment)
    emulator.route("GET", DEPLOYMENT, state.get_deployment)
    emulator.route("DELETE", DEPLOYMENT, state.delete_deployment)
    emulator.route("POST", r"/score/(?P<endpoint>[^/]+)", state.score, plane=OPEN)
    return state
