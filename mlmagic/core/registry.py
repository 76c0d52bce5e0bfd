"""The model registry: register models as new versions under a name, name them anywhere as
``NAME``, ``NAME:VERSION``, ``NAME@ALIAS`` or a full URI, and list them."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlmagic.core.connection import ensure_connected
from mlmagic.core.display import Card, card
from mlmagic.core.search import stored_run
from mlmagic.core.secrets import error_line
from mlmagic.core.state import STATE, last_run_id
from mlmagic.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    import pandas as pd

_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:/")
_REGISTERED = re.compile(r"^models:/(?P<name>[^/@]+?)(?:/(?P<version>\d+)|@(?P<alias>[^/]+))?/?$")
_SHORT = re.compile(r"^(?P<name>[^:@]+?)(?::(?P<version>\d+)|@(?P<alias>.+))?$")


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: the URI to load it from and, if registered, its name and version."""

    uri: str
    name: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        return f"{self.name} version {self.version}" if self.name else self.uri


def resolve_model(reference: str) -> ModelRef:
    """Resolve ``NAME`` (latest version), ``NAME:VERSION``, ``NAME@ALIAS`` or a model URI."""
    reference = reference.strip()
    if not reference:
        raise InvalidInput("no model given. Name one as NAME, NAME:VERSION, NAME@ALIAS or a URI.")
    registered = _REGISTERED.match(reference)
    if _URI.match(reference) and not registered:
        return ModelRef(reference)
    parts = (registered or _SHORT.match(reference)).groupdict()
    version = _registered_version(parts["name"], parts["version"], parts["alias"])
    return ModelRef(f"models:/{parts['name']}/{version}", parts["name"], version)


def register(
    name: str,
    *,
    run: str = "last",
    path: str | None = "model",
    uri: str | None = None,
    alias: str | None = None,
    tags: Mapping[str, str] | None = None,
):
    """Register a model as a new version of ``name``: the model a run logged at ``path``
    (``run`` is a run id or "last"; ``path`` None: the model it logged last), or the model
    at ``uri``. Returns the ModelVersion."""
    from mlflow import MlflowClient

    if not name or not name.strip():
        raise InvalidInput("the model name is empty. Example: %aml_register churn-model")
    connection = ensure_connected()
    client = MlflowClient(connection.tracking_uri)
    if uri:
        source = resolve_model(uri).uri
    else:
        run_id = last_run_id("Give --run RUN_ID or --uri URI.") if run == "last" else run
        source = _logged_model_uri(client, run_id, path)
    version = _quietly_register(client, name.strip(), source, dict(tags or {}))
    if alias:
        client.set_registered_model_alias(version.name, alias, version.version)
    return client.get_model_version(version.name, version.version)


def set_alias(model: str, alias: str):
    """Point ``alias`` (e.g. champion) at the version ``model`` names (NAME:VERSION, NAME
    for the latest, NAME@OTHER_ALIAS); the alias moves if another version had it. Returns the
    ModelVersion."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    alias = (alias or "").strip()
    if not alias:
        raise InvalidInput("the alias is empty. Example: champion")
    ref = resolve_model(model)
    if ref.name is None:
        raise InvalidInput(f"{model} is not a registered model; name one as NAME:VERSION.")
    client = MlflowClient(ensure_connected().tracking_uri)
    try:
        client.set_registered_model_alias(ref.name, alias, ref.version)
    except MlflowException as error:
        raise InvalidInput(
            f"could not set the alias '{alias}': {error_line(error, client.tracking_uri)}"
        ) from None
    return client.get_model_version(ref.name, ref.version)


def version_summary(version) -> Card:
    """A card for a registered model version: name, version, aliases, source run, link."""
    backend = STATE.connection.backend if STATE.connection else None
    link = backend and backend.link(backend.model_path, name=version.name, version=version.version)
    return card(
        f"model {version.name} version {version.version}",
        ("aliases", ", ".join(version.aliases)),
        ("source run", version.run_id),
        ("source", version.source),
        ("link", link),
    )


def models(name: str | None = None) -> pd.DataFrame:
    """The registered models, or the versions of the model ``name``, as a pandas DataFrame."""
    import pandas as pd
    from mlflow import MlflowClient

    client = MlflowClient(ensure_connected().tracking_uri)
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
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(ensure_connected().tracking_uri)
    if alias:
        try:
            return str(client.get_model_version_by_alias(name, alias).version)
        except MlflowException:
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
    found = client.search_model_versions(f"name = '{_quoted(name)}'")
    if not found:
        raise NotFound(f"no registered model named '{name}'. List them with %aml_models.")
    return found


def _logged_model_uri(client, run_id: str, path: str) -> str:
    """The URI of the model the run logged under ``path`` (MLflow 3's logged models first,
    then a model saved among the run's artifacts)."""
    run = stored_run(client, run_id)
    named = f" AND name = '{_quoted(path)}'" if path else ""
    logged = client.search_logged_models(
        [run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'{named}"
    )
    if logged:
        return f"models:/{max(logged, key=lambda m: m.creation_timestamp).model_id}"
    if path is None:
        raise NotFound(
            f"the run {run_id} logged no model, so nothing was registered. Log one in the "
            "cell, e.g. mlflow.sklearn.log_model(model, name='model')."
        )
    artifact_uri = f"runs:/{run_id}/{path}"
    try:
        listed = [artifact.path for artifact in client.list_artifacts(run_id, path)]
    except Exception:
        listed = []
    if f"{path.strip('/')}/MLmodel" not in listed:
        raise NotFound(
            f"the run {run_id} has no model at '{path}'. Log one in the run "
            "(mlflow.sklearn.log_model(model, name='model')) or give --path."
        )
    return artifact_uri


def _quietly_register(client, name: str, source: str, tags: dict):
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        # MLflow prints its own "Created version" lines; the caller shows a summary instead
        with contextlib.redirect_stderr(io.StringIO()):
            return mlflow.register_model(source, name, tags=tags or None)
    except MlflowException as error:
        raise InvalidInput(
            f"could not register '{name}': {error_line(error, client.tracking_uri)}"
        ) from None


def _quoted(text: str) -> str:
    return text.replace("'", "\\'")
