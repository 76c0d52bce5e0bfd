"""Remote runs: a training script runs elsewhere and its plain ``mlflow.log_*`` calls land in
a run of the current experiment.

Without a compute the script runs as a child process of this kernel, with the tracking URI,
the experiment and a run created for it in its environment (``MLFLOW_TRACKING_URI``,
``MLFLOW_EXPERIMENT_ID``, ``MLFLOW_RUN_ID``): MLflow in the script picks them up. The run ends
FINISHED or FAILED by the script's exit code; a failing script's stderr tail is kept as the
artifact ``stderr.txt``. On an Azure ML workspace, ``compute`` makes it a command job there
(:mod:`mlmagic.azure.jobs`). Both runners keep the contract in :mod:`mlmagic.runners`.
"""

from __future__ import annotations

import os
import queue
import shlex
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mlmagic.base.checks import checked_text
from mlmagic.base.display import format_duration
from mlmagic.base.env import temporary_env
from mlmagic.base.errors import InvalidInput, NotFound, RunFailed
from mlmagic.base.library_log import NO_RUN_LINKS
from mlmagic.base.secrets import scrub
from mlmagic.core.connection import ensure_connected, experiment_id_of
from mlmagic.core.interactive import interactive
from mlmagic.core.session import TrackedRun, current_session
from mlmagic.runners import SCRIPT_ENVIRONMENT, STDERR_ARTIFACT, Job, JobRunner, log_folder

if TYPE_CHECKING:
    import pandas as pd

OUTPUT_ARTIFACT = "output.log"
TAIL_LINES = 40
RUN_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID")


@interactive
def submit(
    script: str | Path,
    *,
    args: str | Sequence[str] = (),
    experiment: str | None = None,
    name: str | None = None,
    compute: str | None = None,
    environment: str | None = None,
    pip: Sequence[str] = (),
    wait: bool = True,
    echo: bool = True,
) -> Job:
    """Run ``script`` so that its MLflow logging lands in a run of ``experiment`` (default:
    the current one), and return the job.

    Without ``compute``: a child process of this Python, its output shown while ``wait``
    (``echo``); with ``wait=False`` it runs in the background (see :func:`jobs`). With
    ``compute`` on an Azure ML workspace: a command job on that compute, in ``environment``
    (an Azure ML environment name) or a fresh one with mlflow, azureml-mlflow and ``pip``.
    A failing script raises :class:`RunFailed` when waited for; its run is FAILED either way.
    """
    path = _checked_script(script)
    try:
        arguments = shlex.split(args) if isinstance(args, str) else list(args)
    except ValueError as error:
        raise InvalidInput(f"the script's arguments cannot be split ({error}): {args}") from None
    if name is not None:
        name = checked_text(name, "run name", "--name baseline")
    connection = ensure_connected()
    experiment_id = (
        experiment_id_of(experiment, create=True) if experiment else connection.experiment_id
    )
    runner, where = _runner(compute, environment, pip)
    job = runner(path, arguments, connection, experiment_id, name=name, **where)
    current_session().jobs[job.name] = job
    _remember(job, name or path.stem)
    if wait:
        job.refresh(echo=echo, wait=True)
        _remember(job, name or path.stem)
        if job.status == "FAILED":
            raise RunFailed(_failure_line(job))
    return job


@interactive
def jobs() -> pd.DataFrame:
    """The jobs this session submitted: name, where, state, run id, duration and log tail."""
    import pandas as pd

    rows = []
    for job in current_session().jobs.values():
        if not job.done:
            job.refresh(echo=False, wait=False)
        duration = int(((job.ended or time.time()) - job.started) * 1000)
        rows.append({"job": job.name, "script": job.script, "where": job.where,
                     "status": job.status, "run_id": job.run_id,
                     "duration": format_duration(duration), "log tail": job.tail(3)})
    return pd.DataFrame(rows, columns=["job", "script", "where", "status", "run_id",
                                       "duration", "log tail"])


@interactive
def job(name: str) -> Job:
    """One job of this session by its name (the run id for local jobs), refreshed."""
    found = current_session().jobs.get(name)
    if found is None:
        known = ", ".join(current_session().jobs) or "none yet"
        raise NotFound(f"no job named '{name}' in this session (known: {known}). "
                       "List them with %aml_jobs.")
    if not found.done:
        found.refresh(echo=False, wait=False)
    return found


def _checked_script(script: str | Path) -> Path:
    if not str(script).strip():
        raise InvalidInput("no script given. Example: %aml_submit train.py --args \"--lr 0.1\"")
    path = Path(script).expanduser()
    if not path.is_file():
        raise NotFound(f"no script at {path.resolve()}. Check the path (relative to "
                       f"{Path.cwd()}).")
    return path


