"""The emulator's core: an HTTP server on 127.0.0.1, its route table, the token check
Databricks makes before any handler runs, and the routes every workspace has:

- ``/.well-known/databricks-config`` (databricks-sdk reads it for every ``Config``) and the
  current user (``/api/2.0/preview/scim/v2/Me``);
- the MLflow REST API (``/api/2.0/mlflow/…``, ``/api/2.0/preview/mlflow/…``,
  ``/api/3.0/mlflow/…``) forwarded to a real ``mlflow server``: runs' and logged models'
  artifact locations given in Databricks' ``dbfs:/databricks/mlflow-tracking/…`` form, the run's
  user the token's, experiment names absolute workspace paths, a notebook's experiment the
  notebook's own (its id is the notebook id);
- the artifact routes of :mod:`.storage` and the Unity Catalog registry of :mod:`.unity`.

Every route but the open ones needs ``Authorization: Bearer <token>`` with a live token the
workspace issued: none is 401, a wrong or expired one 403 ``Invalid access token.`` as
Databricks answers (``{"error_code": 403, ...}``). Every request is logged; one that is not
emulated is answered 404 ``NotEmulated`` and kept in ``not_emulated``, so the test that caused
it can fail.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path

from servers import free_port

from .responses import Handler, Request, Response, error, invalid, json_response
from .storage import Storage
from .unity import UnityCatalog

USER = "someone@example.com"
WORKSPACE_ID = "1234567890123456"
NOTEBOOK_SOURCE_TAG = "mlflow.experiment.sourceId"
MLFLOW_PREFIX = re.compile(r"/api/(?:2\.0(?:/preview)?|3\.0)/mlflow/")
ARTIFACTS = re.compile(r"mlflow-artifacts:/+([^/]+)/(models/)?([^/]+)/artifacts(.*)")
EXPERIMENT_ROOT = re.compile(r"mlflow-artifacts:/+([^/]+)/?$")


@dataclass
class Route:
    method: str
    pattern: re.Pattern
    handler: Callable[..., Response]
    open: bool


@dataclass
class Token:
    user: str
    expires: float | None = None  # time.time() after which it is refused


class DatabricksEmulator:
    """The workspace: ``start()`` it, give a client ``environment()``, ``stop()`` it.

    ``mlflow_url`` is the real ``mlflow server`` that keeps runs, experiments, logged models and
    the workspace model registry; artifacts and Unity Catalog models are kept here, under
    ``root``."""

    def __init__(self, root: Path, mlflow_url: str, *, user: str = USER) -> None:
        self.root = root
        self.mlflow_url = mlflow_url.rstrip("/")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workspace_id = WORKSPACE_ID
        self.user = user
        self.tokens: dict[str, Token] = {}
        self.token = self.issue_token(user)
        self.requests: list[Request] = []
        self.not_emulated: list[Request] = []
        self.notebooks: dict[str, str] = {}  # notebook id -> path
        self.routes: list[Route] = []
        self.storage = Storage(self, root)
        self.unity = UnityCatalog(self)
        self._server: ThreadingHTTPServer | None = None
        self._add_core_routes()
        self.storage.add_routes()
        self.unity.add_routes()
        for method in ("GET", "POST", "PATCH", "DELETE"):  # the rest of MLflow's API, last
            self.route(method, MLFLOW_PREFIX.pattern + r"(?P<api>.+)", self._mlflow)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> DatabricksEmulator:
        """Listen on 127.0.0.1."""
        owned = type("WorkspaceHandler", (Handler,), {"owner": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), owned)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def reset(self) -> None:
        """An empty request log and the workspace's usual settings (its own token live again),
        for the next test."""
        self.requests.clear()
        self.not_emulated.clear()
        self.tokens[self.token] = Token(self.user)
        self.storage.clear()
        self.unity.clear()

    def environment(self, token: str | None = None) -> dict[str, str]:
        """A laptop's settings: MLflow's ``databricks`` tracking URI, the workspace's host and a
        personal access token (the workspace's own unless ``token``)."""
        return {"MLFLOW_TRACKING_URI": "databricks", "DATABRICKS_HOST": self.url,
                "DATABRICKS_TOKEN": token or self.token}

    def notebook_environment(self, root: Path, **options) -> dict[str, str]:
        """The environment of a kernel started as a notebook of this workspace (see
        :class:`.notebook.NotebookContext`, which ``options`` go to), its files under ``root``.
        Keep a ``NotebookContext`` instead to change its token under a running kernel."""
        from .notebook import NotebookContext

        return NotebookContext(self, root, **options).prepare().environment()

    def write_profile(self, path: Path, profile: str = "DEFAULT", token: str | None = None
                      ) -> Path:
        """Add a ``~/.databrickscfg`` profile for this workspace (as ``databricks configure``
        writes it) to the file at ``path``; the file."""
        existing = path.read_text() if path.is_file() else ""
        path.write_text(existing + f"[{profile}]\nhost = {self.url}\n"
                                   f"token = {token or self.token}\n\n")
        return path

    # -- tokens ------------------------------------------------------------------------

    def issue_token(self, user: str | None = None, lifetime: float | None = None) -> str:
        """A new personal access token of ``user`` (the workspace's user by default), valid
        for ``lifetime`` seconds (forever by default)."""
        token = "dapi" + secrets.token_hex(16)
        self.tokens[token] = Token(user or self.user,
                                   None if lifetime is None else time.time() + lifetime)
        return token

    def expire(self, token: str) -> None:
        """Make ``token`` expired from now on (Databricks then refuses it as invalid)."""
        self.tokens[token].expires = time.time() - 1

    def user_of(self, headers) -> str | None:
        """The user a request's live token belongs to, or None."""
        token = (headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        found = self.tokens.get(token)
        if found is None or (found.expires is not None and found.expires < time.time()):
            return None
        return found.user

    # -- routing -----------------------------------------------------------------------

    def route(self, method: str, pattern: str, handler: Callable[..., Response], *,
              open: bool = False) -> None:
        """Answer ``method`` requests whose path matches ``pattern`` with ``handler``, after the
        token check unless ``open``."""
        self.routes.append(Route(method, re.compile(pattern + r"/?$"), handler, open))

    def paths(self, prefix: str = "") -> list[str]:
        """The paths requested so far (those starting with ``prefix``)."""
        return [r.path for r in self.requests if r.path.startswith(prefix)]

    def serve(self, method: str, path: str, query: dict[str, str], headers, body: bytes
              ) -> Response:
        """Log a request, answer it, and keep it in ``not_emulated`` if it was not."""
        record = Request(method, path, query, self._token_label(headers))
        self.requests.append(record)
        try:
            response = self.handle(method, path, query, headers, body)
        except Exception as failure:  # an emulator bug must show as a failing request
            response = error(500, "INTERNAL_ERROR", f"emulator error: {failure!r}")
        record.status = response.status
        if response.status == 404 and b"NotEmulated" in response.body:
            self.not_emulated.append(record)
        response.headers.setdefault("x-databricks-org-id", self.workspace_id)
        return response

    def handle(self, method: str, path: str, query, headers, body: bytes) -> Response:
        """The answer of the first route that matches, if the request's token is live."""
        for route in self.routes:
            match = route.pattern.match(path)
            if route.method == method and match:
                if not route.open:
                    refused = self._refused(headers)
                    if refused:
                        return refused
                return route.handler(query=query, headers=headers, body=body,
                                     **match.groupdict())
        return self._refused(headers) or error(
            404, "NotEmulated", f"the emulator does not emulate {method} {path}")

    def _refused(self, headers) -> Response | None:
        given = headers.get("Authorization") or ""
        if not given.startswith("Bearer ") or not given.removeprefix("Bearer ").strip():
            return error(401, 401, "Credential was not sent or was of an unsupported type "
                                   "for this API.")
        if self.user_of(headers) is None:
            return Response(403, json.dumps({"error_code": 403,
                                             "message": "Invalid access token."}).encode(),
                            {"Content-Type": "application/json",
                             "X-Databricks-Reason-Phrase": "Invalid access token."})
        return None

    def _token_label(self, headers) -> str | None:
        token = (headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        if not token:
            return None
        owner = self.tokens.get(token)
        return f"{owner.user if owner else 'unknown'} …{token[-4:]}"

    def _add_core_routes(self) -> None:
        self.route("GET", r"/\.well-known/databricks-config", self._host_metadata, open=True)
        self.route("GET", r"/api/2\.0/preview/scim/v2/Me", self._me)
        self.route("POST", r"/api/2\.0/mlflow/experiments/create", self._create_experiment)
        self.route("POST", r"/api/2\.0/mlflow/runs/create", self._create_run)

    # -- workspace ---------------------------------------------------------------------

    def _host_metadata(self, **_) -> Response:
        return json_response(200, {"oidc_endpoint": f"{self.url}/oidc",
                                   "workspace_id": self.workspace_id, "cloud": "azure"})

    def _me(self, headers, **_) -> Response:
        user = self.user_of(headers)
        return json_response(200, {
            "id": str(abs(hash(user)) % 10**15), "userName": user, "displayName": user,
            "active": True, "emails": [{"value": user, "type": "work", "primary": True}],
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]})

    def add_notebook(self, path: str) -> str:
        """A notebook at the workspace ``path``, with the experiment Databricks keeps for it
        (named as the notebook, of type NOTEBOOK); its id, which is its experiment's. A path
        it knows already is that notebook."""
        for notebook_id, known in self.notebooks.items():
            if known == path:
                return notebook_id
        status, payload = self.forward("POST", "api/2.0/mlflow/experiments/create", {}, json.dumps({
            "name": path, "tags": [{"key": "mlflow.experimentType", "value": "NOTEBOOK"}]}
        ).encode())
        if status != 200:
            raise RuntimeError(f"the workspace's store refused the notebook experiment: {payload}")
        notebook_id = json.loads(payload)["experiment_id"]
        self.notebooks[notebook_id] = path
        return notebook_id

    # -- MLflow, forwarded -------------------------------------------------------------

    def _create_experiment(self, headers, body, query, **_) -> Response:
        asked = json.loads(body or b"{}")
        name = asked.get("name", "")
        tags = {t.get("key"): t.get("value") for t in asked.get("tags", [])}
        if tags.get(NOTEBOOK_SOURCE_TAG) in self.notebooks:
            # MLflow asks this for a notebook's own experiment; for a notebook outside a repo
            # Databricks refuses, and MLflow then uses the notebook's id.
            return invalid(f"Experiment source {tags[NOTEBOOK_SOURCE_TAG]} is a workspace "
                           "notebook, not a Repos notebook: its experiment is the notebook's.")
        if not name.startswith("/"):
            return invalid(f"Got an invalid experiment name '{name}'. An experiment name must be "
                           "an absolute path within the Databricks workspace, e.g. "
                           "'/Users/<some-username>/my-experiment'.")
        return self._mlflow("api/2.0/mlflow/experiments/create", query, headers, body)

    def _create_run(self, headers, body, query, **_) -> Response:
        asked = json.loads(body or b"{}")
        user = self.user_of(headers)
        asked["user_id"] = user  # Databricks records who the token belongs to
        asked["tags"] = [t for t in asked.get("tags", []) if t.get("key") != "mlflow.user"]
        asked["tags"].append({"key": "mlflow.user", "value": user})
        return self._mlflow("api/2.0/mlflow/runs/create", query, headers,
                            json.dumps(asked).encode())

    def _mlflow(self, api, query, headers, body, **_) -> Response:
        raw = headers.get("X-Raw-Path") or ""
        # the path as sent (quoted), under the open-source server's /api/2.0 or /api/3.0
        found = MLFLOW_PREFIX.match(raw)
        tail = raw[found.end():] if found else urllib.parse.quote(api)
        version = "3.0" if raw.startswith("/api/3.0/") else "2.0"
        status, payload = self.forward(headers.get("X-Method"), f"api/{version}/mlflow/{tail}",
                                       query, body)
        if status == 200 and payload:
            payload = json.dumps(databricks_locations(json.loads(payload))).encode()
        return Response(status, payload, {"Content-Type": "application/json"})

    def forward(self, method: str, api: str, query, body: bytes) -> tuple[int, bytes]:
        """One call to the workspace's ``mlflow server``: its status and body."""
        url = f"{self.mlflow_url}/{api}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        forwarded = urllib.request.Request(url, data=body or None, method=method,
                                           headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(forwarded, timeout=60) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as failure:
            return failure.code, failure.read()

    def mlflow_get(self, api: str, **query: str) -> dict | None:
        """A GET of the workspace's ``mlflow server`` (``api`` under ``api/2.0/mlflow/``), its
        answer in Databricks' form, or None if it answered an error."""
        status, payload = self.forward("GET", f"api/2.0/mlflow/{api}", query, b"")
        return databricks_locations(json.loads(payload)) if status == 200 else None


def databricks_locations(payload):
    """Every artifact location of an MLflow answer in Databricks' form: an experiment's
    ``dbfs:/databricks/mlflow-tracking/<experiment>``, a run's ``…/<experiment>/<run>/artifacts``,
    a logged model's ``…/<experiment>/logged_models/<model>/artifacts``."""
    if isinstance(payload, list):
        return [databricks_locations(item) for item in payload]
    if isinstance(payload, dict):
        return {key: databricks_locations(value) for key, value in payload.items()}
    if not isinstance(payload, str) or not payload.startswith("mlflow-artifacts:"):
        return payload
    found = ARTIFACTS.match(payload)
    if found:
        experiment, model, owner, rest = found.groups()
        kind = "logged_models/" if model else ""
        return f"dbfs:/databricks/mlflow-tracking/{experiment}/{kind}{owner}/artifacts{rest}"
    found = EXPERIMENT_ROOT.match(payload)
    if found:
        return f"dbfs:/databricks/mlflow-tracking/{found[1]}"
    return payload

