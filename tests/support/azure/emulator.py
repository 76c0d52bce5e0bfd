"""A local HTTPS emulator of the Azure REST surface that Azure ML's real SDKs use.

It serves, on 127.0.0.1 with a self-signed certificate:
- the cloud metadata (``ARM_CLOUD_METADATA_URL``) of a custom cloud whose resource manager is
  the emulator itself, and an App Service-style managed-identity token endpoint;
- ARM look-ups of subscriptions and workspaces, and the workspace's service discovery;
- the MLflow REST API under Azure ML's ``/mlflow/v2.0/subscriptions/…/workspaces/…`` prefix,
  forwarded to a real ``mlflow server``; runs' artifact URIs are given in Azure ML's form;
- the artifact service (``/artifact/v2.0/…``) with a minimal blob store behind SAS URLs.

Every request is logged. A request it does not emulate is answered 404 ``NotEmulated`` and
kept in ``not_emulated``, so the test that caused it can fail. Routes are a table of
(method, pattern, handler): part 2 (online endpoints) adds rows.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
import secrets
import select
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from servers import free_port

CLOUD = "MlmagicEmulator"
PROVIDER = "providers/Microsoft.MachineLearningServices"
WORKSPACE_PATH = (
    r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/" + PROVIDER
    + r"/workspaces/(?P<ws>[^/?]+)"
)
IDENTITY_HEADER = "emulator-identity-header"
TENANT = "72f988bf-0000-4000-8000-000000000e70"
STORAGE_SUFFIX = "core.emulator.test"
# Blobs are addressed path-style, as on Azurite (https://127.0.0.1:PORT/ACCOUNT/container/blob).
# azureml-mlflow downloads only from URLs that contain ".blob.<storage suffix>/", so the
# account segment carries it.
BLOB_ACCOUNT = f"stworkspace.blob.{STORAGE_SUFFIX}"


@dataclass
class Request:
    """One request as the emulator saw it."""

    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    status: int = 0

    @property
    def api_version(self) -> str | None:
        return self.query.get("api-version")


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
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, payload: object, **headers: str) -> Response:
    return Response(status, json.dumps(payload).encode(), {"Content-Type": "application/json",
                                                            **headers})


def arm_error(status: int, code: str, message: str) -> Response:
    return json_response(status, {"error": {"code": code, "message": message}})


class AzureEmulator:
    """The emulator: ``start()`` it, put ``environment()`` into ``os.environ``, ``stop()`` it."""

    def __init__(self, root: Path, mlflow_url: str, workspace: Workspace) -> None:
        self.root = root
        self.mlflow_url = mlflow_url.rstrip("/")
        self.workspaces = [workspace]
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.requests: list[Request] = []
        self.not_emulated: list[Request] = []
        self.token_lifetime = 3600.0
        self.refuse_tokens = False
        self.deny_mlflow = False  # the identity has no role on the workspace
        self.computes: set[str] = set()  # attached compute (Kubernetes) names
        self.tokens: dict[str, float] = {}
        self.blobs = root / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.certificate = root / "emulator-ca.pem"
        self._server: ThreadingHTTPServer | None = None
        self._proxy: ThreadingHTTPServer | None = None
        self.routes: list[tuple[str, re.Pattern, Callable[..., Response]]] = []
        self._add_core_routes()

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> AzureEmulator:
        """Listen on 127.0.0.1 with a fresh self-signed certificate."""
        key_file = self.root / "emulator-key.pem"
        write_self_signed_certificate(self.certificate, key_file)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certificate, key_file)
        emulator = self

        class Handler(_Handler):
            owner = emulator

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

        class Tunnel(_Tunnel):
            owner = emulator

        self._proxy = ThreadingHTTPServer(("127.0.0.1", free_port()), Tunnel)
        self._proxy.daemon_threads = True
        threading.Thread(target=self._proxy.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        for server in (self._server, self._proxy):
            if server is not None:
                server.shutdown()
                server.server_close()
        self._server = self._proxy = None

    def environment(self) -> dict[str, str]:
        """The public settings that point the Azure SDKs at this emulator."""
        return {
            "ARM_CLOUD_METADATA_URL": f"{self.url}/metadata/endpoints?api-version=2019-05-01",
            "AZUREML_CURRENT_CLOUD": CLOUD,
            "REQUESTS_CA_BUNDLE": str(self.certificate),
            "SSL_CERT_FILE": str(self.certificate),
            "IDENTITY_ENDPOINT": f"{self.url}/msi/token",
            "IDENTITY_HEADER": IDENTITY_HEADER,
            "MSI_ENDPOINT": f"{self.url}/msi/token",
            "MSI_SECRET": IDENTITY_HEADER,
            # Storage host names (…blob.core.emulator.test) reach the emulator through its
            # proxy, for the SDKs that build blob URLs from the account name.
            **{name: f"http://127.0.0.1:{self._proxy.server_port}"
               for name in ("HTTPS_PROXY", "https_proxy")},
            **{name: "127.0.0.1,localhost" for name in ("NO_PROXY", "no_proxy")},
        }

    def config_json(self, workspace: Workspace | None = None) -> dict[str, str]:
        """The workspace ``config.json`` that the Azure ML SDKs and the portal write."""
        workspace = workspace or self.workspaces[0]
        return {
            "subscription_id": workspace.subscription,
            "resource_group": workspace.resource_group,
            "workspace_name": workspace.name,
        }

    def paths(self, prefix: str = "") -> list[str]:
        """The paths requested so far (those starting with ``prefix``)."""
        return [r.path for r in self.requests if r.path.startswith(prefix)]

    # -- routing -------------------------------------------------------------------------

    def route(self, method: str, pattern: str, handler: Callable[..., Response]) -> None:
        """Answer ``method`` requests whose path matches ``pattern`` with ``handler``."""
        self.routes.append((method, re.compile(pattern + r"/?$"), handler))

    def _add_core_routes(self) -> None:
        self.route("GET", r"/metadata/endpoints", self._cloud_metadata)
        self.route("GET", r"/msi/token", self._token)
        self.route("POST", r"/msi/token", self._token)  # azureml-core's MSI_ENDPOINT flavour
        self.route("GET", r"/subscriptions", self._subscriptions)
        self.route("GET", WORKSPACE_PATH, self._workspace)
        self.route("GET", r"/discovery/workspaces/(?P<id>[^/]+)", self._discovery)
        for method in ("GET", "POST", "PATCH", "DELETE"):
            self.route(method, r"/mlflow/v2\.0" + WORKSPACE_PATH + r"/(?P<api>api/.+)",
                       self._mlflow)
        artifacts = (r"/artifact/v2\.0" + WORKSPACE_PATH
                     + r"/artifacts/(?P<origin>[^/]+)/(?P<container>[^/]+)")
        run_artifacts = (r"/history/v1\.0" + WORKSPACE_PATH + r"/experiment(?:s|ids)/"
                         r"(?P<experiment>[^/]+)/runs/(?P<run>[^/]+)/artifacts")
        for prefix in (artifacts, run_artifacts):
            self.route("POST", prefix + r"/batch/metadata", self.artifacts_create)
            self.route("GET", prefix + r"/contentinfo", self._artifact_content_info)
            self.route("GET", prefix + r"/prefix/contentinfo", self._artifacts_under)
            self.route("GET", prefix, self._artifacts_list)
        blob = "/" + re.escape(BLOB_ACCOUNT) + r"/(?P<name>.+)"
        self.route("PUT", blob, self._blob_put)
        self.route("GET", blob, self._blob_get)
        self.route("HEAD", blob, self._blob_get)

    def handle(self, method: str, path: str, query: dict[str, str], headers, body: bytes
               ) -> Response:
        for route_method, pattern, handler in self.routes:
            match = pattern.match(path)
            if route_method == method and match:
                return handler(query=query, headers=headers, body=body, **match.groupdict())
        return arm_error(404, "NotEmulated", f"the emulator does not emulate {method} {path}")

    # -- identity and ARM ----------------------------------------------------------------

    def _cloud_metadata(self, **_) -> Response:
        return json_response(200, [{
            "name": CLOUD,
            "portal": "https://portal.azure.emulator.test",
            "resourceManager": f"{self.url}/",
            "authentication": {
                "loginEndpoint": f"{self.url}/login/",
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

    def _token(self, query, headers, body, **_) -> Response:
        query = {**dict(urllib.parse.parse_qsl(body.decode())), **query}
        if IDENTITY_HEADER not in (headers.get("X-IDENTITY-HEADER"), headers.get("Secret")) \
                and headers.get("Metadata") != "true":
            return arm_error(401, "Unauthorized", "the identity header is missing")
        if self.refuse_tokens:
            return json_response(400, {"error": "invalid_request",
                                       "error_description": "Identity not found"})
        expires_on = time.time() + self.token_lifetime
        token = _jwt({"aud": query.get("resource", ""), "tid": TENANT, "oid": "emulator-identity",
                      "exp": int(expires_on), "jti": secrets.token_urlsafe(16)})
        self.tokens[token] = expires_on
        return json_response(200, {
            "access_token": token, "expires_on": str(int(expires_on)),
            "expires_in": str(int(self.token_lifetime)),
            "resource": query.get("resource", ""), "token_type": "Bearer",
            "client_id": "emulator-identity",
        })

    def authorized(self, headers) -> Response | None:
        """None if the request carries a live token the emulator issued, else the ARM error."""
        value = headers.get("Authorization") or ""
        token = value.removeprefix("Bearer ").strip()
        if token not in self.tokens:
            return arm_error(401, "InvalidAuthenticationToken",
                             "The access token is invalid.")
        if self.tokens[token] < time.time():
            return arm_error(401, "ExpiredAuthenticationToken",
                             "The access token expiry UTC time is earlier than current UTC time.")
        return None

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

    def _subscriptions(self, headers, **_) -> Response:
        denied = self.authorized(headers)
        if denied:
            return denied
        subscriptions = sorted({w.subscription for w in self.workspaces})
        return json_response(200, {"value": [self._subscription_resource(sub)
                                             for sub in subscriptions]})

    def _subscription_resource(self, sub: str) -> dict:
        return {"id": f"/subscriptions/{sub}", "subscriptionId": sub, "tenantId": TENANT,
                "displayName": "Emulated subscription", "state": "Enabled"}

    def checked_workspace(self, sub, rg, ws, headers) -> Workspace | Response:
        """The workspace a signed request is about, or the error to answer with."""
        return self.authorized(headers) or self.find_workspace(sub, rg, ws)

    def _workspace(self, sub, rg, ws, headers, **_) -> Response:
        found = self.checked_workspace(sub, rg, ws, headers)
        if isinstance(found, Response):
            return found
        return json_response(200, self.workspace_resource(found))

    def workspace_resource(self, workspace: Workspace) -> dict:
        """The ARM resource of a workspace, as Azure ML's 2024 API versions return it."""
        host = urllib.parse.urlparse(self.url).netloc
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
                "mlFlowTrackingUri": f"azureml://{host}/mlflow/v1.0{workspace.arm_id}",
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
        found = self.checked_workspace(sub, rg, ws, headers)
        if isinstance(found, Response):
            return found
        if self.deny_mlflow:
            return arm_error(403, "AuthorizationFailed", "The client does not have "
                             "authorization to perform action 'Microsoft.MachineLearningServices"
                             "/workspaces/experiments/read'.")
        url = f"{self.mlflow_url}/{api}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        forwarded = urllib.request.Request(url, data=body or None, method=headers["X-Method"],
                                           headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(forwarded, timeout=30) as answer:
                status, payload = answer.status, answer.read()
        except urllib.error.HTTPError as error:
            status, payload = error.code, error.read()
        if status == 200 and payload:
            payload = json.dumps(self._azure_artifact_uris(json.loads(payload), found)).encode()
        return Response(status, payload, {"Content-Type": "application/json"})

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

    # -- artifact service and blob store -------------------------------------------------

    def _sas_url(self, name: str) -> str:
        expiry = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1))
        query = urllib.parse.urlencode({
            "sv": "2021-08-06", "se": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "sr": "b", "sp": "rcw", "sig": secrets.token_urlsafe(16),
        })
        return f"{self.url}/{BLOB_ACCOUNT}/{urllib.parse.quote(name)}?{query}"

    def _artifact_place(self, sub, rg, ws, headers, origin=None, container=None, run=None,
                        **_) -> tuple[str, str] | Response:
        """The (origin, container) a request is about, or the error to answer with."""
        found = self.checked_workspace(sub, rg, ws, headers)
        if isinstance(found, Response):
            return found
        return (origin, container) if run is None else ("ExperimentRun", f"dcid.{run}")

    def _content_info(self, origin: str, container: str, path: str) -> dict:
        return {"contentUri": self._sas_url(f"{origin}/{container}/{path}"), "origin": origin,
                "container": container, "path": path}

    def _stored(self, origin: str, container: str) -> list[str]:
        folder = self.blobs / origin / container
        if not folder.is_dir():
            return []
        return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())

    def artifacts_create(self, body, **where) -> Response:
        """Answer a batch of new artifacts with the SAS URLs to upload them to."""
        place = self._artifact_place(**where)
        if isinstance(place, Response):
            return place
        origin, container = place
        paths = [item["path"] for item in json.loads(body).get("paths", [])]
        return json_response(200, {
            "artifacts": {p: {"origin": origin, "container": container, "path": p,
                              "artifactId": f"{origin}/{container}/{p}"} for p in paths},
            "artifactContentInformation": {p: self._content_info(origin, container, p)
                                           for p in paths},
            "errors": {},
        })

    def _artifact_content_info(self, query, **where) -> Response:
        place = self._artifact_place(**where)
        if isinstance(place, Response):
            return place
        path = query.get("path", "")
        if path not in self._stored(*place):
            return arm_error(404, "ArtifactNotFound", f"no artifact {path}")
        return json_response(200, self._content_info(*place, path))

    def _artifacts_under(self, query, **where) -> Response:
        place = self._artifact_place(**where)
        if isinstance(place, Response):
            return place
        prefix = query.get("path", "").strip("/")
        found = [p for p in self._stored(*place)
                 if not prefix or p == prefix or p.startswith(prefix + "/")]
        return json_response(200, {"value": [self._content_info(*place, p) for p in found],
                                   "continuationToken": None})

    def _artifacts_list(self, **where) -> Response:
        place = self._artifact_place(**where)
        if isinstance(place, Response):
            return place
        origin, container = place
        return json_response(200, {"value": [
            {"origin": origin, "container": container, "path": p}
            for p in self._stored(origin, container)], "continuationToken": None})

    def _blob_put(self, name, body, headers, **_) -> Response:
        target = self.blobs / urllib.parse.unquote(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
        return Response(201, b"", {"ETag": '"0x1"', "Last-Modified": _http_date(),
                                   "x-ms-request-server-encrypted": "true",
                                   "Content-MD5": ""})

    def _blob_get(self, name, headers, **_) -> Response:
        target = self.blobs / urllib.parse.unquote(name)
        if not target.is_file():
            return Response(404, b"", {"x-ms-error-code": "BlobNotFound"})
        data = target.read_bytes()
        common = {"ETag": '"0x1"', "Last-Modified": _http_date(), "x-ms-blob-type": "BlockBlob",
                  "Content-Type": "application/octet-stream"}
        wanted = headers.get("x-ms-range") or headers.get("Range")
        if wanted:
            start, _, end = wanted.removeprefix("bytes=").partition("-")
            first, last = int(start), min(int(end or len(data) - 1), len(data) - 1)
            return Response(206, data[first:last + 1], {
                **common, "Content-Range": f"bytes {first}-{last}/{len(data)}"})
        return Response(200, data, common)


def _jwt(claims: dict) -> str:
    """An unsigned token shaped like Azure AD's (azureml-core reads its tenant from it)."""
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'typ': 'JWT', 'alg': 'none'})}.{part(claims)}.emulator"


