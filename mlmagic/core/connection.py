"""Connecting to a tracking backend and choosing the experiment."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mlmagic.backends import open_backend
from mlmagic.base.checks import checked_experiment_name, checked_timeout
from mlmagic.base.config import (
    DATABRICKS_RUNTIME,
    DEFAULT_TIMEOUT,
    TRACK_MODES,
    Settings,
    read_workspace_config,
    resolve_settings,
)
from mlmagic.base.display import Card, card, notify
from mlmagic.base.env import temporary_env
from mlmagic.base.errors import ConnectionFailed, InvalidInput, MlmagicError, NotFound
from mlmagic.base.failures import explain, network_failure
from mlmagic.base.secrets import error_line, redact_uri, split_credentials
from mlmagic.core.interactive import interactive
from mlmagic.core.journal import SyncReport, pending, sync_journals
from mlmagic.core.mirror import QUIET, link_synced
from mlmagic.core.session import Connection, current_session

DEFAULT_EXPERIMENT = "Default"
URI_VARIABLE = "MLFLOW_TRACKING_URI"


def embedded_uri(folder: Path | None = None) -> str:
    """The embedded default store: ``mlflow.db`` (SQLite) in the working directory.

    Artifacts go to ``./mlruns`` beside it, as with MLflow's own default, so ``mlflow ui`` run
    in that directory shows the same runs.
    """
    return f"sqlite:///{(folder or Path.cwd()).resolve() / 'mlflow.db'}"


@interactive
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
    track: str | None = None,
) -> Connection:
    """Connect MLflow to a tracking backend and select an experiment (created if missing).

    The backend: ``uri``; or an Azure ML workspace named by ``workspace``, ``subscription``
    and ``resource_group``, by a workspace ``config`` file, or by an existing ``client``
    (azure-ai-ml ``MLClient`` or azureml-core ``Workspace``), signed in with ``auth``
    (default: azure-identity's default chain). With none of these: ``MLMAGIC_TRACKING_URI``,
    ``MLFLOW_TRACKING_URI``, the config file, a workspace ``config.json`` nearby, then the
    embedded default (in a Databricks runtime: the workspace's MLflow). The experiment:
    ``experiment``, the config file's, then ``MLFLOW_EXPERIMENT_NAME``, the session's default,
    the backend's own (a Databricks notebook's experiment is the notebook), then "Default".

    ``track`` (or the config file's ``track``): "both" tracks every run in the store and
    mirrors it into the Azure ML workspace named (the default in a Databricks runtime, as
    linked workspaces behave: the store is then the Databricks workspace's unless ``uri``
    names another); "azureml" tracks only in the workspace. The mirror's experiment has the
    same name where Azure ML takes it (a workspace path is renamed, see the connection card).

    A malformed call raises before anything changes. A backend that cannot be used raises
    too, and then nothing is tracked (anywhere) until a connect succeeds. A user name and
    password in an HTTP(S) URI are moved to ``MLFLOW_TRACKING_USERNAME`` and
    ``MLFLOW_TRACKING_PASSWORD``, so the URI MLflow (and every output) sees holds none.
    """
    session = current_session()
    timeout = checked_timeout(timeout)
    track = _checked_track(track)
    settings = _settings(uri, workspace, subscription, resource_group, config, client,
                         linked=track == "both" or (track is None and _in_databricks()))
    settings, mirrored = _linked(settings, track or settings.options.get("track"))
    named = (experiment or settings.experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME")
             or session.default_experiment)
    named = checked_experiment_name(named) if named else None
    tracking_uri, credentials = _credentials_apart(settings.tracking_uri)
    try:
        with temporary_env(credentials):
            backend = _open(settings, auth or settings.options.get("auth") or "default",
                            client, timeout)
            name = _name_in(backend, named or backend.default_experiment or DEFAULT_EXPERIMENT)
            experiment_id = _experiment_id(backend.tracking_uri, name, create=True)
            mirror = mirrored and _mirror(mirrored, auth or settings.options.get("auth"),
                                          client, timeout, name)
    except InvalidInput:
        raise
    except MlmagicError as error:
        session.refused = str(error)
        raise
    except Exception as error:
        session.refused = error_line(error, settings.tracking_uri or "")
        raise explain(error, tracking_uri or "") or error from None
    users_own = session.user_environment()
    _write_environment(credentials, users_own)

    import mlflow

    mlflow.set_tracking_uri(backend.tracking_uri)
    if os.environ.get(URI_VARIABLE) == backend.tracking_uri:  # MLflow wrote it for children
        _write_environment({URI_VARIABLE: backend.tracking_uri}, users_own, already_set=True)
    mlflow.set_experiment(experiment_id=experiment_id)
    session.connection = Connection(backend, name, experiment_id, settings.origin, timeout,
                                    mirror or None)
    session.refused = None
    for store in filter(None, (backend, mirror and mirror.backend)):
        _clean_up_after_dead_sessions(store.tracking_uri)
    return session.connection


def _checked_track(track: str | None) -> str | None:
    if track is None or track in TRACK_MODES:
        return track
    raise InvalidInput(f"--track takes {' or '.join(TRACK_MODES)}, not '{track}'.")


def _settings(uri, workspace, subscription, resource_group, config, client, *,
              linked: bool = False) -> Settings:
    """Where to connect, checked before anything is tried (``linked``: a URI and a workspace
    may both be named, for --track both)."""
    workspace_given = any(v is not None for v in (workspace, subscription, resource_group,
                                                   config, client))
    if uri is not None and workspace_given and not linked:
        raise InvalidInput("give a tracking URI or an Azure ML workspace, not both (or both "
                           "with --track both).")
    if workspace_given:
        named = _workspace_settings(workspace, subscription, resource_group, config, client)
        return replace(named, tracking_uri=_checked_uri(uri)) if uri is not None else named
    if uri is None:
        settings = resolve_settings(environ=current_session().user_environment())
        if settings.tracking_uri is not None:
            _checked_uri(settings.tracking_uri)
        return settings
    return Settings(_checked_uri(uri), origin="argument")


def _linked(settings: Settings, track: str | None) -> tuple[Settings, Settings | None]:
    """The store to track in, and the Azure ML workspace to mirror into (--track both):
    both is the default in a Databricks runtime when a workspace is named."""
    from mlmagic.azure import workspace as azureml

    uri = settings.tracking_uri
    names_workspace = settings.workspace is not None or bool(uri and azureml.handles(uri))
    track = track or ("both" if _in_databricks() and names_workspace else None)
    if track is not None and not names_workspace:
        raise InvalidInput(f"--track {track} needs an Azure ML workspace: give --workspace, "
                           "--subscription and --resource-group, or --config config.json.")
    if track != "both":
        return settings, None
    workspace_only = replace(settings, tracking_uri=None if settings.workspace else uri)
    if uri and settings.workspace and not azureml.handles(uri):
        return replace(settings, workspace=None), workspace_only
    own = resolve_settings(environ=current_session().user_environment(), workspaces=False)
    return replace(own, experiment=settings.experiment or own.experiment), workspace_only


def _in_databricks() -> bool:
    return bool(current_session().user_environment().get(DATABRICKS_RUNTIME))


def _mirror(settings: Settings, auth: str | None, client, timeout: float, name: str
            ) -> Connection:
    """The connection to the workspace runs are mirrored into, its experiment named after
    ``name`` (in the form the workspace takes), created if missing."""
    backend = _open(settings, auth or "default", client, timeout)
    return _mirror_experiment(Connection(backend, name, "", settings.origin, timeout), name)


def _mirror_experiment(mirror: Connection, name: str) -> Connection:
    """The mirror connection with the experiment named after ``name`` (the store's name), as
    the mirror spells it (the connection card says so), created if missing."""
    spelt = mirror.backend.experiment_name_for(name)
    experiment_id = _experiment_id(mirror.tracking_uri, spelt, create=True)
    return replace(mirror, experiment_name=spelt, experiment_id=experiment_id)


def _checked_uri(uri: str) -> str:
    """A tracking URI that can be tried: well formed, with a host where it needs one, and a
    path that exists where a local store is named by a bare path."""
    uri = uri.strip()
    if not uri:
        raise InvalidInput("the tracking URI is empty. Give a URI, or nothing for the default.")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises for a port that is not a number from 0 to 65535
    except ValueError as error:
        raise InvalidInput(f"'{redact_uri(uri)}' is not a valid URI ({error}). Example: "
                           "http://127.0.0.1:5000") from None
    scheme = parts.scheme.lower()
    if scheme in ("http", "https") and not parts.hostname:
        raise InvalidInput(f"'{redact_uri(uri)}' names no host. Example: http://127.0.0.1:5000")
    if scheme == "sqlite":
        path = Path(unquote(parts.path))
        if not parts.path.strip("/") or not path.parent.is_dir():
            raise InvalidInput(f"'{uri}' names no SQLite file in an existing folder (the "
                               "folder is not created for you). Example: sqlite:///team.db "
                               "(three slashes, then the path).")
    if not scheme and not _named_by_a_backend(uri) and not Path(uri).expanduser().is_dir():
        raise InvalidInput(f"'{uri}' is neither a tracking URI nor an existing folder. Use "
                           "http(s)://host:port, sqlite:///path/to/mlflow.db, databricks, or "
                           "nothing for the embedded default.")
    return uri


def _named_by_a_backend(uri: str) -> bool:
    """Whether a URI without a scheme names a store (``databricks``), not a folder."""
    from mlmagic.backends import backends

    return any(not module.CATCH_ALL and module.handles(uri) for module in backends())


def _credentials_apart(uri: str | None) -> tuple[str | None, dict[str, str]]:
    """The URI without user-info, and the MLflow variables that carry it instead."""
    if uri is None:
        return None, {}
    clean, user, password = split_credentials(uri)
    variables = {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password}
    return clean, {name: value for name, value in variables.items() if value}


def _clean_up_after_dead_sessions(tracking_uri: str) -> None:
    """Stop the local endpoints that sessions which died left serving, then send the
    journals kept for this store: the runs of dead sessions (ended KILLED) and the runs
    tracked while the store was away. Never fails the connect."""
    from mlmagic.core.leases import stop_orphaned_endpoints

    try:
        stop_orphaned_endpoints()
    except Exception as error:
        notify(f"could not clean up after a session that died: {error_line(error)}")
    if pending(tracking_uri):
        try:
            report = sync()
        except Exception as error:
            notify(f"the offline journal was not sent: {error_line(error)}")
            return
        if report.runs:
            notify(repr(report))


def _workspace_settings(workspace, subscription, resource_group, config, client) -> Settings:
    if client is not None:
        from mlmagic.azure.workspace import workspace_of

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
    from mlmagic.azure import sdk
    from mlmagic.azure import workspace as azureml

    uri = _credentials_apart(settings.tracking_uri)[0] or embedded_uri()
    workspace = settings.workspace or (azureml.workspace_of_uri(uri)
                                       if azureml.handles(uri) else None)
    if workspace is None:
        return open_backend(uri, timeout)
    ref = azureml.WorkspaceRef.from_config(workspace, settings.origin)
    credential = sdk.credential_of(client) if client is not None else azureml.credential(auth)
    return azureml.open_workspace(ref, credential, timeout)


@interactive
def sync() -> SyncReport:
    """Send the runs kept in the offline journal to the current store, each exactly once.
    Runs another live session still tracks offline wait for it to end them."""
    connection = ensure_connected()
    held = _send_held()
    report, run_ids = _sync_store(connection)
    if connection.mirror is not None:
        mirrored, mirror_ids = _sync_store(connection.mirror)
        report = replace(report, runs=report.runs + mirrored.runs,
                         points=report.points + mirrored.points,
                         waiting=report.waiting + mirrored.waiting,
                         killed=report.killed + mirrored.killed)
        link_synced(connection, list(run_ids.values()), list(mirror_ids.values()))
    tracked = current_session().last_tracked
    if tracked is not None and tracked.journal in run_ids:
        tracked.run_id, tracked.journal = run_ids[tracked.journal], None
    return replace(report, runs=report.runs + held[0], points=report.points + held[1],
                   kept=len(current_session().held))


def _sync_store(connection: Connection) -> tuple[SyncReport, dict[Path, str]]:
    """Send the journals kept for one store."""
    try:
        with temporary_env(QUIET):
            return sync_journals(connection.tracking_uri)
    except Exception as error:
        reason = network_failure(error)
        if reason is None:
            raise
        raise ConnectionFailed(
            f"cannot reach {redact_uri(connection.tracking_uri)} ({reason}); the journal is "
            "kept. Run %aml_sync again when the server is back."
        ) from None


def _send_held() -> tuple[int, int]:
    """Write what closed runs kept in memory (neither their store nor the journal took it)
    to either of them now: the runs and points it sent."""
    runs = points = 0
    held = current_session().held
    for sink in list(held):
        waiting = sink.unsaved_points()
        sink.retry()
        if not sink.saved:
            continue
        held.remove(sink)
        if not sink.offline:  # in the store now (else in the journal, sent next)
            runs, points = runs + 1, points + waiting
            if sink.journal is not None:
                sink.journal.discard()
    return runs, points


def current_connection() -> Connection | None:
    """The connection in use, or None before the first ``connect()``."""
    return current_session().connection


def ensure_connected() -> Connection:
    """The connection in use; connect with the defaults if there is none. After a connect
    that failed, ConnectionFailed until one succeeds: nothing goes somewhere else."""
    session = current_session()
    if session.refused is not None:
        raise ConnectionFailed(f"the last connect failed ({session.refused}), so nothing is "
                               "tracked or read until %aml_connect succeeds.")
    return session.connection or connect()


@interactive
def set_experiment(name: str) -> Connection:
    """Make ``name`` the experiment of later runs, creating it if it does not exist."""
    name = checked_experiment_name(name)
    session = current_session()
    if session.connection is None and session.refused is None:
        return connect(experiment=name)
    connection = ensure_connected()
    name = _name_in(connection.backend, name)
    experiment_id = _experiment_id(connection.tracking_uri, name, create=True)
    mirror = connection.mirror and _mirror_experiment(connection.mirror, name)

    import mlflow

    mlflow.set_experiment(experiment_id=experiment_id)
    session.connection = replace(connection, experiment_name=name, experiment_id=experiment_id,
                                 mirror=mirror or None)
    return session.connection


def _name_in(backend, name: str) -> str:
    """``name`` as the store spells it (Azure ML takes no Databricks path); said if it
    differs."""
    spelt = backend.experiment_name_for(name)
    if spelt != name:
        notify(f"{backend.name} takes no '{name}' as an experiment name; the runs go to its "
               f"experiment '{spelt}'.")
    return spelt


def status() -> Connection | Card:
    """A summary of the current connection (or a note saying there is none)."""
    session = current_session()
    if session.refused is not None:
        return card(
            "mlmagic: the last connect failed",
            ("why", session.refused),
            ("next", "%aml_connect again; nothing is tracked until a connect succeeds"),
        )
    if session.connection is None:
        return card(
            "mlmagic: not connected",
            ("next", "%aml_connect (or mlmagic.connect()) to choose a tracking backend"),
        )
    return session.connection


def experiment_id_of(name: str, *, create: bool = False) -> str:
    """The id of the experiment ``name`` in the current store; NotFound unless ``create``."""
    connection = ensure_connected()
    name = connection.backend.experiment_name_for(checked_experiment_name(name))
    return _experiment_id(connection.tracking_uri, name, create=create)


def _write_environment(values: dict[str, str], users_own: dict[str, str], *,
                       already_set: bool = False) -> None:
    """Write ``values`` into the environment (for MLflow and child processes), remembering
    the user's own values (``users_own``, read before this connect changed anything); what
    an earlier connect wrote and this one does not is taken back. ``already_set``: MLflow
    wrote them itself."""
    session = current_session()
    names = set(values) if already_set else set(values) | {
        n for n in session.env_written if n != URI_VARIABLE}
    for name in names:
        session.env_of_user[name] = users_own.get(name)
        if name in values:
            os.environ[name] = session.env_written[name] = values[name]
        else:
            session.env_written.pop(name, None)
            if users_own.get(name) is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = users_own[name]


def _experiment_id(tracking_uri: str, name: str, *, create: bool) -> str:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        found = client.get_experiment_by_name(name)
        if found is None and create:
            return client.create_experiment(name)
    except MlflowException as error:
        if error.error_code == "RESOURCE_ALREADY_EXISTS":  # another session made it just now
            return _experiment_id(tracking_uri, name, create=False)
        if explain(error, tracking_uri) is not None:
            raise
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
