"""Plain HTTPS calls to the emulator, and tokens from its identity endpoint, for its tests."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from .emulator import AML_AUDIENCE
from .identity import IDENTITY_HEADER

API_VERSION = "2024-04-01"
STORAGE_AUDIENCE = "https://storage.azure.com"  # a real resource, of no Azure ML service


@dataclass
class Answer:
    status: int
    body: Any  # the JSON answered, else the bytes
    headers: Any


def call(emulator, method: str, path: str, *, token: str | None = None, body: Any = None,
         headers: dict[str, str] | None = None) -> Answer:
    """One request to the emulator, its CA trusted, signed with ``token`` if given."""
    data = json.dumps(body).encode() if isinstance(body, dict | list) else body
    sent = {"Content-Type": "application/json", **(headers or {})}
    if token:
        sent["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(emulator.url + path, data=data, method=method,
                                     headers=sent)
    context = ssl.create_default_context(cafile=str(emulator.certificate))
    try:
        with urllib.request.urlopen(request, context=context, timeout=60) as answer:
            return Answer(answer.status, _decoded(answer.read()), answer.headers)
    except urllib.error.HTTPError as error:
        return Answer(error.code, _decoded(error.read()), error.headers)


def token_for(emulator, resource: str) -> str:
    """A managed-identity token for ``resource``, asked for as App Service does."""
    query = urllib.parse.urlencode({"resource": resource, "api-version": "2019-08-01"})
    answer = call(emulator, "GET", f"/msi/token?{query}",
                  headers={"X-IDENTITY-HEADER": IDENTITY_HEADER})
    assert answer.status == 200, answer.body
    return answer.body["access_token"]


def management_token(emulator) -> str:
    """A token for Azure Resource Manager (the emulator itself)."""
    return token_for(emulator, emulator.url)


def azure_ml_token(emulator) -> str:
    """A token for Azure ML's own audience."""
    return token_for(emulator, AML_AUDIENCE)


def _decoded(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body
