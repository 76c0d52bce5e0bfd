"""Online endpoints for the Azure emulator: managed and Kubernetes online endpoints, their
deployments and traffic, keys, asynchronous provisioning polled as Azure's long-running
operations are, and a scoring route that runs the real MLflow model behind Azure ML's
``input_data`` protocol, sharing requests between deployments by their traffic.

What Azure refuses is refused: traffic that does not sum to 0 or 100 or names a deployment
the endpoint does not have, an instance type that does not exist, more instances than the
quota; a no-code deployment of a model that is not an MLflow model fails to provision.

``add_endpoint_routes(emulator)`` adds the rows to the emulator's route table.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field

from .emulator import OPEN, PROVIDER, WORKSPACE_PATH, AzureEmulator, Workspace
from .models import build_log, is_mlflow_model, model_folder, requirements_of, unavailable
from .responses import Response, arm_error, json_response

ENDPOINT = WORKSPACE_PATH + r"/onlineEndpoints/(?P<endpoint>[^/]+)"
DEPLOYMENT = ENDPOINT + r"/deployments/(?P<deployment>[^/]+)"
OPERATION = (r"/subscriptions/(?P<sub>[^/]+)/" + PROVIDER
             + r"/locations/(?P<region>[^/]+)/mfeOperationsStatus/(?P<operation_id>[^/]+)")
# The VM sizes managed online deployments take (aka.ms/azureml-managed-online-endpoint-sku-list)
MANAGED_INSTANCE_TYPES = frozenset(name.lower() for name in (
    *(f"Standard_DS{n}_v2" for n in (1, 2, 3, 4, 5)),
    *(f"Standard_F{n}s_v2" for n in (2, 4, 8, 16, 32, 48, 64, 72)),
    *(f"Standard_E{n}s_v3" for n in (2, 4, 8, 16, 32, 48, 64)),
    *(f"Standard_NC{n}s_v3" for n in (6, 12, 24)),
    *(f"Standard_NC{n}as_T4_v3" for n in (4, 8, 16, 64)),
    *(f"Standard_NC{n}ads_A100_v4" for n in (24, 48, 96)),
    "Standard_ND40rs_v2", "Standard_ND96asr_v4", "Standard_ND96amsr_A100_v4",
))
KUBERNETES_INSTANCE_TYPES = frozenset({"defaultinstancetype"})  # an attached cluster's own


@dataclass
class Operation:
    """A long-running operation: "InProgress" until ``ready_at``, then its outcome."""

    ready_at: float
    failure: tuple[str, str] | None = None  # (code, message)

    def status(self) -> str:
        if time.time() < self.ready_at:
            return "InProgress"
        return "Failed" if self.failure else "Succeeded"


@dataclass
class Endpoints:
    """What the emulated workspace holds: endpoints, deployments, keys, operations."""

    emulator: AzureEmulator
    provisioning_seconds: float = 1.5
    quota_instances: int = 20  # the subscription's core quota, in instances
    endpoints: dict[str, dict] = field(default_factory=dict)
    deployments: dict[tuple[str, str], dict] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    operations: dict[str, Operation] = field(default_factory=dict)
    models: dict[str, object] = field(default_factory=dict)
    credit: dict[str, dict[str, int]] = field(default_factory=dict)  # the traffic's rotation
    lock: threading.Lock = field(default_factory=threading.Lock)

    def clear(self) -> None:
        """Forget every endpoint (between tests)."""
        for held in (self.endpoints, self.deployments, self.keys, self.credit):
            held.clear()

    # -- long-running operations ---------------------------------------------------------

    def _start(self, resource: dict, failure: tuple[str, str] | None = None) -> str:
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

    def _poll_url(self, workspace: Workspace, operation_id: str, query) -> str:
        return (f"{self.emulator.url}/subscriptions/{workspace.subscription}/{PROVIDER}/"
                f"locations/{workspace.region}/mfeOperationsStatus/{operation_id}"
                f"?api-version={query.get('api-version', '')}")

    def _accepted(self, workspace: Workspace, resource: dict, operation_id: str, query
                  ) -> Response:
        poll = self._poll_url(workspace, operation_id, query)
        return json_response(201, self._current(resource), **{"Azure-AsyncOperation": poll,
                                                               "Retry-After": "1"})

    def _deleting(self, workspace: Workspace, query) -> Response:
        operation_id = secrets.token_hex(8)
        self.operations[operation_id] = Operation(time.time() + 0.2)
        poll = self._poll_url(workspace, operation_id, query)
        return Response(202, b"", {"Azure-AsyncOperation": poll, "Location": poll,
                                   "Retry-After": "1"})

    def operation(self, operation_id, **_) -> Response:
        """An operation's status, as ARM's ``Azure-AsyncOperation`` URL answers."""
        found = self.operations.get(operation_id)
        if found is None:
            return arm_error(404, "OperationNotFound", f"no operation {operation_id}")
        body = {"status": found.status()}
        if found.status() == "Failed":
            code, message = found.failure
            body["error"] = {"code": code, "message": message}
        return json_response(200, body, **{"Retry-After": "1"})

    # -- endpoints -----------------------------------------------------------------------

    def put_endpoint(self, sub, rg, ws, endpoint, body, query, **_) -> Response:
        """Create or update an endpoint (and its traffic)."""
        found = self.emulator.find_workspace(sub, rg, ws)
        if isinstance(found, Response):
            return found
        sent = json.loads(body)
        properties = sent.get("properties", {})
        compute = properties.get("compute")
        if compute and not self._compute_known(compute):
            return arm_error(400, "ComputeNotFound", f"compute '{compute}' is not attached to "
                             "the workspace")
        with self.lock:
            refused = self._traffic_refused(endpoint, properties.get("traffic") or {})
            if refused:
                return refused
            existing = self.endpoints.get(endpoint)
            resource = self._endpoint_resource(found, endpoint, sent)
            self.endpoints[endpoint] = resource
            self.keys.setdefault(endpoint, secrets.token_urlsafe(24))
            operation_id = self._start(resource)
            if existing is not None:  # an update is quick
                self.operations[operation_id].ready_at = time.time()
        return self._accepted(found, resource, operation_id, query)

    def _endpoint_resource(self, workspace: Workspace, endpoint: str, sent: dict) -> dict:
        return {
            "id": f"{workspace.arm_id}/onlineEndpoints/{endpoint}",
            "name": endpoint,
            "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
            "location": workspace.region,
            "kind": sent.get("kind", "Managed"),
            "tags": sent.get("tags") or {},
            "identity": {"type": "SystemAssigned", "principalId": "0", "tenantId": "0"},
            "properties": {
                **sent.get("properties", {}),
                "scoringUri": f"{self.emulator.url}/score/{endpoint}",
                "swaggerUri": f"{self.emulator.url}/score/{endpoint}/swagger.json",
            },
        }

    def _traffic_refused(self, endpoint: str, traffic: dict[str, int]) -> Response | None:
        """Azure's check of an endpoint's traffic: existing deployments, 0 to 100 each,
        summing to 0 or 100."""
        unknown = [d for d in traffic if (endpoint, d) not in self.deployments]
        if unknown:
            return arm_error(400, "BadArgument", f"Traffic names deployments that do not exist "
                             f"in endpoint '{endpoint}': {', '.join(unknown)}.")
        shares = list(traffic.values())
        if any(not isinstance(s, int) or not 0 <= s <= 100 for s in shares) or sum(
                shares) not in (0, 100):
            return arm_error(400, "BadArgument", f"Traffic of endpoint '{endpoint}' must be "
                             f"whole percentages that sum up to 0 or 100, not {sum(shares)}.")
        return None

    def _refused(self, sub, rg, ws, endpoint) -> Response | None:
        """The error for a request about a missing endpoint (or workspace)."""
        found = self.emulator.find_workspace(sub, rg, ws)
        if isinstance(found, Response):
            return found
        if endpoint not in self.endpoints:
            return arm_error(404, "ResourceNotFound", f"online endpoint '{endpoint}' not found")
        return None

    def get_endpoint(self, sub, rg, ws, endpoint, **_) -> Response:
        """One endpoint."""
        refused = self._refused(sub, rg, ws, endpoint)
        return refused or json_response(200, self._current(self.endpoints[endpoint]))

    def list_endpoints(self, sub, rg, ws, **_) -> Response:
        """The workspace's endpoints."""
        found = self.emulator.find_workspace(sub, rg, ws)
        if isinstance(found, Response):
            return found
        return json_response(200, {"value": [self._current(e) for e in self.endpoints.values()]})

    def delete_endpoint(self, sub, rg, ws, endpoint, query, **_) -> Response:
        """Delete an endpoint with its deployments."""
        found = self.emulator.find_workspace(sub, rg, ws)
        if isinstance(found, Response):
            return found
        with self.lock:
            if self.endpoints.pop(endpoint, None) is None:
                return Response(204)
            for key in [k for k in self.deployments if k[0] == endpoint]:
                del self.deployments[key]
            self.keys.pop(endpoint, None)
        return self._deleting(found, query)

    def list_keys(self, sub, rg, ws, endpoint, **_) -> Response:
        """An endpoint's keys."""
        refused = self._refused(sub, rg, ws, endpoint)
        return refused or json_response(200, {"primaryKey": self.keys[endpoint],
                                              "secondaryKey": self.keys[endpoint][::-1]})

    # -- deployments ---------------------------------------------------------------------

    def put_deployment(self, sub, rg, ws, endpoint, deployment, body, query, **_
                       ) -> Response:
        """Create or update a deployment; it provisions asynchronously."""
        refused = self._refused(sub, rg, ws, endpoint)
        if refused:
            return refused
        found = self.emulator.find_workspace(sub, rg, ws)
        sent = json.loads(body)
        refused = self._instances_refused(sub, sent)
        if refused:
            return refused
        model = self._model_of(sent.get("properties", {}))
        if isinstance(model, Response):
            return model
        with self.lock:
            resource = self._deployment_resource(found, endpoint, deployment, sent)
            self.deployments[(endpoint, deployment)] = resource
            operation_id = self._start(resource, self._failure(resource, model))
        return self._accepted(found, resource, operation_id, query)

    def _deployment_resource(self, workspace: Workspace, endpoint: str, deployment: str,
                             sent: dict) -> dict:
        return {
            "id": f"{workspace.arm_id}/onlineEndpoints/{endpoint}/deployments/{deployment}",
            "name": deployment,
            "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments",
            "location": workspace.region,
            "kind": sent.get("kind", "Managed"),
            "sku": sent.get("sku") or {"name": "Default", "capacity": 1},
            "tags": sent.get("tags") or {},
            "properties": {"scaleSettings": {"scaleType": "Default"},
                           "containerResourceRequirements": {
                               "containerResourceRequests": {},
                               "containerResourceLimits": {}},
                           **sent.get("properties", {})},
        }

    def _instances_refused(self, sub: str, sent: dict) -> Response | None:
        """Azure's checks of the instances asked for: a type that exists (a VM size of the
        managed list, or one of the cluster's instance types), within the quota."""
        properties = sent.get("properties", {})
        kubernetes = properties.get("endpointComputeType") == "Kubernetes"
        asked = properties.get("instanceType") or ("defaultinstancetype" if kubernetes else "")
        known = KUBERNETES_INSTANCE_TYPES if kubernetes else MANAGED_INSTANCE_TYPES
        if asked.lower() not in known:
            where = "on the cluster" if kubernetes else "for managed online deployments"
            return arm_error(400, "BadArgument", f"The instance type '{asked}' is not "
                             f"supported {where}. See aka.ms/azureml-managed-online-endpoint-"
                             "sku-list for the supported instance types.")
        wanted = (sent.get("sku") or {}).get("capacity", 1)
        if wanted > self.quota_instances:
            return arm_error(400, "QuotaExceeded", f"Not enough quota available for {asked} "
                             f"in SubscriptionId: {sub}. Current usage/limit: "
                             f"0/{self.quota_instances}. Additional needed: {wanted}")
        return None

    def _model_of(self, properties: dict) -> tuple[str, str] | Response:
        """The (name, version) of the model a deployment names, if the workspace has it."""
        parts = str(properties.get("model") or "").rstrip("/").split("/")
        if len(parts) < 4 or parts[-2] != "versions":
            return arm_error(400, "BadArgument", "A deployment needs a registered model "
                             "version (…/models/NAME/versions/VERSION).")
        name, version = parts[-3], parts[-1]
        if model_folder(self.emulator, name, version) is None:
            return arm_error(404, "UserError", f"Could not find asset with ID: azureml:{name}:"
                             f"{version}")
        return name, version

    def _failure(self, resource: dict, model: tuple[str, str]) -> tuple[str, str] | None:
        """Why provisioning will fail. A no-code deployment (no scoring script, no
        environment) builds an image with the model's pip requirements, then serves the model
        with MLflow's scoring server, which needs an MLflow model."""
        properties = resource["properties"]
        if properties.get("codeConfiguration") or properties.get("environmentId"):
            return None
        folder = model_folder(self.emulator, *model)
        if not is_mlflow_model(folder):
            return "ResourceNotReady", (
                "User container has crashed or terminated: the MLflow scoring server found no "
                f"MLmodel file in model {model[0]}:{model[1]}; a deployment without a scoring "
                "script and an environment needs an MLflow model. Please see troubleshooting "
                "guide, available here: https://aka.ms/oe-tsg#error-resourcenotready")
        missing = unavailable(requirements_of(folder))
        if missing:
            return "ImageBuildFailure", (
                f"Image build failed: {build_log(missing)}. Please see troubleshooting guide, "
                "available here: https://aka.ms/oe-tsg#error-imagebuildfailure")
        return None

    def get_deployment(self, sub, rg, ws, endpoint, deployment, **_) -> Response:
        """One deployment."""
        found = self.emulator.find_workspace(sub, rg, ws)
        if isinstance(found, Response):
            return found
        resource = self.deployments.get((endpoint, deployment))
        if resource is None:
            return arm_error(404, "ResourceNotFound", f"deployment '{deployment}' not found")
        return json_response(200, self._current(resource))

    def list_deployments(self, sub, rg, ws, endpoint, **_) -> Response:
        """An endpoint's deployments."""
        found = self.emulator.find_workspace(sub, rg, ws)
        if isinstance(found, Response):
            return found
        return json_response(200, {"value": [self._current(r) for (e, _), r
                                             in self.deployments.items() if e == endpoint]})

    def delete_deployment(self, sub, rg, ws, endpoint, deployment, query, **_) -> Response:
        """Delete a deployment that takes no traffic."""
        found = self.emulator.find_workspace(sub, rg, ws)
        if isinstance(found, Response):
            return found
        traffic = (self.endpoints.get(endpoint) or {}).get("properties", {}).get("traffic") or {}
        if traffic.get(deployment):
            return arm_error(400, "BadRequest", f"deployment '{deployment}' still takes "
                             f"{traffic[deployment]}% of the traffic")
        self.deployments.pop((endpoint, deployment), None)
        return self._deleting(found, query)

    def _compute_known(self, compute: str | None) -> bool:
        return bool(compute) and compute.rstrip("/").split("/")[-1] in self.emulator.computes

    # -- scoring -------------------------------------------------------------------------

    def score(self, endpoint, headers, body, **_) -> Response:
        """Score ``input_data`` with the deployment the traffic (or the
        ``azureml-model-deployment`` header) picks; the answer names it in that header."""
        if endpoint not in self.endpoints:
            return Response(404, b"endpoint not found")
        key = (headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        if key not in (self.keys[endpoint], self.keys[endpoint][::-1]):
            return Response(401, b"invalid key")
        name = headers.get("azureml-model-deployment") or self._pick(endpoint)
        if name is None:
            return Response(424, b"no deployment takes traffic")
        deployment = self.deployments.get((endpoint, name))
        if deployment is None or self._current(deployment)["properties"][
                "provisioningState"] != "Succeeded":
            return Response(424, f"deployment {name} is not ready".encode())
        payload = json.loads(body)
        if "input_data" not in payload:
            return json_response(400, {"message": "the request needs 'input_data'"})
        return json_response(200, self._predict(deployment, payload["input_data"]),
                             **{"azureml-model-deployment": name})

    def _pick(self, endpoint: str) -> str | None:
        """The next deployment by the endpoint's traffic (smooth weighted round robin: over
        100 requests, each deployment takes exactly its share)."""
        traffic = self.endpoints[endpoint]["properties"].get("traffic") or {}
        live = {d: share for d, share in traffic.items() if share > 0}
        if not live:
            return None
        with self.lock:
            credit = {d: self.credit.get(endpoint, {}).get(d, 0) + share
                      for d, share in live.items()}
            chosen = max(credit, key=credit.get)
            credit[chosen] -= sum(live.values())
            self.credit[endpoint] = credit
        return chosen

    def _predict(self, deployment: dict, split: dict) -> list:
        import pandas as pd

        frame = pd.DataFrame(split["data"], columns=split.get("columns"),
                             index=split.get("index"))
        predictions = self._model(deployment["properties"]["model"]).predict(frame)
        return predictions.tolist() if hasattr(predictions, "tolist") else list(predictions)

    def _model(self, arm_model_id: str):
        """The real MLflow model behind a workspace model id (…/models/NAME/versions/V)."""
        if arm_model_id not in self.models:
            import mlflow

            parts = arm_model_id.rstrip("/").split("/")
            folder = model_folder(self.emulator, parts[-3], parts[-1])
            self.models[arm_model_id] = mlflow.pyfunc.load_model(str(folder))
        return self.models[arm_model_id]


def add_endpoint_routes(emulator: AzureEmulator) -> Endpoints:
    """Teach the emulator online endpoints; the returned object holds their state."""
    state = Endpoints(emulator)
    emulator.parts.append(state)
    emulator.route("GET", OPERATION, state.operation)
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
