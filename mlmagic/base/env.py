"""Environment variables set for a block and put back after it, safely across threads (MLflow
reads its HTTP retry and timeout settings from the environment, process-wide)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_ENV_LOCK = threading.Lock()
_ENV_OVERRIDES: dict[str, list[tuple[object, str]]] = {}  # name -> (block, value), newest last
_ENV_BEFORE: dict[str, str | None] = {}  # name -> its value before the first override


@contextmanager
def temporary_env(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block, then put back what was there. Blocks in
    several threads may overlap: while any is open, the newest one's value holds; when the
    last closes, the value from before them is back."""
    block = object()
    with _ENV_LOCK:
        for name, value in values.items():
            if not _ENV_OVERRIDES.get(name):
                _ENV_BEFORE[name] = os.environ.get(name)
            _ENV_OVERRIDES.setdefault(name, []).append((block, value))
            os.environ[name] = value
    try:
        yield
    finally:
        with _ENV_LOCK:
            for name in values:
                _ENV_OVERRIDES[name] = [o for o in _ENV_OVERRIDES[name] if o[0] is not block]
                if _ENV_OVERRIDES[name]:
                    os.environ[name] = _ENV_OVERRIDES[name][-1][1]
                elif _ENV_BEFORE.get(name) is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = _ENV_BEFORE[name]
