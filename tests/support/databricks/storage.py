"""Where a workspace keeps files: one store under ``root/files``, reached three ways, as on
Azure Databricks.

- The Files API (``/api/2.0/fs/files/…``, ``/api/2.0/fs/directories/…``,
  ``/api/2.0/fs/create-download-url`` and ``create-upload-url``): what MLflow 3 uses first, through
  databricks-sdk, for runs' artifacts (``/WorkspaceInternal/Mlflow/Artifacts/<experiment>/Runs/
  <run>/artifacts/…``), logged models' (``…/<experiment>/LoggedModels/<model>/artifacts/…``) and
  Unity Catalog model versions' (``/Models/<catalog>/<schema>/<model>/<version>/…``).
- MLflow's artifact credential routes (``/api/2.0/mlflow/artifacts/credentials-for-write`` and
  ``-read``, the logged-model ``credentials-for-upload`` and ``-download``), and the listings
  (``artifacts/list``, ``logged-models/<id>/artifacts/directories``): MLflow's fallback when the
  SDK fails, and its only path with ``MLFLOW_DISABLE_DATABRICKS_SDK_FOR_RUN_ARTIFACTS``. They
  answer Azure SAS URLs (``AZURE_SAS_URI``).
- The blob store behind those URLs (``/dbstorage/…``): a SAS is checked (issued here, for that
  blob, not expired, with the permission the method needs), Put Block / Put Block List as Azure's
  Blob service takes them, errors in its XML.
"""

from __future__ import annotations

import datetime
import json
import re
import secrets
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from email.utils import formatdate
from pathlib import Path
from typing import Any

from .responses import Response, error, json_response, not_found

BLOBS = "/dbstorage/"
RUN_FILES = "WorkspaceInternal/Mlflow/Artifacts/{experiment}/Runs/{run}/artifacts"
MODEL_FILES = "WorkspaceInternal/Mlflow/Artifacts/{experiment}/LoggedModels/{model}/artifacts"
FILE_ROOTS = re.compile(
    r"(WorkspaceInternal/Mlflow/Artifacts/(?P<experiment>[^/]+)/(?:Runs/(?P<run>[^/]+)|"
    r"LoggedModels/(?P<model>[^/]+))/artifacts"
    r"|Models/(?P<uc>[^/]+/[^/]+/[^/]+/[^/]+)"
    r"|Volumes/[^/]+/[^/]+/[^/]+)(/.*)?$")

# The source of a workspace registry version: a logged model, or a path among a run's
# artifacts (as ``runs:/…`` or as the run's dbfs:/ location)
VERSION_SOURCES = (
    re.compile(r"models:/(?P<model>m-[0-9a-f]+)/?(?P<path>)$"),
    re.compile(r"runs:/(?P<run>[^/]+)(?P<path>/.*)?$"),
    re.compile(r"dbfs:/databricks/mlflow-tracking/[^/]+/(?:logged_models/(?P<model>[^/]+)|"
               r"(?P<run>[^/]+))/artifacts(?P<path>/.*)?$"),
)


