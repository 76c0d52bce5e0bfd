"""The model registry: register models as new versions under a name, name them anywhere as
``NAME``, ``NAME:VERSION``, ``NAME@ALIAS`` or a full URI, and list them."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlmagic.base.checks import (
    checked_alias,
    checked_model_name,
    checked_params,
    checked_version,
)
from mlmagic.base.display import Card, card, silenced
from mlmagic.base.env import temporary_env
from mlmagic.base.errors import InvalidInput, NotFound
from mlmagic.base.failures import explain
from mlmagic.base.library_log import NO_PROGRESS_BARS
from mlmagic.base.secrets import error_line
from mlmagic.core.connection import ensure_connected
from mlmagic.core.copying import REGISTRY_LOGGERS, Copied, azureml_target, copy_version
from mlmagic.core.interactive import interactive
from mlmagic.core.search import logged_models, run_artifact_paths, stored_run
from mlmagic.core.session import current_session, last_run_id

if TYPE_CHECKING:
    import pandas as pd

_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:/")
_LOGGED_MODEL = re.compile(r"^models:/m-[0-9a-f]{32}/?$")


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: the URI to load it from and, if registered, its name and version."""

    uri: str
    name: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        return f"{self.name} version {self.version}" if self.name else self.uri


@interactive
def resolve_model(reference: str) -> ModelRef:
    """Resolve ``NAME`` (latest version), ``NAME:VERSION``, ``NAME@ALIAS`` or a model URI
    (``models:/NAME/VERSION``, ``models:/NAME@ALIAS`` included)."""
    reference = (reference or "").strip()
    if not reference:
        raise InvalidInput("no model given. Name one as NAME, NAME:VERSION, NAME@ALIAS or a URI.")
    if reference.startswith("models:/") and not _LOGGED_MODEL.match(reference):
        name, version, alias = _parts(reference[len("models:/"):].rstrip("/"), "/", reference)
    elif _URI.match(reference):
        return ModelRef(reference)
    else:
        name, version, alias = _parts(reference, ":", reference)
    version = _registered_version(name, version, alias)
    return ModelRef(f"models:/{name}/{version}", name, version)


def _parts(text: str, version_mark: str, reference: str) -> tuple[str, str | None, str | None]:
    """NAME, VERSION and ALIAS of ``NAME``, ``NAME<mark>VERSION`` or ``NAME@ALIAS``, checked."""
    name, alias = text.split("@", 1) if "@" in text else (text, None)
    version = None
    if alias is None and version_mark in name:
        name, version = name.split(version_mark, 1)
    if not name.strip():
        raise InvalidInput(f"'{reference}' names no model before its version or alias. "
                           "Example: churn:3 or churn@champion")
    name = checked_model_name(name)
    if version is not None:
        version = checked_version(version, reference)
    if alias is not None:
        alias = checked_alias(alias)
    return name, version, alias


@interactive
def register(
    name: str,
    *,
    run: str | None = None,
    path: str | None = "model",
    uri: str | None = None,
    alias: str | None = None,
    tags: Mapping[str, str] | None = None,
    to: str | None = None,
):
    """Register a model as a new version of ``name``: the model a run logged at ``path``
    (``run`` is a run id or "last", the default; ``path`` None: the model it logged last),
    or the model at ``uri``. Everything is checked first (the name, the alias, the tags, that
    the model exists), and a registered model this call created is removed again if the
    version cannot be made. Returns the ModelVersion.

    ``to="azureml"`` copies instead the version ``name`` names in the connection's registry
    (``NAME:VERSION``, ``NAME@ALIAS``, or ``NAME`` for the latest: a version of the Databricks
    workspace's registry or of Unity Catalog) into the Azure ML workspace's registry: the
    workspace linked to the connection (--track both), or the connected one. Its name there
    is one Azure ML takes (``main.default.churn`` becomes ``main-default-churn``); its tags
    say where it came from, along with ``tags``. A version copied before is reused, never
    copied twice. Returns the :class:`~mlmagic.core.copying.Copied` version."""
    if to is not None:
        return _copy_to(to, name, tags, other=(run, uri, alias, None if path == "model"
                                                else path))
    name = checked_model_name(name)
    alias = checked_alias(alias) if alias is not None else None
    tags = checked_params(dict(tags or {}), "tag")
    if uri is not None and run is not None:
        raise InvalidInput("give a run or a model URI, not both.")
    connection = ensure_connected()
    client = connection.client()
    source_run = None
    if uri is not None:
        source = resolve_model(uri).uri
    else:
        run_id = last_run_id("Give --run RUN_ID or --uri URI.") if run in (None, "last") else run
        source, source_run = _run_model(client, run_id, path)
    _check_unity_catalog(name, _check_model_at(source))
    version = _register_or_undo(client, name, source, tags, source_run)
    if alias:
        client.set_registered_model_alias(version.name, alias, version.version)
    return client.get_model_version(version.name, version.version)


