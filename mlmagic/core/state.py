"""The one state object of a session: the current connection and the last tracked run.

Magics and the panel read it through core functions; nothing else keeps a copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlmagic.backends import Backend
from mlmagic.core.display import card
from mlmagic.core.secrets import redact_uri
from mlmagic.errors import InvalidInput


@dataclass(frozen=True)
class Connection:
    """Where tracking goes: the backend, the experiment, and where that choice came from."""

    backend: Backend
    experiment_name: str
    experiment_id: str
    origin: str
    timeout: float = 8.0  # seconds an interactive call waits for the store

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking URI (may hold credentials: show ``redact_uri`` of it)."""
        return self.backend.tracking_uri

    @property
    def user(self) -> str | None:
        """The user name the store is reached as, where one was given (MLflow servers)."""
        import os

        if self.tracking_uri.startswith(("http://", "https://")):
            return os.environ.get("MLFLOW_TRACKING_USERNAME")
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
        )

    def _repr_html_(self) -> str:
        return self._card()._repr_html_()

    def __repr__(self) -> str:
        return repr(self._card())


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


@dataclass
class State:
    """Mutable session state; there is exactly one, ``STATE``."""

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


STATE = State()


def last_run_id(hint: str) -> str:
    """The id of the session's last run (what "last" names), or a line saying why there is
    none, ending with ``hint`` (what to give instead)."""
    tracked = STATE.last_tracked
    if tracked is None:
        raise InvalidInput(f"no run yet in this session. {hint}")
    if tracked.run_id is None:
        raise InvalidInput("the last run is in the offline journal; it has an id after "
                           "%aml_sync.")
    return tracked.run_id
