"""What the emulator sees and answers: requests as logged, responses, the HTTP handler that
feeds its route table, and the error bodies of the Databricks REST API."""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any


@dataclass
class Request:
    """One request as the emulator saw it; ``token`` is the user and the last four characters
    of the bearer token it carried (never the token itself), or None."""

    method: str
    path: str
    query: dict[str, str]
    token: str | None
    status: int = 0


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, payload: object, **headers: str) -> Response:
    """A JSON answer."""
    return Response(status, json.dumps(payload).encode(),
                    {"Content-Type": "application/json", **headers})


def error(status: int, code: str | int, message: str) -> Response:
    """An error as the Databricks REST API answers it: ``{"error_code", "message"}``."""
    return json_response(status, {"error_code": code, "message": message})


def not_found(message: str) -> Response:
    return error(404, "RESOURCE_DOES_NOT_EXIST", message)


def invalid(message: str) -> Response:
    return error(400, "INVALID_PARAMETER_VALUE", message)


class Headers(dict):
    """Request headers, looked up without regard to case as HTTP means them."""

    def get(self, key, default=None):
        for name, value in self.items():
            if name.lower() == key.lower():
                return value
        return default


class Handler(BaseHTTPRequestHandler):
    """Hands every request to ``owner.serve`` and writes its Response back."""

    owner: Any  # the DatabricksEmulator
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _serve(self) -> None:
        parsed = urllib.parse.urlparse(self.path)
        query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._chunked_body()
        else:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
        headers = Headers({**dict(self.headers.items()), "X-Raw-Path": parsed.path,
                           "X-Method": self.command})
        response = self.owner.serve(self.command, urllib.parse.unquote(parsed.path), query,
                                    headers, body)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if "Content-Length" not in response.headers:
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _chunked_body(self) -> bytes:
        body = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return body
            body += self.rfile.read(size)
            self.rfile.readline()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve
