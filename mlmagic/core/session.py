"""The session: everything one notebook session knows and owns, in one object.

The connection, the last tracked run, the endpoints (each with what manages it: a served
model's process and lease, an endpoint's key) and jobs, the run listeners, the recorders of
the tracked blocks running, and the session's lease lock all live on the current
:class:`Session`; no other module keeps state of its own. ``new_session()`` ends the
current one and starts afresh, as a kernel restart would, without restarting.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlmagic.backends import Backend
from mlmagic.base.config import DEFAULT_TIMEOUT
from mlmagic.base.display import ShownAsCard, card
from mlmagic.base.errors import InvalidInput
from mlmagic.base.secrets import redact_uri

if TYPE_CHECKING:
    from mlmagic.core.recorder import Recorder
    from mlmagic.deploy import Endpoint
    from mlmagic.runners import Job


@dataclass(frozen=True, repr=False)
class Connection(ShownAsCard):
    """Where tracking goes: the backend, the experiment, and where that choice came from."""

    backend: Backend
    experiment_name: str
    experiment_id: str
    origin: str
    timeout: float = DEFAULT_TIMEOUT  # seconds an interactive call waits for the store
    # --track both: the store every tracked run is mirrored into (a linked Azure ML workspace)
    mirror: Connection | None = None

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking URI (may hold credentials: show ``redact_uri`` of it)."""
        return self.backend.tracking_uri

    def client(self) -> Any:
        """An ``mlflow.MlflowClient`` for this connection's store."""
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri)

    @property
    def user(self) -> str | None:
        """The user name the store is reached as, where one was given (MLflow servers)."""
        if self.tracking_uri.startswith(("http://", "https://")):
            return os.environ.get("MLFLOW_TRACKING_USERNAME")
        return None

    @property
    def azureml(self) -> Connection | None:
        """The Azure ML workspace this connection reaches: itself, or the workspace linked to
        it (--track both); None if neither."""
        for connection in (self, self.mirror):
            if connection is not None and connection.backend.workspace is not None:
                return connection
        return None

    def run_url(self, run_id: str, experiment_id: str | None = None) -> str | None:
        """The web UI address of a run of this connection, where there is a UI."""
        return self.backend.run_url(experiment_id or self.experiment_id, run_id)

    def _card(self):
        experiment_url = self.backend.link(
            self.backend.experiment_path, experiment_id=self.experiment_id
        )
        return card(
            "mlmagic connection",
            ("backend", self.backend.name),
            *self.backend.facts,
            ("tracking URI", redact_uri(self.tracking_uri)),
            ("user", self.user),
            ("experiment", f"{self.experiment_name} (id {self.experiment_id})"),
            ("from", self.origin),
            ("home", self.backend.link(self.backend.home_path)),
            ("UI", experiment_url),
            ("UI command", self.backend.ui_hint),
            ("also tracked in", self._mirror_line()),
            ("its UI", self.mirror and self.mirror.backend.link(
                self.mirror.backend.experiment_path, experiment_id=self.mirror.experiment_id)),
        )

    def _mirror_line(self) -> str | None:
        """Where --track both mirrors the runs: the store, and the experiment there."""
        if self.mirror is None:
            return None
        mirror = self.mirror
        workspace = dict(mirror.backend.facts).get("workspace")
        line = (f"{mirror.backend.name} {workspace or ''}, experiment "
                f"{mirror.experiment_name} (id {mirror.experiment_id})")
        if mirror.experiment_name != self.experiment_name:
            line += f", the name it takes for '{self.experiment_name}'"
        return line


@dataclass
class TrackedRun:
    """What the session knows of a tracked run without asking the store."""

    run_id: str | None  # None while the run exists only in the offline journal
    run_name: str
    experiment_id: str
    tracking_uri: str
    start_time: int
    end_time: int | None = None
    status: str = "RUNNING"
    metrics: dict[str, float] = field(default_factory=dict)
    complete: bool = True  # False when something was logged around mlmagic: ask the store
    journal: Path | None = None  # where the run waits for %aml_sync, if its store was away
    registered: Any = None  # the ModelVersion registered from it (track(register=...))
    linked_url: str | None = None  # its mirror's page, with --track both