class Storage:
    """The workspace's files, the SAS URLs issued for them, and the blocks staged."""

    def __init__(self, emulator: Any, root: Path) -> None:
        self.emulator = emulator
        self.files = root / "files"
        self.files.mkdir(parents=True, exist_ok=True)
        self.sas_lifetime = 3600.0  # seconds a signed URL is valid
        self.signatures: dict[str, tuple[str, str, float]] = {}  # sig -> (path, perms, expiry)
        self.blocks: dict[tuple[str, str], bytes] = {}
        self.lock = threading.Lock()

    def add_routes(self) -> None:
        route = self.emulator.route
        files = r"/api/2\.0/fs/files(?P<path>/.+)"
        directories = r"/api/2\.0/fs/directories(?P<path>/.+)"
        route("PUT", files, self.put_file)
        route("GET", files, self.get_file)
        route("HEAD", files, self.file_metadata)
        route("HEAD", directories, self.directory_metadata)
        route("GET", directories, self.list_directory)
        route("POST", r"/api/2\.0/fs/create-download-url", self.download_url)
        route("POST", r"/api/2\.0/fs/create-upload-url", self.upload_url)
        mlflow = r"/api/2\.0/mlflow"
        route("POST", mlflow + r"/artifacts/credentials-for-write", self.run_credentials)
        route("POST", mlflow + r"/artifacts/credentials-for-read", self.run_credentials)
        route("GET", mlflow + r"/artifacts/list", self.run_listing)
        model = mlflow + r"/logged-models/(?P<model>[^/]+)/artifacts"
        route("POST", model + r"/credentials-for-upload", self.model_credentials)
        route("POST", model + r"/credentials-for-download", self.model_credentials)
        route("GET", model + r"/directories", self.model_listing)
        versions = mlflow + r"/model-versions"
        route("GET", versions + r"/list-artifacts", self.version_listing)
        route("GET", versions + r"/get-signed-download-uri", self.version_download)
        blob = BLOBS + r"(?P<name>.+)"
        for method, handler in (("PUT", self.put_blob), ("GET", self.get_blob),
                                ("HEAD", self.get_blob)):
            route(method, blob, handler, open=True)

    # -- the store ---------------------------------------------------------------------

    def at(self, path: str) -> Path:
        """The local file of a workspace path (``/Models/…``, ``/WorkspaceInternal/…``)."""
        parts = [p for p in path.strip("/").split("/") if p]
        if any(p in (".", "..") for p in parts):
            raise ValueError(f"not a workspace path: {path}")
        return self.files.joinpath(*parts)

    def stored(self, path: str) -> list[str]:
        """The workspace paths of the files under ``path``."""
        folder = self.at(path)
        if not folder.is_dir():
            return []
        return sorted("/" + p.relative_to(self.files).as_posix()
                      for p in folder.rglob("*") if p.is_file())

    def write(self, path: str, data: bytes) -> None:
        target = self.at(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def _refused_path(self, path: str, writing: bool) -> Response | None:
        found = FILE_ROOTS.match(path.lstrip("/"))
        if found is None:
            return error(403, "PERMISSION_DENIED", f"Path {path} is not a supported Files API "
                         "location (Volumes, model versions and MLflow artifacts only).")
        if found["uc"] and writing:
            return self.emulator.unity.refused_write(found["uc"])
        if found["run"] and self.emulator.mlflow_get("runs/get", run_id=found["run"]) is None:
            return not_found(f"Run '{found['run']}' not found.")
        if found["model"] and self.emulator.mlflow_get(f"logged-models/{found['model']}") is None:
            return not_found(f"Logged model '{found['model']}' not found.")
        return None

    # -- the Files API -----------------------------------------------------------------

    def put_file(self, path, query, body, **_) -> Response:
        """Upload one file (single shot); ``overwrite=false`` refuses an existing one."""
        if query.get("action") or query.get("upload_type"):
            return error(404, "NotEmulated", f"multipart Files API uploads ({query})")
        refused = self._refused_path(path, writing=True)
        if refused:
            return refused
        if self.at(path).is_file() and query.get("overwrite", "false").lower() != "true":
            return error(409, "ALREADY_EXISTS", "The file being created already exists.")
        if self.at(path).is_dir():
            return error(409, "ALREADY_EXISTS", f"{path} is a directory.")
        self.write(path, body)
        return Response(204)

    def get_file(self, path, headers, **_) -> Response:
        target = self.at(path)
        if not target.is_file():
            return error(404, "NOT_FOUND", "The file being accessed is not found.")
        return _ranged(target.read_bytes(), headers, self._file_headers(target))

    def file_metadata(self, path, **_) -> Response:
        target = self.at(path)
        if not target.is_file():
            return Response(404, b"", {"Content-Length": "0"})
        return Response(200, b"", {**self._file_headers(target),
                                   "Content-Length": str(target.stat().st_size)})

    @staticmethod
    def _file_headers(target: Path) -> dict[str, str]:
        return {"Content-Type": "application/octet-stream",
                "Last-Modified": formatdate(target.stat().st_mtime, usegmt=True)}

    def directory_metadata(self, path, **_) -> Response:
        return Response(200 if self.at(path).is_dir() else 404, b"", {"Content-Length": "0"})

    def list_directory(self, path, **_) -> Response:
        folder = self.at(path)
        if not folder.is_dir():
            return error(404, "NOT_FOUND", "The directory being accessed is not found.")
        contents = []
        for entry in sorted(folder.iterdir()):
            item = {"path": f"{path.rstrip('/')}/{entry.name}", "name": entry.name,
                    "is_directory": entry.is_dir()}
            if entry.is_file():
                item["file_size"] = entry.stat().st_size
                item["last_modified"] = int(entry.stat().st_mtime * 1000)
            contents.append(item)
        return json_response(200, {"contents": contents})

    def download_url(self, query, body, **_) -> Response:
        """A signed URL to read a file (databricks-sdk asks with the query, MLflow's
        presigned-URL repository with a JSON body)."""
        path = query.get("path") or json.loads(body or b"{}").get("path", "")
        if not self.at(path).is_file():
            return error(404, "NOT_FOUND", "The file being accessed is not found.")
        return json_response(200, {"url": self.sas_url(path, "r"), "headers": []})

    def upload_url(self, body, **_) -> Response:
        path = json.loads(body or b"{}").get("path", "")
        refused = self._refused_path(path, writing=True)
        if refused:
            return refused
        return json_response(200, {"url": self.sas_url(path, "cw"), "headers": [
            {"name": "x-ms-blob-type", "value": "BlockBlob"}]})

    # -- MLflow's credential routes ----------------------------------------------------

    def _run_root(self, run_id: str) -> str | Response:
        found = self.emulator.mlflow_get("runs/get", run_id=run_id)
        if found is None:
            return not_found(f"Run '{run_id}' not found.")
        return "/" + RUN_FILES.format(experiment=found["run"]["info"]["experiment_id"],
                                      run=run_id)

    def _model_root(self, model: str) -> str | Response:
        found = self.emulator.mlflow_get(f"logged-models/{model}")
        if found is None:
            return not_found(f"Logged model '{model}' not found.")
        return "/" + MODEL_FILES.format(experiment=found["model"]["info"]["experiment_id"],
                                        model=model)

    def run_credentials(self, headers, body, **_) -> Response:
        asked = json.loads(body or b"{}")
        root = self._run_root(asked.get("run_id", ""))
        if isinstance(root, Response):
            return root
        perms = "r" if headers.get("X-Raw-Path", "").endswith("-read") else "cw"
        return json_response(200, {"credential_infos": [
            {"run_id": asked["run_id"], "path": p, "type": "AZURE_SAS_URI",
             "signed_uri": self.sas_url(f"{root}/{p.lstrip('/')}", perms)}
            for p in asked.get("path", [])]})

    def model_credentials(self, model, headers, body, **_) -> Response:
        asked = json.loads(body or b"{}")
        root = self._model_root(model)
        if isinstance(root, Response):
            return root
        perms = "r" if headers.get("X-Raw-Path", "").endswith("-download") else "cw"
        return json_response(200, {"credentials": [
            {"path": p, "credential_info": {
                "type": "AZURE_SAS_URI", "signed_uri": self.sas_url(f"{root}/{p.lstrip('/')}",
                                                                    perms)}}
            for p in asked.get("paths", [])]})

    def _version_root(self, query) -> str | Response:
        """Where the files of a workspace registry version are: its source's, a logged
        model's or a run's artifacts (``models:/m-…``, ``runs:/…`` or a ``dbfs:/databricks/
        mlflow-tracking/…`` location)."""
        name, version = query.get("name", ""), query.get("version", "")
        found = self.emulator.mlflow_get("model-versions/get", name=name, version=version)
        if found is None:
            return not_found(f"Model version {name}/{version} does not exist.")
        source = found["model_version"]["source"]
        place = next(filter(None, (rule.match(source) for rule in VERSION_SOURCES)), None)
        if place is None:
            return error(404, "NotEmulated", f"a model version whose source is {source}")
        found = place.groupdict()
        owner = self._model_root(found["model"]) if found.get("model") else self._run_root(
            found["run"])
        if isinstance(owner, Response):
            return owner
        return owner + (found["path"] or "").rstrip("/")

    def version_listing(self, query, **_) -> Response:
        """The files of a workspace registry version under ``path`` (MLflow's
        ``model-versions/list-artifacts``)."""
        root = self._version_root(query)
        if isinstance(root, Response):
            return root
        return json_response(200, {"files": self._listed(root, query.get("path"))})

    def version_download(self, query, **_) -> Response:
        """A signed URL to read one file of a workspace registry version."""
        root = self._version_root(query)
        if isinstance(root, Response):
            return root
        path = f"{root}/{query.get('path', '').lstrip('/')}"
        if not self.at(path).is_file():
            return not_found(f"No file {query.get('path')} in the model version.")
        return json_response(200, {"signed_uri": self.sas_url(path, "r"), "headers": []})

    def run_listing(self, query, **_) -> Response:
        root = self._run_root(query.get("run_id") or query.get("run_uuid", ""))
        if isinstance(root, Response):
            return root
        return json_response(200, {"root_uri": "", "files": self._listed(root, query.get("path"))})

    def model_listing(self, model, query, **_) -> Response:
        root = self._model_root(model)
        if isinstance(root, Response):
            return root
        return json_response(200, {"files": self._listed(
            root, query.get("artifact_directory_path"))})

    def _listed(self, root: str, path: str | None) -> list[dict]:
        """MLflow's listing of ``path`` under an artifact root: a folder's entries, or the file
        itself (as MLflow's own server answers for a file)."""
        path = (path or "").strip("/")
        target = self.at(f"{root}/{path}")
        if target.is_file():
            return [{"path": path, "is_dir": False, "file_size": target.stat().st_size}]
        if not target.is_dir():
            return []
        return [{"path": f"{path}/{e.name}".lstrip("/"), "is_dir": e.is_dir(),
                 **({"file_size": e.stat().st_size} if e.is_file() else {})}
                for e in sorted(target.iterdir())]

    # -- the blob store behind SAS URLs ------------------------------------------------

    def sas_url(self, path: str, permissions: str) -> str:
        """A SAS URL for the blob of workspace ``path``, with ``permissions`` (``r``, ``cw``),
        valid for ``sas_lifetime`` seconds."""
        expiry = time.time() + self.sas_lifetime
        signature = secrets.token_urlsafe(24)
        name = path.lstrip("/")
        self.signatures[signature] = (name, permissions, expiry)
        query = urllib.parse.urlencode({
            "sv": "2021-08-06", "sr": "b", "sp": permissions, "sig": signature,
            "se": datetime.datetime.fromtimestamp(expiry, datetime.UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ")})
        return f"{self.emulator.url}{BLOBS}{urllib.parse.quote(name)}?{query}"

    def _refused_sas(self, name: str, query, needed: str) -> Response | None:
        issued = self.signatures.get(query.get("sig", ""))
        if issued is None or issued[0] != name:
            return _blob_error(403, "AuthenticationFailed", "Server failed to authenticate the "
                               "request. Make sure the value of Authorization header is formed "
                               "correctly including the signature.",
                               "Signature did not match.")
        if issued[2] < time.time():
            return _blob_error(403, "AuthenticationFailed", "Server failed to authenticate the "
                               "request.", "Signature not valid in the specified time frame.")
        if needed not in issued[1]:
            return _blob_error(403, "AuthorizationPermissionMismatch", "This request is not "
                               "authorized to perform this operation using this permission.")
        return None

    def put_blob(self, name, query, headers, body, **_) -> Response:
        """Put Blob, Put Block (``comp=block``) or Put Block List (``comp=blocklist``)."""
        refused = self._refused_sas(name, query, "w")
        if refused:
            return refused
        comp = query.get("comp")
        if comp == "block":
            with self.lock:
                self.blocks[(name, query.get("blockid", ""))] = body
            return Response(201, b"", {"Content-MD5": ""})
        if comp == "blocklist":
            ids = [e.text or "" for e in ET.fromstring(body)]
            with self.lock:
                missing = [i for i in ids if (name, i) not in self.blocks]
                if missing:
                    return _blob_error(400, "InvalidBlockList", "The specified block list is "
                                       "invalid.")
                data = b"".join(self.blocks.pop((name, i)) for i in ids)
            self.write(name, data)
            return Response(201, b"", {"ETag": '"0x1"'})
        if comp:
            return error(404, "NotEmulated", f"blob operation comp={comp}")
        if (headers.get("x-ms-blob-type") or "") != "BlockBlob":
            return _blob_error(400, "MissingRequiredHeader", "An HTTP header that's mandatory "
                               "for this request is not specified.")
        self.write(name, body)
        return Response(201, b"", {"ETag": '"0x1"'})

    def get_blob(self, name, query, headers, **_) -> Response:
        refused = self._refused_sas(name, query, "r")
        if refused:
            return refused
        target = self.at(name)
        if not target.is_file():
            return _blob_error(404, "BlobNotFound", "The specified blob does not exist.")
        return _ranged(target.read_bytes(), headers, {
            "Content-Type": "application/octet-stream", "x-ms-blob-type": "BlockBlob",
            "Last-Modified": formatdate(target.stat().st_mtime, usegmt=True), "ETag": '"0x1"'})

    def clear(self) -> None:
        self.sas_lifetime = 3600.0


def _ranged(data: bytes, headers, common: dict[str, str]) -> Response:
    """The whole of ``data``, or the byte range a Range (or x-ms-range) header asks for."""
    wanted = headers.get("x-ms-range") or headers.get("Range")
    if not wanted:
        return Response(200, data, common)
    start, _, end = wanted.removeprefix("bytes=").partition("-")
    first = int(start or 0)
    last = min(int(end) if end else len(data) - 1, len(data) - 1)
    if first >= len(data) and data:
        return Response(416, b"", {"Content-Range": f"bytes */{len(data)}"})
    return Response(206, data[first:last + 1], {
        **common, "Content-Range": f"bytes {first}-{last}/{len(data)}"})


def _blob_error(status: int, code: str, message: str, detail: str | None = None) -> Response:
    """An error as Azure's Blob service answers it (XML, and the code in x-ms-error-code)."""
    extra = f"<AuthenticationErrorDetail>{detail}</AuthenticationErrorDetail>" if detail else ""
    body = (f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code>'
            f"<Message>{message}</Message>{extra}</Error>").encode()
    return Response(status, body, {"Content-Type": "application/xml", "x-ms-error-code": code})


