"""The emulator's core: an HTTPS server on 127.0.0.1 with a self-signed certificate, its
route table and the checks Azure makes before any handler runs, and the routes every
workspace has:

- the cloud metadata (``ARM_CLOUD_METADATA_URL``) of a custom cloud whose resource manager and
  authority are the emulator itself, and the identity routes of :mod:`.identity`;
- ARM look-ups of subscriptions and workspaces, and the workspace's service discovery;
- the MLflow REST API under Azure ML's ``/mlflow/v2.0/subscriptions/…/workspaces/…`` prefix,
  forwarded to a real ``mlflow server``, runs' artifact URIs given in Azure ML's form;
- the artifact service and blob store of :mod:`.storage`.

Every route belongs to a plane. ARM calls need an ``api-version`` and a token for the
management audience; data-plane calls (MLflow, artifacts, SDK v1 model management) a token
for the management or the Azure ML audience, as the service takes both; open routes (cloud
metadata, sign-in, SAS blob URLs, scoring with keys) check what they check themselves.

Every request is logged. A request it does not emulate is answered 404 ``NotEmulated`` and
kept in ``not_emulated``, so the test that caused it can fail.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path

from servers import free_port

from .identity import IDENTITY_HEADER, TENANT, Identity
from .network import BLOB_ACCOUNT, STORAGE_SUFFIX, Handler, Tunnel, write_self_signed_certificate
from .responses import Request, Response, arm_error, data_plane_error, json_response
from .storage import Storage

CLOUD = "MlmagicEmulator"
PORTAL = "https://portal.azure.emulator.test"
AML_AUDIENCE = "https://ml.azure.emulator.test"  # what azure-ai-ml derives from PORTAL
PROVIDER = "providers/Microsoft.MachineLearningServices"
WORKSPACE_PATH = (
    r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/" + PROVIDER
    + r"/workspaces/(?P<ws>[^/?]+)"
)
ARM, DATA, OPEN = "arm", "data", "open"
MANAGED_IDENTITY_VARIABLES = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT",
                              "MSI_SECRET")
SERVICE_PRINCIPAL_VARIABLES = ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET",
                               "AZURE_AUTHORITY_HOST")
LOGGED_MODELS = re.compile(r"api/2\.0/mlflow/logged-models(/.*)?")
# Azure ML's rule for experiment names: a letter or digit, then letters, digits, _ and -.
EXPERIMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,254}")
# and for model names (its REST API's pattern for workspaces/models): the same
MODEL_NAME = EXPERIMENT_NAME
# What each MLflow create call names, the rule for it, and what Azure ML says of a name it
# refuses.
NAMED = {
    "mlflow/experiments/create": ("experiment", EXPERIMENT_NAME, "an experiment name starts "
                                  "with a letter or a digit and holds only letters, digits, "
                                  "underscores and dashes."),
    "mlflow/registered-models/create": ("model", MODEL_NAME, "a model name starts with a "
                                        "letter or a digit and holds only letters, digits, "
                                        "underscores and dashes, at most 255."),
}


@dataclass
class Workspace:
    """An Azure ML workspace the emulator knows."""

    subscription: str
    resource_group: str
    name: str
    region: str = "westeurope"

    @property
    def arm_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}/"
            f"{PROVIDER}/workspaces/{self.name}"
        )


@dataclass
class Route:
    method: str
    pattern: re.Pattern
    handler: Callable[..., Response]
    plane: str


class AzureEmulator:
    """The emulator: ``start()`` it, put ``environment()`` into ``os.environ``, ``stop()`` it.

    ``logged_models=False`` answers MLflow 3's ``/api/2.0/mlflow/logged-models`` routes 404
    with an empty body, as Azure ML's MLflow service did through 2026 (attribute of the same
    name)."""

    def __init__(self, root: Path, mlflow_url: str, workspace: Workspace, *,
                 logged_models: bool = True) -> None:
        self.root = root
        self.mlflow_url = mlflow_url.rstrip("/")
        self.workspaces = [workspace]
        self.logged_models = logged_models
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.requests: list[Request] = []
        self.not_emulated: list[Request] = []
        self.deny_mlflow = False  # the identity has no role on the workspace
        self.unreachable = False  # every connection drops unanswered, as with a host that is down
        self.computes: set[str] = set()  # attached compute names
        self.identity = Identity(self.url)
        self.service_principal = self.identity.add_principal()
        self.storage = Storage(self, root)
        self.certificate = root / "emulator-ca.pem"
        self._servers: list[ThreadingHTTPServer] = []
        self._proxy: ThreadingHTTPServer | None = None
        self.routes: list[Route] = []
        self.parts: list = []  # what add_*_routes added: each has clear()
        self._add_core_routes()

    @property
    def blobs(self) -> Path:
        """The blob store's folder (origin/container/path)."""
        return self.storage.blobs

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> AzureEmulator:
        """Listen on 127.0.0.1 with a fresh self-signed certificate, and start the proxy that
        tunnels storage host names here."""
        key_file = self.root / "emulator-key.pem"
        write_self_signed_certificate(self.certificate, key_file)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certificate, key_file)
        server = self._serve(Handler, self.port)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._proxy = self._serve(Tunnel, free_port())
        for each in self._servers:
            threading.Thread(target=each.serve_forever, daemon=True).start()
        return self

    def _serve(self, handler: type, port: int) -> ThreadingHTTPServer:
        owned = type(handler.__name__, (handler,), {"owner": self})
        server = ThreadingHTTPServer(("127.0.0.1", port), owned)
        server.daemon_threads = True
        self._servers.append(server)
        return server

    def stop(self) -> None:
        """Stop listening."""
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()

    def environment(self, *, service_principal: bool = False) -> dict[str, str]:
        """The public settings that point the Azure SDKs at this emulator, signing in as its
        managed identity, or with ``service_principal`` as its service principal (tenant,
        client id and secret, and the emulator as the authority host)."""
        return {
            "ARM_CLOUD_METADATA_URL": f"{self.url}/metadata/endpoints?api-version=2019-05-01",
            "AZUREML_CURRENT_CLOUD": CLOUD,
            "REQUESTS_CA_BUNDLE": str(self.certificate),
            "SSL_CERT_FILE": str(self.certificate),
            **(self._principal_variables() if service_principal else self._identity_variables()),
            # Storage host names (…blob.core.emulator.test) reach the emulator through its
            # proxy, for the SDKs that build blob URLs from the account name.
            **{name: f"http://127.0.0.1:{self._proxy.server_port}"
               for name in ("HTTPS_PROXY", "https_proxy")},
            **{name: "127.0.0.1,localhost" for name in ("NO_PROXY", "no_proxy")},
        }

    def _identity_variables(self) -> dict[str, str]:
        endpoint = f"{self.url}/msi/token"
        return dict(zip(MANAGED_IDENTITY_VARIABLES,
                        (endpoint, IDENTITY_HEADER, endpoint, IDENTITY_HEADER), strict=True))

    def _principal_variables(self) -> dict[str, str]:
        return dict(zip(SERVICE_PRINCIPAL_VARIABLES, (TENANT, *self.service_principal, self.url),
                        strict=True))

    def reset(self, *, logged_models: bool = True) -> None:
        """A fresh workspace's settings and an empty request log, for the next test; the
        parts forget what they hold."""
        self.requests.clear()
        self.not_emulated.clear()
        self.identity.token_lifetime = 3600.0
        self.identity.refuse_tokens = self.deny_mlflow = self.unreachable = False
        self.logged_models = logged_models
        for part in self.parts:
            part.clear()

    def config_json(self, workspace: Workspace | None = None) -> dict[str, str]:
        """The workspace ``config.json`` that the Azure ML SDKs and the portal write."""
        workspace = workspace or self.workspaces[0]
        return {
            "subscription_id": workspace.subscription,
            "resource_group": workspace.resource_group,
            "workspace_name": workspace.name,
        }

    def tracking_uri(self, workspace: Workspace | None = None) -> str:
        """The workspace's MLflow tracking URI, as its ARM resource gives it."""
        workspace = workspace or self.workspaces[0]
        return f"azureml://127.0.0.1:{self.port}/mlflow/v1.0{workspace.arm_id}"

    def paths(self, prefix: str = "") -> list[str]:
        """The paths requested so far (those starting with ``prefix``)."""
        return [r.path for r in self.requests if r.path.startswith(prefix)]

    # -- routing -------------------------------------------------------------------------

    def route(self, method: str, pattern: str, handler: Callable[..., Response], *,
              plane: str = ARM, first: bool = False) -> None:
        """Answer ``method`` requests whose path matches ``pattern`` with ``handler``, after
        the checks of its ``plane`` (ARM, DATA or OPEN); ``first``: ahead of the others."""
        route = Route(method, re.compile(pattern + r"/?$"), handler, plane)
        self.routes.insert(0 if first else len(self.routes), route)

    def serve(self, method: str, path: str, query: dict[str, str], headers, body: bytes
              ) -> Response:
        """Log a request, answer it, and keep it in ``not_emulated`` if it was not."""
        record = Request(method, path, query, headers.get("Authorization"))
        self.requests.append(record)
        try:
            response = self.handle(method, path, query, headers, body)
        except Exception as error:  # an emulator bug must show as a failing request
            response = arm_error(500, "EmulatorError", repr(error))
        record.status = response.status
        if response.status == 404 and b"NotEmulated" in response.body:
            self.not_emulated.append(record)
        return response

    def handle(self, method: str, path: str, query: dict[str, str], headers, body: bytes
               ) -> Response:
        """The answer of the first route that matches, if its plane's checks pass."""
        for route in self.routes:
            match = route.pattern.match(path)
            if route.method == method and match:
                return self._refused(route.plane, query, headers) or route.handler(
                    query=query, headers=headers, body=body, **match.groupdict())
        return arm_error(404, "NotEmulated", f"the emulator does not emulate {method} {path}")

    def _refused(self, plane: str, query, headers) -> Response | None:
        if plane == OPEN:
            return None
        if plane == DATA:
            refused = self.identity.refusal(headers, {self.url, AML_AUDIENCE})
            return refused and data_plane_error(401, *refused)
        refused = self.identity.refusal(headers, {self.url})
        if refused:
            return arm_error(401, *refused)
        if not query.get("api-version"):
            return arm_error(400, "MissingApiVersionParameter", "The api-version query "
                             "parameter (?api-version=) is required for all requests.")
        return None

    def _add_core_routes(self) -> None:
        identity = self.identity
        self.route("GET", r"/metadata/endpoints", self._cloud_metadata, plane=OPEN)
        for method in ("GET", "POST"):  # POST: azureml-core's MSI_ENDPOINT flavour
            self.route(method, r"/msi/token", identity.managed_identity_token, plane=OPEN)
        self.route("GET", r"/(?P<tenant>[^/]+)/v2\.0/\.well-known/openid-configuration",
                   identity.openid_configuration, plane=OPEN)
        self.route("POST", r"/(?P<tenant>[^/]+)/oauth2/v2\.0/token",
                   identity.client_credentials_token, plane=OPEN)
        self.route("GET", r"/subscriptions", self._subscriptions)
        self.route("GET", WORKSPACE_PATH, self._workspace)
        self.route("GET", r"/discovery/workspaces/(?P<id>[^/]+)", self._discovery, plane=OPEN)
        for method in ("GET", "POST", "PATCH", "DELETE"):
            self.route(method, r"/mlflow/v2\.0" + WORKSPACE_PATH + r"/(?P<api>api/.+)",
                       self._mlflow, plane=DATA)
        self._add_storage_routes()

    def _add_storage_routes(self) -> None:
        storage = self.storage
        artifacts = (r"/artifact/v2\.0" + WORKSPACE_PATH
                     + r"/artifacts/(?P<origin>[^/]+)/(?P<container>[^/]+)")
        run_artifacts = (r"/history/v1\.0" + WORKSPACE_PATH + r"/experiment(?:s|ids)/"
                         r"(?P<experiment>[^/]+)/runs/(?P<run>[^/]+)/artifacts")
        for prefix in (artifacts, run_artifacts):
            self.route("POST", prefix + r"/batch/metadata", storage.create, plane=DATA)
            self.route("GET", prefix + r"/contentinfo", storage.content_info, plane=DATA)
            self.route("GET", prefix + r"/prefix/contentinfo", storage.under, plane=DATA)
            self.route("GET", prefix, storage.listed, plane=DATA)
        blob = "/" + re.escape(BLOB_ACCOUNT) + r"/(?P<name>.+)"
        self.route("PUT", blob, storage.put_blob, plane=OPEN)
        self.route("GET", blob, storage.get_blob, plane=OPEN)
        self.route("HEAD", blob, storage.get_blob, plane=OPEN)

    # -- ARM -----------------------------------------------------------------------------

    def _cloud_metadata(self, **_) -> Response:
        return json_response(200, [{
            "name": CLOUD,
            "portal": PORTAL,
            "resourceManager": f"{self.url}/",
            "authentication": {
                "loginEndpoint": f"{self.url}/",
                "audiences": [f"{self.url}/"],
                "tenant": "common",
                "identityProvider": "AAD",
            },
            "suffixes": {"storage": STORAGE_SUFFIX, "keyVaultDns": "vault.emulator.test"},
            "media": f"{self.url}/media",
            "graph": f"{self.url}/graph/",
            "sqlManagement": f"{self.url}/sql",
            "gallery": f"{self.url}/gallery/",
            "batch": f"{self.url}/batch/",
        }])

    def find_workspace(self, sub: str, rg: str, ws: str) -> Workspace | Response:
        """The workspace, or ARM's not-found error for the first part that is wrong."""
        if not any(w.subscription == sub for w in self.workspaces):
            return arm_error(404, "SubscriptionNotFound", f"The subscription '{sub}' could not "
                             "be found.")
        if not any(w.subscription == sub and w.resource_group.lower() == rg.lower()
                   for w in self.workspaces):
            return arm_error(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not "
                             "be found.")
        for workspace in self.workspaces:
            if (workspace.subscription, workspace.resource_group.lower(), workspace.name) == (
                    sub, rg.lower(), ws):
                return workspace
        return arm_error(404, "ResourceNotFound", f"The Resource '{PROVIDER[10:]}/workspaces/"
                         f"{ws}' under resource group '{rg}' was not found.")

    def _subscriptions(self, **_) -> Response:
        subscriptions = sorted({w.subscription for w in self.workspaces})
        return json_response(200, {"value": [
            {"id": f"/subscriptions/{sub}", "subscriptionId": sub, "tenantId": TENANT,
             "displayName": "Emulated subscription", "state": "Enabled"}
            for sub in subscriptions]})

    def _workspace(self, sub, rg, ws, **_) -> Response:
        found = self.find_workspace(sub, rg, ws)
        if isinstance(found, Response):
            return found
        return json_response(200, self.workspace_resource(found))

    def workspace_resource(self, workspace: Workspace) -> dict:
        """The ARM resource of a workspace, as Azure ML's 2024 API versions return it."""
        return {
            "id": workspace.arm_id,
            "name": workspace.name,
            "type": "Microsoft.MachineLearningServices/workspaces",
            "location": workspace.region,
            "kind": "Default",
            "tags": {},
            "identity": {"type": "SystemAssigned", "principalId": "0000", "tenantId": "0000"},
            "sku": {"name": "Basic", "tier": "Basic"},
            "properties": {
                "friendlyName": workspace.name,
                "description": "",
                "workspaceId": f"ws-{workspace.name}",
                "storageAccount": f"/subscriptions/{workspace.subscription}/resourceGroups/"
                                  f"{workspace.resource_group}/providers/Microsoft.Storage/"
                                  f"storageAccounts/st{workspace.name}",
                "discoveryUrl": f"{self.url}/discovery/workspaces/{workspace.name}",
                "mlFlowTrackingUri": self.tracking_uri(workspace),
                "provisioningState": "Succeeded",
                "publicNetworkAccess": "Enabled",
                "hbiWorkspace": False,
            },
        }

    def _discovery(self, **_) -> Response:
        return json_response(200, {name: self.url for name in (
            "api", "catalog", "experimentation", "gallery", "history", "hyperdrive",
            "labeling", "modelmanagement", "pipelines", "studio")})

    # -- MLflow, forwarded ---------------------------------------------------------------

    def _mlflow(self, sub, rg, ws, api, query, headers, body, **_) -> Response:
        found = self.find_workspace(sub, rg, ws)
        if isinstance(found, Response):
            return found
        if self.deny_mlflow:
            return arm_error(403, "AuthorizationFailed", "The client does not have "
                             "authorization to perform action 'Microsoft.MachineLearningServices"
                             "/workspaces/experiments/read'.")
        if not self.logged_models and LOGGED_MODELS.fullmatch(api):
            return Response(404, b"")
        refused = _refused_name(api, body)
        if refused:
            return refused
        status, payload = self._forward(api, query, headers["X-Method"], body)
        if status == 200 and payload:
            payload = json.dumps(self._azure_artifact_uris(json.loads(payload), found)).encode()
        return Response(status, payload, {"Content-Type": "application/json"})

    def _forward(self, api: str, query, method: str, body: bytes) -> tuple[int, bytes]:
        url = f"{self.mlflow_url}/{api}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        forwarded = urllib.request.Request(url, data=body or None, method=method,
                                           headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(forwarded, timeout=30) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def _azure_artifact_uris(self, payload, workspace: Workspace):
        """Give every artifact location in Azure ML's form (run history's), as the real
        service does."""
        if isinstance(payload, list):
            return [self._azure_artifact_uris(item, workspace) for item in payload]
        if isinstance(payload, dict):
            return {key: self._azure_artifact_uris(value, workspace)
                    for key, value in payload.items()}
        if not isinstance(payload, str) or not payload.startswith("mlflow-artifacts:/"):
            return payload
        host = urllib.parse.urlparse(self.url).netloc
        run = re.match(r"mlflow-artifacts:/+([^/]+)/(?:models/)?([^/]+)/artifacts(.*)", payload)
        if run:  # a run's artifacts, or a logged model's (kept like a run's, under its id)
            return (f"azureml://{host}/mlflow/v2.0{workspace.arm_id}/experiments/{run[1]}/"
                    f"runs/{run[2]}/artifacts{run[3]}")
        return payload


def _refused_name(api: str, body: bytes) -> Response | None:
    """Azure ML's refusal of an experiment or model name it does not take, if ``api`` creates
    one."""
    for call, (kind, rule, why) in NAMED.items():
        if api.endswith(call):
            name = json.loads(body or b"{}").get("name", "")
            if not rule.fullmatch(name):
                return json_response(400, {"error_code": "INVALID_PARAMETER_VALUE",
                                           "message": f"The {kind} name '{name}' is invalid: "
                                                      f"{why}"})
    return None