RunListener = Callable[[str, TrackedRun], None]


@dataclass
class Session:
    """What one notebook session knows and owns. There is one current session
    (:func:`current_session`); :func:`new_session` replaces it."""

    connection: Connection | None = None
    default_experiment: str | None = None  # %config MlMagic.default_experiment
    last_tracked: TrackedRun | None = None
    # The environment variables a connection wrote (MLflow writes MLFLOW_TRACKING_URI for
    # child processes; mlmagic the credentials taken out of a URI), and the user's own values
    # they replaced, so resolution still sees the latter.
    env_written: dict[str, str] = field(default_factory=dict)
    env_of_user: dict[str, str | None] = field(default_factory=dict)
    refused: str | None = None  # why the last connect failed: nothing is tracked until one works
    held: list = field(default_factory=list)  # RunSinks of closed runs with data not yet saved
    listeners: list[RunListener] = field(default_factory=list)
    recorders: list[Recorder] = field(default_factory=list)  # of the tracked blocks running
    endpoints: dict[str, Endpoint] = field(default_factory=dict)  # by name
    jobs: dict[str, Job] = field(default_factory=dict)  # by name, in the order submitted
    lease_id: str | None = None  # the session's lease identity, once one is needed
    lease_lock: Any = None  # held while the session lives (see mlmagic.core.leases)
    lease_pid: int | None = None  # the process that holds it (a forked child needs its own)
    packages: str | None = None  # the installed packages (requirements.txt), listed once

    def user_environment(self) -> dict[str, str]:
        """The environment as the user set it: without what this session's connects wrote."""
        environ = dict(os.environ)
        for name, written in self.env_written.items():
            if environ.get(name) == written:
                environ.pop(name)
                if self.env_of_user.get(name) is not None:
                    environ[name] = self.env_of_user[name]
        return environ

    def close(self) -> None:
        """End what the session owns in this process: its local endpoints stop, the
        environment variables its connections wrote are taken back, and its lease lock is
        let go (so that a later session sends what its journals still hold)."""
        from mlmagic.base.display import notify
        from mlmagic.deploy import targets

        for endpoint in list(self.endpoints.values()):
            module = targets().get(endpoint.target)
            if getattr(module, "ENDS_WITH_SESSION", False):
                with contextlib.suppress(Exception):
                    module.delete(endpoint)
        unsaved = sum(sink.unsaved_points() for sink in self.held)
        if unsaved:
            notify(f"{unsaved} point(s) of closed runs were never saved (neither the store "
                   "nor the journal took them); they end with this session.")
        users_own = self.user_environment()
        for name in self.env_written:
            if name in users_own:
                os.environ[name] = users_own[name]
            else:
                os.environ.pop(name, None)
        if self.lease_lock is not None and self.lease_pid == os.getpid():
            with contextlib.suppress(Exception):
                self.lease_lock.release()


_CURRENT: list[Session] = [Session()]
# Local endpoints stop with the kernel; what lives in a workspace (online endpoints, web
# services) is the workspace's, and stays.
atexit.register(lambda: _CURRENT[0].close())


def current_session() -> Session:
    """The session every core function works in."""
    return _CURRENT[0]


def new_session() -> Session:
    """End the current session (see :meth:`Session.close`) and start a fresh one, which
    keeps only the settings (the default experiment). Runs still active in MLflow are
    ended first. Returns the new session."""
    import sys

    if "mlflow" in sys.modules:
        import mlflow

        while mlflow.active_run():
            mlflow.end_run()
    old = _CURRENT[0]
    old.close()
    _CURRENT[0] = Session(default_experiment=old.default_experiment)
    return _CURRENT[0]


def last_run_id(hint: str) -> str:
    """The id of the session's last run (what "last" names), or a line saying why there is
    none, ending with ``hint`` (what to give instead)."""
    tracked = current_session().last_tracked
    if tracked is None:
        raise InvalidInput(f"no run yet in this session. {hint}")
    if tracked.run_id is None:
        raise InvalidInput("the last run is in the offline journal; it has an id after "
                           "%aml_sync.")
    return tracked.run_id
