"""Deployment targets: the contract a target implements, and the registry that finds them.

A target is one module that satisfies :class:`DeployTarget` (``local.py`` is the simplest).
Its ``Options`` dataclass declares the options it takes, with their types, defaults, help
and checks (``field(metadata=option(...))``); ``%aml_deploy``'s flags, its help, the
panel's option fields and the checks of :func:`mlmagic.deploy(...) <mlmagic.core.deploy>`
are all built from it. The registry finds every target module in :data:`TARGET_PACKAGES`
and those other packages declare under the ``mlmagic.targets`` entry-point group, so adding a
target is adding one file.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import pkgutil
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

from mlmagic.base.errors import InvalidInput, MissingExtra

TARGET_PACKAGES = ("mlmagic.deploy", "mlmagic.azure")
ENTRY_POINT_GROUP = "mlmagic.targets"


@dataclass
class Endpoint:
    """A served model: its name, where it runs, which model, and its scoring URL."""

    name: str
    target: str
    model: str
    url: str
    details: dict = field(default_factory=dict)
    # What the target manages the endpoint by from this process (a served model's process
    # and lease, an endpoint's key); never shown.
    handle: Any = field(default=None, repr=False, compare=False)


class Owner(Protocol):
    """What a target may ask of the session it deploys for."""

    def endpoint_lease(self, file_name: str, **data: Any) -> Any:
        """Write down what must be stopped if this kernel dies (the next session on this
        machine stops it); the lease, to ``release()`` once stopped, or None."""


@runtime_checkable
class DeployTarget(Protocol):
    """What a deploy target provides, modelled on MLflow's ``BaseDeploymentClient``.

    ``NAME`` is what ``--target`` takes; ``SUMMARY`` one line for help; ``REQUIRES`` the
    module it needs and the extra that installs it (None: nothing beyond mlmagic);
    ``LEGACY`` marks a deprecated target (listed last); ``Options`` a dataclass of its
    options; ``DEFAULT_TIMEOUT`` the seconds ``deploy`` waits by default. A target whose
    endpoints live only as long as the session (a process of this kernel) sets
    ``ENDS_WITH_SESSION = True``: the session's end deletes them. A target that deploys from
    an Azure ML workspace's registry sets ``REGISTRY = "azureml"``: it is given the
    workspace's connection, and a model of another registry is copied there first. A target
    may have ``check(name, connection)``: what it checks before anything is made or copied
    (that it has what it deploys to, its rule for endpoint names); it raises InvalidInput."""

    NAME: str
    SUMMARY: str
    REQUIRES: tuple[str, str] | None
    LEGACY: bool
    Options: type
    DEFAULT_TIMEOUT: float

    def deploy(self, model: Any, name: str, *, timeout: float, connection: Any,
               options: Any, owner: Owner) -> Endpoint:
        """Serve ``model`` (a ModelRef) as the endpoint ``name``; return it once it is ready."""

    def status(self, endpoint: Endpoint) -> str:
        """The endpoint's state, in a few words."""

    def predict(self, endpoint: Endpoint, frame: Any) -> list:
        """Send a pandas DataFrame to the endpoint; its predictions."""

    def delete(self, endpoint: Endpoint) -> None:
        """Stop the endpoint and remove what it used."""


def option(help: str, *, check: Callable[[Any], Any] | None = None, required: bool = False,
           metavar: str | None = None, flag: str | None = None, short: str | None = None
           ) -> dict:
    """The metadata of an ``Options`` field: its help, a check that returns the value or
    raises InvalidInput, whether the target needs it, the name of its value in help, and (for
    the magic) a flag other than ``--name-with-dashes`` and a one-letter alias."""
    return {"help": help, "check": check, "required": required, "metavar": metavar,
            "flag": flag, "short": short}


@dataclass(frozen=True)
class OptionSpec:
    """One option of one or more targets, as the magic and the panel need it."""

    name: str
    kind: type  # int, float, str, bool or dict
    help: str
    targets: tuple[str, ...]
    flag: str
    short: str | None
    metavar: str | None


def targets() -> dict[str, ModuleType]:
    """Every deploy target by name: local first, then the others, deprecated ones last."""
    found = dict(_discovered())
    return dict(sorted(found.items(),
                       key=lambda item: (item[1].LEGACY, item[0] != "local", item[0])))


