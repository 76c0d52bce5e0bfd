"""Copying a registered model version into an Azure ML workspace's registry: from the
connection's registry (the Databricks workspace's, Unity Catalog, or any MLflow registry) to
the Azure ML workspace linked to it (--track both), or the one it is connected to. This is
what ``%aml_register NAME --to azureml`` does, and what ``%aml_deploy`` does first for an
Azure ML target when the model is registered elsewhere (MLflow's old
``mlflow.azureml.deploy(..., model_name=...)`` did the same).

The version's files are downloaded through the source registry (``models:/NAME/VERSION``),
logged as the artifacts of a run in the workspace's current experiment ("copy of NAME version
V"), and registered from there under the name Azure ML takes (Unity Catalog's
``main.default.churn`` becomes ``main-default-churn``), the run and the version tagged with
where they came from (:data:`SOURCE_TAGS`). A version copied before is found by those tags
and reused, never copied twice. What a copy that fails part-way made is removed again.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

from mlmagic.base.display import Card, ShownAsCard, card, silenced
from mlmagic.base.env import temporary_env
from mlmagic.base.errors import InvalidInput, MlmagicError
from mlmagic.base.failures import explain
from mlmagic.base.secrets import error_line, redact_uri
from mlmagic.core.session import Connection
from mlmagic.databricks import workspace as databricks

SOURCE_TAGS = {
    "registry": "mlmagic.source.registry",  # the registry URI (databricks-uc, databricks, …)
    "workspace": "mlmagic.source.workspace",  # the store's UI (a Databricks workspace's URL)
    "name": "mlmagic.source.name",
    "version": "mlmagic.source.version",
    "run_id": "mlmagic.source.run_id",
    "page": "mlmagic.source.url",  # the version's page there
}
SAME_SOURCE = ("registry", "workspace", "name", "version")  # what a copy made before matches
QUIET = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
         "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
# MLflow says it waits for the new version to be ready; the copy's line says what matters
REGISTRY_LOGGERS = ("mlflow.store.model_registry.abstract_store",)


@dataclass(frozen=True)
class Source:
    """A registered model version in the registry it is copied from."""

    name: str
    version: str
    registry_uri: str
    tracking_uri: str
    workspace: str | None = None
    run_id: str | None = None
    page: str | None = None

    @property
    def registry(self) -> str:
        """The registry, as a sentence names it ("Unity Catalog")."""
        return databricks.registry_name(self.registry_uri) or redact_uri(self.registry_uri)

    def tags(self) -> dict[str, str]:
        """The tags that say, on the copy, where it came from."""
        values = {"registry": redact_uri(self.registry_uri), "workspace": self.workspace,
                  "name": self.name, "version": self.version, "run_id": self.run_id,
                  "page": self.page}
        return {SOURCE_TAGS[key]: value for key, value in values.items() if value}

    def __str__(self) -> str:
        return f"{self.name} version {self.version}"


@dataclass(frozen=True, repr=False)
class Copied(ShownAsCard):
    """A version in the Azure ML workspace's registry that is the copy of ``source``: its
    name, version, where its files are (``uri``) and its page in the studio."""

    name: str
    version: str
    uri: str
    source: Source
    reused: bool = False  # copied before, found by its tags
    link: str | None = None

    def line(self) -> str:
        """What happened, in one line."""
        if self.reused:
            return (f"{self.source} from {self.source.registry} is in Azure ML as {self.name} "
                    f"version {self.version} already (copied before)")
        return (f"copied {self.source} from {self.source.registry} to Azure ML as {self.name} "
                f"version {self.version}")

    def _card(self) -> Card:
        return card(f"model {self.name} version {self.version} in Azure ML",
                    ("copy", self.line()), ("studio", self.link),
                    ("source", self.source.page or self.source.workspace),
                    ("source run", self.source.run_id))


def azureml_target(connection: Connection) -> Connection:
    """The Azure ML workspace a copy goes to (the connection's, or the one linked to it), or
    one line saying how to name one."""
    target = connection.azureml
    if target is None:
        raise InvalidInput(
            "there is no Azure ML workspace to copy to: link one with %aml_connect … "
            "--workspace NAME --subscription ID --resource-group RG --track both (tracking "
            "stays where it is), or connect to the workspace itself.")
    return target


def needs_copy(target: Connection) -> bool:
    """Whether the connection's registry is another than the Azure ML workspace's."""
    import mlflow

    return mlflow.get_registry_uri() != target.tracking_uri


def copy_version(connection: Connection, name: str, version: str,
                 tags: dict[str, str] | None = None) -> Copied:
    """Copy version ``version`` of the model ``name`` (of the connection's registry) into
    the Azure ML workspace's registry, with ``tags`` besides the source's; the copy made
    before, if there is one. A failure is one line, and leaves nothing made."""
    import mlflow

    target = azureml_target(connection)
    if not needs_copy(target):
        raise InvalidInput(f"{name} version {version} is in the Azure ML workspace's registry "
                           "already: there is nothing to copy.")
    source = _source(connection, name, version)
    client, spelt = _registry(target), target.backend.model_name_for(name)
    with _one_line(source, target.tracking_uri):
        found = _made_before(client, spelt, source)
    if found is not None:
        return _copied(target, found, source, reused=True)
    with tempfile.TemporaryDirectory() as folder:
        with _one_line(source, source.tracking_uri):
            files = mlflow.artifacts.download_artifacts(
                f"models:/{source.name}/{source.version}", dst_path=folder,
                tracking_uri=source.tracking_uri, registry_uri=source.registry_uri)
        with _one_line(source, target.tracking_uri):
            made = _upload(client, target, source, spelt, files, tags or {})
    return _copied(target, made, source)


@contextlib.contextmanager
def _one_line(source: Source, uri: str) -> Iterator[None]:
    """Quiet MLflow while the block talks to the store at ``uri``, and make its failure one
    line."""
    try:
        with temporary_env(QUIET), silenced(REGISTRY_LOGGERS):
            yield
    except MlmagicError:
        raise
    except Exception as error:
        raise _failed(error, source, uri) from None


def _source(connection: Connection, name: str, version: str) -> Source:
    """What the copy says of the version it copies (its run, its page there)."""
    import mlflow

    registry_uri = mlflow.get_registry_uri()
    found = connection.client().get_model_version(name, version)
    backend = connection.backend
    page = (databricks.model_version_page(backend.ui_url, registry_uri, name, version)
            if backend.ui_url and databricks.registry_name(registry_uri)
            else backend.link(backend.model_path, name=name, version=version))
    return Source(name, str(version), registry_uri, connection.tracking_uri,
                  workspace=backend.ui_url, run_id=found.run_id or None, page=page)


def _registry(target: Connection):
    """An MlflowClient of the workspace's registry (named: MLflow's registry URI is the
    source's)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=target.tracking_uri, registry_uri=target.tracking_uri)


def _made_before(client, name: str, source: Source):
    """The version of ``name`` whose tags name ``source``, if there is one."""
    from mlflow.exceptions import MlflowException

    wanted = {SOURCE_TAGS[key]: source.tags().get(SOURCE_TAGS[key]) for key in SAME_SOURCE}
    try:
        versions = client.search_model_versions(f"name = '{_quoted(name)}'")
    except MlflowException as error:  # a registry may answer so for a model it does not have
        if error.error_code not in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
            raise
        return None
    for version in sorted(versions, key=lambda v: int(v.version)):
        if all((version.tags or {}).get(tag) == value for tag, value in wanted.items()):
            return version
    return None


def _upload(client, target: Connection, source: Source, name: str, files: str,
            tags: dict[str, str]):
    """Log the files as a run's in the workspace and register the new version of ``name``
    from there; the run is deleted again if a step fails."""
    run = client.create_run(target.experiment_id, tags=source.tags(),
                            run_name=f"copy of {source}")
    run_id = run.info.run_id
    try:
        client.log_artifacts(run_id, files, "model")
        client.set_terminated(run_id, "FINISHED")
        return _register(client, name, f"{run.info.artifact_uri}/model", run_id,
                         {**source.tags(), **tags})
    except Exception:
        with contextlib.suppress(Exception):
            client.delete_run(run_id)
        raise


def _register(client, name: str, files: str, run_id: str, tags: dict[str, str]):
    """A new version of ``name`` (the registered model made if it is new) from ``files``;
    a registered model made here is removed again if the version cannot be."""
    from mlflow.exceptions import MlflowException

    made = False
    try:
        client.create_registered_model(name)
        made = True
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    try:
        return client.create_model_version(name, files, run_id=run_id, tags=tags)
    except Exception:
        if made:
            with contextlib.suppress(Exception):
                client.delete_registered_model(name)
        raise


def _copied(target: Connection, version, source: Source, *, reused: bool = False) -> Copied:
    backend = target.backend
    return Copied(version.name, str(version.version), version.source, source, reused,
                  backend.link(backend.model_path, name=version.name, version=version.version))


def _failed(error: Exception, source: Source, uri: str) -> MlmagicError:
    """The one line for a copy that failed talking to the store at ``uri``."""
    explained = explain(error, uri)
    why = str(explained) if explained is not None else error_line(error, uri)
    return (type(explained) if explained is not None else MlmagicError)(
        f"could not copy {source} to Azure ML (nothing was copied): {why}")


def _quoted(text: str) -> str:
    return text.replace("'", "\\'")
