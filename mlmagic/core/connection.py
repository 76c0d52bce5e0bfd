"""Connecting to a tracking backend and choosing the experiment."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from mlmagic.backends import open_backend
from mlmagic.backends.server import network_failure
from mlmagic.config import Settings, read_workspace_config, resolve_settings
from mlmagic.core.display import Card, card, notify
from mlmagic.core.journal import SyncReport, pending, sync_journals
from mlmagic.core.secrets import error_line, redact_uri
from mlmagic.core.state import STATE, Connection
from mlmagic.errors import ConnectionFailed, InvalidInput, NotFound

DEFAULT_TIMEOUT = 8.0
DEFAULT_EXPERIMENT = "Default"
URI_VARIABLE = "MLFLOW_TRACKING_URI"


def embedded_uri(folder: Path | None = None) -> str:
    """The embedded default store: ``mlflow.db`` (SQLite) in the working directory.

    Artifacts go to ``./mlruns`` beside it, as with MLflow's own default, so ``mlflow ui`` run
    in that directory shows the same runs.
    """
    return f"sqlite:///{(folder or Path.cwd()).resolve() / 'mlflow.db'}"


def connect(
    uri: str | None = None,
    *,
    experiment: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    workspace: str | None = None,
    subscription: str | None = None,
    resource_group: str | None = None,
    config: str | Path | None = None,
    auth: str | None = None,
    client: object | None = None,
) -> Connection:
    """Connect MLflow to a tracking backend and select an experiment (created if missing).

    The backend: ``uri``; or an Azure ML workspace named by ``workspace``, ``subscription``
    and ``resource_group``, by a workspace ``config`` file, or by an existing ``client``
    (azure-ai-ml ``MLClient`` or azureml-core ``Workspace``), signed in with ``auth``
    (default: azure-identity's default chain). With none of these: ``MLMAGIC_TRACKING_URI``,
    ``MLFLOW_TRACKING_URI``, the config file, a workspace ``config.json`` nearby, then the
    embedded default. The experiment: ``experiment``, the config file's, then
    ``MLFLOW_EXPERIMENT_NAME``, the session's default, then "Default". A backend that cannot
    be used raises before anything changes.
    """
    workspace_given = (workspace, subscription, resource_group, config, client) != (None,) * 5
    if uri is not None and workspace_given:
        raise InvalidInput("give a tracking URI or an Azure ML workspace, not both.")
    if workspace_given:
        settings = _workspace_settings(workspace, subscription, resource_group, config, client)
    elif uri is None:
        settings = resolve_settings(environ=_user_environment())
    else:
        settings = Settings(uri.strip(), origin="argument")
    if settings.tracking_uri == "":
        raise InvalidInput("the tracking URI is empty. Give a URI, or nothing for the default.")
    backend = _open(settings, auth or settings.options.get("auth") or "default", client, timeout)
    name = _checked_name(
        experiment
        or settings.experiment
        or os.environ.get("MLFLOW_EXPERIMENT_NAME")
        or STATE.default_experiment
        or DEFAULT_EXPERIMENT
    )
    experiment_id = _experiment_id(backend.tracking_uri, name, create=True)

    import mlflow

    users_own = _user_environment().get(URI_VARIABLE)
    mlflow.set_tracking_uri(backend.tracking_uri)
    STATE.env_uri_written, STATE.env_uri_of_user = os.environ.get(URI_VARIABLE), users_own
    mlflow.set_experiment(experiment_id=experiment_id)
    STATE.connection = Connection(backend, name, experiment_id, settings.origin)
    if pending(backend.tracking_uri):
        notify(repr(sync()))
    return STATE.connection


def _workspace_settings(workspace, subscription, resource_group, config, client) -> Settings:
    if client is not None:
        from mlmagic.backends.azureml import workspace_of

        return Settings(None, origin=f"the {type(client).__name__} given",
                        workspace=workspace_of(client))
    if config is not None:
        path = Path(config).expanduser()
        return Settings(None, origin=str(path), workspace=read_workspace_config(path))
    names = {"subscription_id": subscription, "resource_group": resource_group,
             "workspace_name": workspace}
    options = {"subscription_id": "--subscription", "resource_group": "--resource-group",
               "workspace_name": "--workspace"}
    missing = [options[key] for key, value in names.items() if not value]
    if missing:
        raise InvalidInput(
            f"{' and '.join(missing)} missing: a workspace needs --workspace, --subscription "
            "and --resource-group. Or give --config config.json."
        )
    return Settings(None, origin="argument", workspace=names)


def _open(settings: Settings, auth: str, client: object | None, timeout: float):
    from mlmagic.backends import azureml

    uri = settings.tracking_uri or embedded_uri()
    workspace = settings.workspace or (azureml.workspace_of_uri(uri)
                                       if azureml.handles(uri) else None)
    if workspace is None:
        return open_backend(uri, timeout)
    ref = azureml.WorkspaceRef.from_config(workspace, settings.origin)
    credential = azureml.credential_of(client) if client is not None else azureml.credential(auth)
    return azureml.open_workspace(ref, credential, timeout)


def sync() -> SyncReport:
    """Send the runs kept in the offline journal to the current store, each exactly once."""
    connection = ensure_connected()
    from mlmagic.core.sink import SHORT_RETRIES, temporary_env

    try:
        with temporary_env({**SHORT_RETRIES, "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}):
            report, run_ids = sync_journals(connection.tracking_uri)
    except Exception as error:
        reason = network_failure(error)
        if reason is None:
            raise
        raise ConnectionFailed(
            f"cannot reach {redact_uri(connection.tracking_uri)} ({reason}); the journal is "
            "kept. Run %aml_sync again when the server is back."
        ) from None
    tracked = STATE.last_tracked
    if tracked is not None and tracked.journal in run_ids:
        tracked.run_id, tracked.journal = run_ids[tracked.journal], None
    return report


def current_connection() -> Connection | None:
    """The connection in use, or None before the first ``connect()``."""
    return STATE.connection


def ensure_connected() -> Connection:
    """The connection in use; connect with the defaults if there is none."""
    return STATE.connection or connect()


def set_experiment(name: str) -> Connection:
    """Make ``name`` the experiment of later runs, creating it if it does not exist."""
    name = _checked_name(name)
    connection = STATE.connection
    if connection is None:
        return connect(experiment=name)
    experiment_id = _experiment_id(connection.tracking_uri, name, create=True)

    import mlflow

    mlflow.set_experiment(experiment_id=experiment_id)
    STATE.connection = replace(connection, experiment_name=name, experiment_id=experiment_id)
    return STATE.connection


def status() -> Connection | Card:
    """A summary of the current connection (or a note saying there is none)."""
    if STATE.connection is None:
        return card(
            "mlmagic: not connected",
            ("next", "%aml_connect (or mlmagic.connect()) to choose a tracking backend"),
        )
    return STATE.connection


def experiment_id_of(name: str, *, create: bool = False) -> str:
    """The id of the experiment ``name`` in the current store; NotFound unless ``create``."""
    return _experiment_id(ensure_connected().tracking_uri, _checked_name(name), create=create)


def _user_environment() -> dict[str, str]:
    """The environment as the user set it: without the MLFLOW_TRACKING_URI that MLflow wrote
    for us on the last connect."""
    environ = dict(os.environ)
    if STATE.env_uri_written and environ.get(URI_VARIABLE) == STATE.env_uri_written:
        environ.pop(URI_VARIABLE)
        if STATE.env_uri_of_user:
            environ[URI_VARIABLE] = STATE.env_uri_of_user
    return environ


def _experiment_id(tracking_uri: str, name: str, *, create: bool) -> str:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        found = client.get_experiment_by_name(name)
        if found is None and create:
            return client.create_experiment(name)
    except MlflowException as error:
        raise ConnectionFailed(
            f"the tracking store at {redact_uri(tracking_uri)} failed: "
            f"{error_line(error, tracking_uri)}"
        ) from None
    if found is None:
        raise NotFound(
            f"no experiment named '{name}' in {redact_uri(tracking_uri)}. "
            "Check the name, or list them with mlflow.search_experiments()."
        )
    if found.lifecycle_stage == "deleted":
        raise InvalidInput(
            f"the experiment '{name}' is deleted. Restore it in the MLflow UI "
            "or choose another name."
        )
    return found.experiment_id


def _checked_name(name: str | None) -> str:
    if not name or not name.strip():
        raise InvalidInput("the experiment name is empty. Give a name, e.g. %aml_experiment churn.")
    return name.strip()
