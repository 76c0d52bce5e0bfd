"""Plain HTTP calls to the emulator, for its tests."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass
class Answer:
    status: int
    body: Any  # the JSON answered, else the bytes
    headers: Any


def call(emulator, method: str, path: str, *, token: str | None = None, body: Any = None,
         headers: dict[str, str] | None = None) -> Answer:
    """One request to the emulator (``path`` may be a whole URL it issued), signed with
    ``token`` if given."""
    data = json.dumps(body).encode() if isinstance(body, dict | list) else body
    sent = {"Content-Type": "application/json", **(headers or {})}
    if token:
        sent["Authorization"] = f"Bearer {token}"
    url = path if path.startswith("http") else emulator.url + path
    request = urllib.request.Request(url, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return Answer(answer.status, _decoded(answer.read()), answer.headers)
    except urllib.error.HTTPError as failure:
        return Answer(failure.code, _decoded(failure.read()), failure.headers)


def _decoded(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body
