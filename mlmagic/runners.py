"""What a job runner gives back: a :class:`Job`, and the contract a runner keeps.

A runner starts a script so that its MLflow logging lands in a run, and returns the Job at
once; ``job.refresh(echo=, wait=)`` updates its status and log, or waits for its end. The
local runner is :mod:`mlmagic.core.remote` (a child process of the kernel); the Azure ML
runner is :mod:`mlmagic.azure.jobs` (a command job on a compute cluster).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mlmagic.base.config import mlmagic_home
from mlmagic.base.display import Card, ShownAsCard, card, format_duration
from mlmagic.base.library_log import NO_RUN_LINKS

STDERR_ARTIFACT = "stderr.txt"
# A submitted script's environment wherever it runs: unbuffered output, and none of MLflow's
# "View run" links in it (the job's card links the run).
SCRIPT_ENVIRONMENT = {"PYTHONUNBUFFERED": "1", **NO_RUN_LINKS}


class JobRunner(Protocol):
    """Starts ``script`` with ``arguments`` for a run of ``experiment_id`` on the store of
    ``connection``; returns the Job without waiting for it."""

    def __call__(self, script: Path, arguments: list[str], connection: Any,
                 experiment_id: str, *, name: str | None, **where: Any) -> Job:
        """Start the script; the Job."""


@dataclass(repr=False)
class Job(ShownAsCard):
    """A submitted script: where it runs, its run, its state and its log."""

    name: str
    script: str
    where: str  # "local" or "azure ml compute NAME"
    run_id: str | None
    experiment_id: str
    tracking_uri: str
    log_path: Path
    started: float = field(default_factory=time.time)
    status: str = "RUNNING"
    exit_code: int | None = None
    ended: float | None = None
    link: str | None = None
    refresh: Any = None  # refresh(echo=, wait=): update status and log, or wait for the end
    stderr_tail: str = ""
    error_artifact: str = STDERR_ARTIFACT  # where a failure's output is kept in the run
    library_output: str | None = None  # the library log, if submitting wrote to it

    @property
    def done(self) -> bool:
        """Whether the job has ended (whatever its outcome)."""
        return self.status not in ("RUNNING", "QUEUED", "STARTING")

    def tail(self, lines: int = 10) -> str:
        """The last ``lines`` lines of the job's output so far."""
        if not self.log_path.exists():
            return ""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _card(self) -> Card:
        duration = int(((self.ended or time.time()) - self.started) * 1000)
        return card(
            f"job {self.name}: {self.status}",
            ("script", self.script),
            ("where", self.where),
            ("run id", self.run_id),
            ("exit code", self.exit_code),
            ("duration", format_duration(duration)),
            ("link", self.link),
            ("log", str(self.log_path)),
            ("log tail", self.tail(5)),
            ("library output", self.library_output),
        )


def log_folder() -> Path:
    """Where the jobs' logs are kept: ~/.mlmagic/jobs."""
    folder = mlmagic_home() / "jobs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
