"""What the emulator sees and answers: requests as logged, responses, and the error bodies
of Azure Resource Manager and of the workspace's data plane."""

from __future__ import annotations

import json
from dataclasses import dataclass, field


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
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, payload: object, **headers: str) -> Response:
    """A JSON answer."""
    return Response(status, json.dumps(payload).encode(), {"Content-Type": "application/json",
                                                            **headers})


def arm_error(status: int, code: str, message: str) -> Response:
    """An error as Azure Resource Manager (and the services behind it) answers it."""
    return json_response(status, {"error": {"code": code, "message": message}})


def data_plane_error(status: int, code: str, message: str) -> Response:
    """An error as the workspace's data plane (MLflow, artifacts, model management) answers
    it: a UserError with the reason as its inner code."""
    return json_response(status, {"error": {"code": "UserError", "message": message,
                                            "innerError": {"code": code}}})