def _http_date() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


class _Handler(BaseHTTPRequestHandler):
    owner: AzureEmulator
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _serve(self) -> None:
        parsed = urllib.parse.urlparse(self.path)
        host = (self.headers.get("Host") or "").partition(":")[0]
        if host.endswith(STORAGE_SUFFIX):  # a blob URL by host name: route it path-style
            parsed = parsed._replace(path=f"/{host}{parsed.path}")
        query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        record = Request(self.command, parsed.path, query, self.headers.get("Authorization"))
        self.owner.requests.append(record)
        headers = {**{k: v for k, v in self.headers.items()}, "X-Method": self.command}
        headers = _Caseless(headers)
        try:
            response = self.owner.handle(self.command, parsed.path, query, headers, body)
        except Exception as error:  # an emulator bug must show as a failing request
            response = arm_error(500, "EmulatorError", repr(error))
        record.status = response.status
        if response.status == 404 and b"NotEmulated" in response.body:
            self.owner.not_emulated.append(record)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve


class _Tunnel(BaseHTTPRequestHandler):
    """An HTTP proxy that only tunnels (CONNECT) storage host names to the emulator."""

    owner: AzureEmulator

    def log_message(self, *args) -> None:
        pass

    def do_CONNECT(self) -> None:
        host = self.path.partition(":")[0]
        if not host.endswith("." + STORAGE_SUFFIX):
            self.send_error(403, f"the emulator's proxy does not reach {host}")
            return
        upstream = socket.create_connection(("127.0.0.1", self.owner.port))
        self.send_response(200, "Connection established")
        self.end_headers()
        ends = [self.connection, upstream]
        try:
            while True:
                ready, _, _ = select.select(ends, [], [], 30)
                if not ready:
                    return
                for end in ready:
                    data = end.recv(65536)
                    if not data:
                        return
                    (upstream if end is self.connection else self.connection).sendall(data)
        finally:
            upstream.close()


class _Caseless(dict):
    def get(self, key, default=None):
        for name, value in self.items():
            if name.lower() == key.lower():
                return value
        return default

    def __getitem__(self, key):
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value


def write_self_signed_certificate(cert_file: Path, key_file: Path) -> None:
    """A certificate for 127.0.0.1 that is its own CA, for REQUESTS_CA_BUNDLE."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mlmagic Azure emulator")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost"),
            x509.DNSName(BLOB_ACCOUNT)]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
