"""The workspace's artifact service (``/artifact/v2.0/…`` and run history's
``/history/v1.0/…/artifacts``) and a minimal blob store behind SAS URLs.

As on Azure ML, an artifact path is created once: asking to create one that exists already
is a conflict, reported per path in the batch answer (azureml-mlflow raises it as
``UserError: Resource Conflict: ArtifactId … already exists.``).
"""

from __future__ import annotations

import datetime
import json
import secrets
import threading
import urllib.parse
from pathlib import Path
from typing import Any

from .network import BLOB_ACCOUNT
from .responses import Response, arm_error, json_response


class Storage:
    """Artifacts (origin/container/path) and the blobs that hold them, under ``root``."""

    def __init__(self, emulator: Any, root: Path) -> None:
        self.emulator = emulator
        self.blobs = root / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.created: set[str] = set()  # artifact ids (origin/container/path) handed out
        self.lock = threading.Lock()

    def sas_url(self, name: str) -> str:
        """A SAS URL of the blob ``name`` (origin/container/path), valid for an hour."""
        expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
        query = urllib.parse.urlencode({
            "sv": "2021-08-06", "se": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "sr": "b", "sp": "rcw", "sig": secrets.token_urlsafe(16),
        })
        return f"{self.emulator.url}/{BLOB_ACCOUNT}/{urllib.parse.quote(name)}?{query}"

    def stored(self, origin: str, container: str) -> list[str]:
        """The paths of the blobs in a container."""
        folder = self.blobs / origin / container
        if not folder.is_dir():
            return []
        return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())

    # -- the artifact service ------------------------------------------------------------

    def _place(self, sub, rg, ws, origin=None, container=None, run=None, **_
               ) -> tuple[str, str] | Response:
        """The (origin, container) a request is about, or the error to answer with."""
        found = self.emulator.find_workspace(sub, rg, ws)
        if isinstance(found, Response):
            return found
        return (origin, container) if run is None else ("ExperimentRun", f"dcid.{run}")

    def _content_info(self, origin: str, container: str, path: str) -> dict:
        return {"contentUri": self.sas_url(f"{origin}/{container}/{path}"), "origin": origin,
                "container": container, "path": path}

    def create(self, body, **where) -> Response:
        """A batch of new artifacts: the SAS URLs to upload them to; a path that exists is
        answered in ``errors`` as a conflict."""
        place = self._place(**where)
        if isinstance(place, Response):
            return place
        origin, container = place
        paths = [item["path"] for item in json.loads(body).get("paths", [])]
        with self.lock:
            taken = set(self.stored(origin, container))
            conflicts = [p for p in paths if p in taken or f"{origin}/{container}/{p}"
                         in self.created]
            fresh = [p for p in paths if p not in conflicts]
            self.created.update(f"{origin}/{container}/{p}" for p in fresh)
        return json_response(200, {
            "artifacts": {p: {"origin": origin, "container": container, "path": p,
                              "artifactId": f"{origin}/{container}/{p}"} for p in fresh},
            "artifactContentInformation": {p: self._content_info(origin, container, p)
                                           for p in fresh},
            "errors": {p: _conflict(f"{origin}/{container}/{p}") for p in conflicts},
        })

    def content_info(self, query, **where) -> Response:
        """Where one artifact can be read."""
        place = self._place(**where)
        if isinstance(place, Response):
            return place
        path = query.get("path", "")
        if path not in self.stored(*place):
            return arm_error(404, "ArtifactNotFound", f"no artifact {path}")
        return json_response(200, self._content_info(*place, path))

    def under(self, query, **where) -> Response:
        """Where the artifacts under a path can be read."""
        place = self._place(**where)
        if isinstance(place, Response):
            return place
        prefix = query.get("path", "").strip("/")
        found = [p for p in self.stored(*place)
                 if not prefix or p == prefix or p.startswith(prefix + "/")]
        return json_response(200, {"value": [self._content_info(*place, p) for p in found],
                                   "continuationToken": None})

    def listed(self, **where) -> Response:
        """The artifacts of a container."""
        place = self._place(**where)
        if isinstance(place, Response):
            return place
        origin, container = place
        return json_response(200, {"value": [
            {"origin": origin, "container": container, "path": p}
            for p in self.stored(origin, container)], "continuationToken": None})

    # -- the blob store ------------------------------------------------------------------

    def put_blob(self, name, body, **_) -> Response:
        """Write a block blob."""
        target = self.blobs / urllib.parse.unquote(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
        return Response(201, b"", {"ETag": '"0x1"', "Last-Modified": _http_date(),
                                   "x-ms-request-server-encrypted": "true",
                                   "Content-MD5": ""})

    def get_blob(self, name, headers, **_) -> Response:
        """Read a blob, or the byte range asked for."""
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


def _conflict(artifact_id: str) -> dict:
    return {"error": {"code": "UserError", "message": (
        f"Resource Conflict: ArtifactId {artifact_id} already exists."),
        "innerError": {"code": "Conflict"}}}


def _http_date() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
