"""Deployment targets, one module each, chosen by name.

A target module has ``OPTIONS`` (the deploy options it takes, e.g. ``port``), ``REQUIRES``
(the module it needs and the extra that installs it, or None),
``deploy(model, name, *, timeout, connection, **options) -> Endpoint``,
``status(endpoint) -> str``, ``predict(endpoint, frame) -> list`` and ``delete(endpoint)``.
Adding a target is adding a module here and its name to ``TARGETS``.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from types import ModuleType

from mlmagic.errors import InvalidInput, MissingExtra

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
    """The target module called ``name``; MissingExtra if what it needs is not installed."""
    if name not in TARGETS:
        raise InvalidInput(f"unknown deploy target '{name}'. Known targets: {', '.join(TARGETS)}.")
    module = importlib.import_module(f"mlmagic.deploy.{name}")
    if module.REQUIRES is not None:
        needed, extra = module.REQUIRES
        try:
            found = importlib.util.find_spec(needed) is not None
        except (ImportError, ValueError):  # a parent package missing, or set to None
            found = False
        if not found:
            raise MissingExtra(f"the {name} target needs {needed.split('.')[0]}: "
                               f'pip install "mlmagic[{extra}]"')
    return module