def _copy_to(to: str, model: str, tags: Mapping[str, str] | None, other: tuple) -> Copied:
    """register(model, to=...): everything checked before anything is copied."""
    if to != "azureml":
        raise InvalidInput(f"a registered version can be copied to azureml, not to '{to}'.")
    if any(value is not None for value in other):
        raise InvalidInput("copying to azureml takes a registered version (NAME, NAME:VERSION "
                           "or NAME@ALIAS), not a run, a model URI, a path or an alias.")
    tags = checked_params(dict(tags or {}), "tag")
    connection = ensure_connected()
    azureml_target(connection)
    ref = resolve_model(model)
    if ref.name is None:
        raise InvalidInput(f"{model} is not a registered model version; name one as "
                           "NAME:VERSION, NAME@ALIAS or NAME.")
    return copy_version(connection, ref.name, ref.version, tags)


@interactive
def set_alias(model: str, alias: str):
    """Point ``alias`` (e.g. champion) at the version ``model`` names (NAME:VERSION, NAME
    for the latest, NAME@OTHER_ALIAS); the alias moves if another version had it. Returns the
    ModelVersion."""
    from mlflow.exceptions import MlflowException

    alias = checked_alias(alias)
    ref = resolve_model(model)
    if ref.name is None:
        raise InvalidInput(f"{model} is not a registered model; name one as NAME:VERSION.")
    client = ensure_connected().client()
    try:
        client.set_registered_model_alias(ref.name, alias, ref.version)
    except MlflowException as error:
        if explain(error, client.tracking_uri) is not None:
            raise
        raise InvalidInput(
            f"could not set the alias '{alias}': {error_line(error, client.tracking_uri)}"
        ) from None
    return client.get_model_version(ref.name, ref.version)


def version_summary(version) -> Card:
    """A card for a registered model version: name, version, aliases, source run, link."""
    backend = current_session().connection.backend if current_session().connection else None
    link = backend and backend.link(backend.model_path, name=version.name, version=version.version)
    return card(
        f"model {version.name} version {version.version}",
        ("aliases", ", ".join(version.aliases)),
        ("source run", version.run_id),
        ("source", version.source),
        ("link", link),
    )


@interactive
def models(name: str | None = None) -> pd.DataFrame:
    """The registered models, or the versions of the model ``name``, as a pandas DataFrame."""
    import pandas as pd

    client = ensure_connected().client()
    if name is None:
        rows = [
            {
                "name": model.name,
                "latest_version": max(
                    (int(v.version) for v in model.latest_versions), default=None
                ),
                "aliases": dict(model.aliases or {}),
                "description": model.description,
                "updated": pd.to_datetime(model.last_updated_timestamp, unit="ms"),
            }
            for model in client.search_registered_models()
        ]
        columns = ["name", "latest_version", "aliases", "description", "updated"]
        return pd.DataFrame(rows, columns=columns)
    versions = _versions(client, name)
    # a version found by search carries no aliases in every store: ask the model for them
    aliases = client.get_registered_model(name).aliases or {}
    rows = [
        {
            "version": int(v.version),
            "aliases": sorted(a for a, on in aliases.items() if str(on) == str(v.version)),
            "run_id": v.run_id,
            "source": v.source, "status": v.status,
            "created": pd.to_datetime(v.creation_timestamp, unit="ms"),
        }
        for v in sorted(versions, key=lambda v: int(v.version), reverse=True)
    ]
    return pd.DataFrame(rows)


def _registered_version(name: str, version: str | None, alias: str | None) -> str:
    from mlflow.exceptions import MlflowException

    client = ensure_connected().client()
    if alias:
        try:
            return str(client.get_model_version_by_alias(name, alias).version)
        except MlflowException as error:
            if explain(error, client.tracking_uri) is not None:
                raise
            raise NotFound(
                f"the model '{name}' has no alias '{alias}'. Set one with "
                f"%aml_register … --alias {alias}, or name a version: {name}:1."
            ) from None
    known = sorted(int(v.version) for v in _versions(client, name))
    if version is None:
        return str(known[-1])
    if int(version) not in known:
        raise NotFound(f"the model '{name}' has no version {version}; it has {known}.")
    return version


def _versions(client, name: str) -> list:
    from mlflow.exceptions import MlflowException

    try:
        found = client.search_model_versions(f"name = '{_quoted(name)}'")
    except MlflowException as error:  # Unity Catalog's answer for a model it does not have
        if error.error_code not in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
            raise
        found = []
    if not found:
        raise NotFound(f"no registered model named '{name}'. List them with %aml_models.")
    return found