def target(name: str) -> ModuleType:
    """The target called ``name``; MissingExtra if what it needs is not installed."""
    module = _known(name)
    if module.REQUIRES is not None:
        needed, extra = module.REQUIRES
        try:
            installed = importlib.util.find_spec(needed) is not None
        except (ImportError, ValueError):  # a parent package missing, or set to None
            installed = False
        if not installed:
            raise MissingExtra(f"the {name} target needs {needed.split('.')[0]}: "
                               f'pip install "mlmagic[{extra}]"')
    return module


def option_specs() -> list[OptionSpec]:
    """The options of all targets, each once, in the order the targets declare them."""
    specs: dict[str, OptionSpec] = {}
    for name, module in targets().items():
        hints = typing.get_type_hints(module.Options)
        for item in dataclasses.fields(module.Options):
            known = specs.get(item.name)
            if known is not None:
                specs[item.name] = dataclasses.replace(known, targets=(*known.targets, name))
                continue
            meta = item.metadata
            specs[item.name] = OptionSpec(
                item.name, _kind(hints[item.name]), meta.get("help", ""), (name,),
                meta.get("flag") or f"--{item.name.replace('_', '-')}", meta.get("short"),
                meta.get("metavar"))
    return list(specs.values())


def option_value(spec: OptionSpec, text: str) -> Any:
    """An option's value from what a user typed: a number, yes / no, ``k=v, k=v`` pairs or
    the text itself; a line saying what was expected if it is none of these."""
    text = text.strip()
    try:
        if spec.kind in (int, float):
            return spec.kind(text)
        if spec.kind is bool:
            return {"yes": True, "true": True, "no": False, "false": False}[text.lower()]
        if spec.kind is dict:
            pairs = [part.split("=", 1) for part in text.split(",") if part.strip()]
            if any(len(pair) != 2 or not pair[0].strip() for pair in pairs):
                raise ValueError(text)
            return {key.strip(): value.strip() for key, value in pairs}
    except (ValueError, KeyError):
        expected = {int: "a whole number", float: "a number", bool: "yes or no",
                    dict: "KEY=VALUE pairs separated by commas"}[spec.kind]
        raise InvalidInput(f"{spec.name.replace('_', ' ')} expects {expected}, got "
                           f"'{text}'.") from None
    return text


def checked_options(name: str, given: Mapping[str, Any],
                    shown: Callable[[str], str] = lambda option: option) -> Any:
    """``given`` (None values left out) as the target's ``Options``, each value checked; a
    line naming (through ``shown``) an option the target does not take or one it needs.
    (Whether the target's extra is installed is :func:`target`'s to say.)"""
    module = _known(name)
    given = {key: value for key, value in given.items() if value is not None}
    fields = {item.name: item for item in dataclasses.fields(module.Options)}
    foreign = [shown(key) for key in given if key not in fields]
    if foreign:
        raise InvalidInput(f"{', '.join(foreign)} does not apply to the {name} target.")
    for key, item in fields.items():
        if item.metadata.get("required") and key not in given:
            value = item.metadata.get("metavar") or key.upper()
            raise InvalidInput(f"the {name} target needs {shown(key)} {value}: "
                               f"{item.metadata.get('help', key)}.")
        check = item.metadata.get("check")
        if check is not None and key in given:
            given[key] = check(given[key])
    return module.Options(**given)


def _known(name: str) -> ModuleType:
    known = targets()
    if name not in known:
        raise InvalidInput(f"unknown deploy target '{name}'. Known targets: "
                           f"{', '.join(known)}.")
    return known[name]


@cache
def _discovered() -> tuple[tuple[str, ModuleType], ...]:
    modules = []
    for package_name in TARGET_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__):
            modules.append(importlib.import_module(f"{package_name}.{info.name}"))
    modules += [entry.load() for entry in _entry_points()]
    return tuple((module.NAME, module) for module in modules
                 if isinstance(module, DeployTarget))


def _entry_points() -> list:
    from importlib.metadata import entry_points

    return list(entry_points(group=ENTRY_POINT_GROUP))


def _kind(hint: Any) -> type:
    """int, float, str, bool or dict, from an annotation such as ``int | None``."""
    for candidate in (*typing.get_args(hint), hint):
        origin = typing.get_origin(candidate) or candidate
        if origin in (int, float, str, bool, dict):
            return origin
    return str