def _runner(compute: str | None, environment: str | None, pip: Sequence[str]
            ) -> tuple[JobRunner, dict]:
    """The runner a submit goes to, and what it needs to know of where to run."""
    if compute:
        from mlmagic.azure import jobs

        return jobs.submit, {"compute": compute, "environment": environment,
                                   "pip": list(pip)}
    if environment or pip:
        raise InvalidInput("--environment and --pip are for --compute jobs; a local run "
                           "uses this kernel's Python and its packages.")
    return run_here, {}


def run_here(path: Path, arguments: list[str], connection, experiment_id: str, *,
             name: str | None) -> Job:
    """The local runner: ``path`` as a child process of this kernel, in a new run."""

    client = connection.client()
    run = client.create_run(experiment_id, run_name=name or path.stem, tags={
        "mlflow.source.name": str(path.resolve()), "mlflow.source.type": "LOCAL",
        "mlmagic.submitted": "local"})
    run_id = run.info.run_id
    log_path = log_folder() / f"{run_id}.log"
    job = Job(run_id, str(path), "local", run_id, experiment_id, connection.tracking_uri,
              log_path, link=connection.run_url(run_id, experiment_id))
    environment = _child_environment(connection.tracking_uri, experiment_id, run_id)
    process = subprocess.Popen(
        [sys.executable, "-u", str(path), *arguments], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=environment, text=True, errors="replace",
        start_new_session=True,
    )
    _LocalWatcher(job, process, client).start()
    return job


def _child_environment(tracking_uri: str, experiment_id: str, run_id: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if k != "MLFLOW_EXPERIMENT_NAME"}
    environment.update(zip(RUN_VARIABLES, (tracking_uri, experiment_id, run_id), strict=True))
    environment.update(SCRIPT_ENVIRONMENT)
    return environment


class _LocalWatcher:
    """Reads a child's output into its log (and, when waited for, into the notebook), and
    closes its run when it exits."""

    def __init__(self, job: Job, process: subprocess.Popen, client) -> None:
        self.job, self.process, self.client = job, process, client
        self.lines: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self.stderr_tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.finished = threading.Event()
        self.echo = False
        self.log = job.log_path.open("w", encoding="utf-8")
        self.lock = threading.Lock()
        job.refresh = self.refresh

    def start(self) -> None:
        readers = [threading.Thread(target=self._read, args=(stream, kind), daemon=True)
                   for stream, kind in ((self.process.stdout, "out"),
                                        (self.process.stderr, "err"))]
        for reader in readers:
            reader.start()
        threading.Thread(target=self._close_when_done, args=(readers,), daemon=True).start()

    def refresh(self, *, echo: bool, wait: bool) -> None:
        """Wait for the end if ``wait``, showing the output when ``echo``."""
        if not wait:
            return
        self.echo = echo
        try:
            while (item := self.lines.get()) is not None:
                if echo:
                    print(item[1], end="", file=sys.stdout if item[0] == "out" else sys.stderr,
                          flush=True)
        except KeyboardInterrupt:
            self.process.kill()
            self.finished.wait()
            raise
        self.finished.wait()

    def _read(self, stream, kind: str) -> None:
        for line in stream:
            line = scrub(line, self.job.tracking_uri)
            with self.lock:
                self.log.write(line)
                self.log.flush()
            if kind == "err":
                self.stderr_tail.append(line)
            self.lines.put((kind, line))

    def _close_when_done(self, readers: list[threading.Thread]) -> None:
        code = self.process.wait()
        for reader in readers:
            reader.join()
        self.log.close()
        status = "FINISHED" if code == 0 else "KILLED" if code < 0 else "FAILED"
        try:
            self.job.stderr_tail = "".join(self.stderr_tail)
            self.client.log_text(self.job.run_id, self.job.log_path.read_text(encoding="utf-8"),
                                 OUTPUT_ARTIFACT)
            if status != "FINISHED":
                self.client.log_text(self.job.run_id, self.job.stderr_tail, STDERR_ARTIFACT)
            with temporary_env(NO_RUN_LINKS):  # the job's card links the run
                self.client.set_terminated(self.job.run_id, status)
        finally:
            self.job.exit_code, self.job.ended = code, time.time()
            self.job.status = status
            self.lines.put(None)
            self.finished.set()


def _remember(job: Job, run_name: str) -> None:
    """Make the job's run the session's last run (``mlmagic.last_run()``)."""
    if job.run_id is None:
        return
    current_session().last_tracked = TrackedRun(
        job.run_id, run_name, job.experiment_id, job.tracking_uri, int(job.started * 1000),
        int(job.ended * 1000) if job.ended else None, job.status, complete=False,
    )


def _failure_line(job: Job) -> str:
    text = job.stderr_tail or job.tail(TAIL_LINES)
    last = next((line for line in reversed(text.splitlines()) if line.strip()), "")
    reason = f": {last.strip()}" if last else ""
    code = f" (exit code {job.exit_code})" if job.exit_code is not None else ""
    return (f"{job.script} failed{code}{reason}. The run {job.run_id} is FAILED; its output "
            f"is kept as the artifact {job.error_artifact}.")
