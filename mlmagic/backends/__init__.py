"""Tracking backends, one module each, chosen by the tracking URI.

Each module keeps the contract in :mod:`mlmagic.backends.contract` (``TrackingBackend``);
the registry below finds every module of :data:`BACKEND_PACKAGES` that does (this package,
and the platform packages), and asks them in turn (the catch-all ``local`` last). Adding a
backend is adding one module.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from types import ModuleType

from mlmagic.backends.contract import Backend, TrackingBackend

__all__ = ["Backend", "TrackingBackend", "backends", "open_backend"]
BACKEND_PACKAGES = (__name__, "mlmagic.azure", "mlmagic.databricks")


@cache
def backends() -> tuple[ModuleType, ...]:
    """Every tracking backend, the catch-all last."""
    found = []
    for package_name in BACKEND_PACKAGES:
        package = importlib.import_module(package_name)
        found += [importlib.import_module(f"{package_name}.{info.name}")
                  for info in pkgutil.iter_modules(package.__path__)]
    return tuple(sorted((module for module in found if isinstance(module, TrackingBackend)),
                        key=lambda module: (module.CATCH_ALL, module.NAME)))


def open_backend(uri: str, timeout: float) -> Backend:
    """Check the store at ``uri`` with the backend that handles it, and describe it."""
    for module in backends():
        if module.handles(uri):
            return module.open(uri, timeout)
    raise AssertionError("the local backend handles every URI")