def _run_model(client, run_id: str, path: str | None) -> tuple[str, str | None]:
    """Where the model the run logged under ``path`` is (MLflow 3's logged models first, then
    a model saved among the run's artifacts: its place in the run's artifact store), and the
    run to link its version to (None for a logged model: MLflow links those itself)."""
    run = stored_run(client, run_id)
    logged = logged_models(client, run, path)
    if logged:
        return f"models:/{max(logged, key=lambda m: m.creation_timestamp).model_id}", None
    try:
        files = run_artifact_paths(run, client.tracking_uri)
    except Exception as error:
        if explain(error, client.tracking_uri) is not None:
            raise
        files = []
    saved = [file.removesuffix("/MLmodel") for file in files
             if file.count("/") == 1 and file.endswith("/MLmodel")]
    path = path or (saved[0] if saved else None)
    if path is None:
        raise NotFound(
            f"the run {run_id} logged no model, so nothing was registered. Log one in the "
            "cell, e.g. mlflow.sklearn.log_model(model, name='model')."
        )
    if f"{path.strip('/')}/MLmodel" not in files:
        raise NotFound(
            f"the run {run_id} has no model at '{path}'. Log one in the run "
            "(mlflow.sklearn.log_model(model, name='model')) or give --path."
        )
    return f"{run.info.artifact_uri.rstrip('/')}/{path.strip('/')}", run_id


def checked_registry_name(name: str) -> str:
    """``name`` as the registry in use takes it: a name MLflow accepts, and under Unity
    Catalog (registry URI ``databricks-uc``) all three levels, catalog.schema.model. For
    checks made before anything is created (``track(register=...)``)."""
    name = checked_model_name(name)
    if _unity_catalog() and (len(name.split(".")) != 3 or not all(name.split("."))):
        raise InvalidInput(f"'{name}' is not a Unity Catalog model name: give all three "
                           "levels, catalog.schema.model (e.g. main.default.churn).")
    return name


def _unity_catalog() -> bool:
    import mlflow

    return mlflow.get_registry_uri().startswith("databricks-uc")


def _check_unity_catalog(name: str, model) -> None:
    """Unity Catalog's rules, before anything is created: a three-part name and a model
    with a signature (MLflow checks the signature only after creating the registered model)."""
    if not _unity_catalog():
        return
    checked_registry_name(name)
    if model.signature is None:
        raise InvalidInput(
            "Unity Catalog registers only models with a signature, and this one has none, so "
            "nothing was registered. Log it with one: mlflow.sklearn.log_model(model, "
            "name='model', input_example=X.head()) (or signature=infer_signature(X, y)).")


def _check_model_at(source: str):
    """The model at ``source`` (MLflow's ModelInfo); NotFound unless an MLflow model (its
    MLmodel file) is there."""
    from mlflow.exceptions import MlflowException
    from mlflow.models import get_model_info

    try:
        with temporary_env(NO_PROGRESS_BARS):
            return get_model_info(source)
    except (MlflowException, OSError) as error:
        if explain(error, ensure_connected().tracking_uri) is not None:
            raise
        raise NotFound(f"there is no MLflow model at {source}, so nothing was registered. "
                       "Check the run or the URI (%aml_show RUN lists what it logged).") from None


def _register_or_undo(client, name: str, source: str, tags: dict, run_id: str | None):
    """Register ``source`` as a new version of ``name`` (linked to ``run_id``, if given); if
    that fails part-way, remove what this call made (the version, and the registered model
    if it is new). A model among a run's artifacts is registered from the run's artifact
    store, as MLflow's register_model does, but without its look-up of logged models (an API
    some stores lack)."""
    import mlflow

    before = _version_numbers(client, name)
    try:
        # MLflow says "Waiting up to 300 seconds…" and "Created version…"; the caller shows a
        # summary instead
        with silenced(REGISTRY_LOGGERS), contextlib.redirect_stderr(io.StringIO()):
            if run_id is None:
                return mlflow.register_model(source, name, tags=tags or None)
            if before is None:
                client.create_registered_model(name)
            return client.create_model_version(name, source, run_id=run_id, tags=tags or None)
    except Exception as error:
        _undo_registration(client, name, before)
        if explain(error, client.tracking_uri) is not None:
            raise
        raise InvalidInput(
            f"could not register '{name}': {error_line(error, client.tracking_uri)}"
        ) from None


def _version_numbers(client, name: str) -> set[str] | None:
    """The versions of the registered model ``name``; None if there is no such model. (Looked
    up by name: Unity Catalog's registry takes no filter when searching models.)"""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
            return None
        raise
    return {v.version for v in client.search_model_versions(f"name = '{_quoted(name)}'")}


def _undo_registration(client, name: str, before: set[str] | None) -> None:
    from mlflow.exceptions import MlflowException

    with contextlib.suppress(MlflowException):
        for version in (_version_numbers(client, name) or set()) - (before or set()):
            client.delete_model_version(name, version)
        if before is None and _version_numbers(client, name) == set():
            client.delete_registered_model(name)


def _quoted(text: str) -> str:
    return text.replace("'", "\\'")
