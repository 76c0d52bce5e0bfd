"""Deployment targets, one module each, chosen by name.

A target module has ``OPTIONS`` (the deploy options it takes, e.g. ``port``),
``deploy(model, name, *, timeout, connection, **options) -> Endpoint``,
``status(endpoint) -> str``, ``predict(endpoint, frame) -> list`` and ``delete(endpoint)``.
Adding a target is adding a module here and its name to ``TARGETS``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType

from mlmagic.errors import InvalidInput

TARGETS = ("local", "online", "kubernetes", "aci", "aks")


@dataclass
class Endpoint:
    """A served model: its name, where it runs, which model, and its scoring URL."""

    name: str
    target: str
    model: str
    url: str
    details: dict = field(default_factory=dict)


def target(name: str) -> ModuleType:
    """The target module called ``name``."""
    if name not in TARGETS:
        raise InvalidInput(f"unknown deploy target '{name}'. Known targets: {', '.join(TARGETS)}.")
    return importlib.import_module(f"mlmagic.deploy.{name}")
