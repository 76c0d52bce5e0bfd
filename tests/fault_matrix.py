"""The fault matrix: a 10,000-point tracked cell in a real Jupyter kernel, on the embedded
store or a real `mlflow server`, with one fault at its middle (an exception, interrupts, a
killed or frozen server, a read-only or full store, a full journal folder, a killed kernel).
Each case reports what a user would check: how the run ended, the points stored against
the points logged, duplicates after two syncs, runs left RUNNING, and the time until the
cell returned. Used by tests/test_faults.py (which asserts) and bench/faults.py (which
prints the table)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kernels import Execution, Kernel
from servers import MlflowServer, clean_environment

from mlmagic.core.recorder import FLUSH_SECONDS

POINTS = 10_000
MIDDLE = 5_000
CELL = """\
%%track --name "{name}"
import mlflow, time
logged = 0
for step in range({points}):
    mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    logged += 1
    if step % 500 == 499:
        with open("progress", "a") as progress:
            progress.write(f"{{logged}} {{time.time()}}\\n")
        time.sleep({pause})
    {extra}
"""


def can_freeze() -> str | None:
    """None if this process may make a folder immutable (``chattr +i``: no file can be
    created or written in it, not even by root), else why not."""
    probe = Path(tempfile.mkdtemp(prefix="mlmagic-chattr-probe-"))
    try:
        done = subprocess.run(["chattr", "+i", str(probe)], capture_output=True, text=True)
        if done.returncode != 0:
            return f"cannot make a folder read-only here: {done.stderr.strip()}"
        subprocess.run(["chattr", "-i", str(probe)], check=True)
        return None
    except FileNotFoundError:
        return "no chattr command on this machine"
    finally:
        probe.rmdir()


def set_read_only(folder: Path, flag: bool) -> None:
    """Make ``folder`` read-only for everyone, root included (or writable again)."""
    subprocess.run(["chattr", "+i" if flag else "-i", str(folder)], check=True)


def can_mount() -> str | None:
    """None if this process may mount a tmpfs (to fill it, or make it read-only), else why
    not."""
    probe = Path(f"/tmp/mlmagic-mount-probe-{os.getpid()}")
    probe.mkdir(exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            return f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}"
        subprocess.run(["umount", str(probe)], check=True)
        return None
    except FileNotFoundError:
        return "no mount command on this machine"
    finally:
        with contextlib.suppress(OSError):
            probe.rmdir()


class Tmpfs:
    """A small tmpfs mounted at ``path``, which a case can fill or make read-only."""

    def __init__(self, path: Path, megabytes: int = 64) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(path)],
                       check=True)

    def fill(self) -> None:
        """Fill the disk to the last byte."""
        for name, chunk in (("filler", 65536), ("filler-tail", 1)):
            with contextlib.suppress(OSError), (self.path / name).open("wb", buffering=0) as f:
                while True:
                    f.write(b"\0" * chunk)

    def free(self) -> None:
        """Give the space back."""
        for name in ("filler", "filler-tail"):
            (self.path / name).unlink(missing_ok=True)

    def unmount(self) -> None:
        """Remove it."""
        subprocess.run(["umount", "-l", str(self.path)], check=False)


@dataclass
class Setup:
    """Where a case runs: the kernel's folder and home, the store, the server if any."""

    root: Path
    store: Path | None = None
    uri: str = ""
    server: MlflowServer | None = None
    tmpfs: Tmpfs | None = None
    kernel: Kernel | None = None
    env: dict = field(default_factory=dict)
    fault_time: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def progress(self) -> list[tuple[int, float]]:
        """(points logged, when) as the cell wrote them."""
        path = self.root / "progress"
        if not path.exists():
            return []
        return [(int(count), float(at)) for count, at in
                (line.split() for line in path.read_text().splitlines() if line.strip())]


@dataclass
class Case:
    """A fault and how the user recovers from it; ``expected`` is the run's final status."""

    name: str
    backends: tuple[str, ...]
    expected: str
    fault: Callable[[Setup], None] = lambda setup: None
    recover: Callable[[Setup], None] = lambda setup: None
    extra: str = ""  # a line in the loop (a failure at the middle, say)
    pause: float = 0.15  # seconds the cell sleeps each 500 points
    on_tmpfs: str = ""  # "store" or "journal": what lives on a small tmpfs
    read_only: bool = False  # the fault makes the store's folder read-only
    kills_kernel: bool = False


@dataclass
class Result:
    """What a user would check after the case."""

    case: str
    backend: str
    status: str
    stored: int
    logged: int
    duplicates: int
    running: int
    seconds: float  # from the fault until the cell returned
    shown: str = ""  # what the notebook showed
    end_time_is_last_point: bool | None = None
    written_floor: int = 0  # on SIGKILL: points logged a flush interval (and a half) before
    notes: list[str] = field(default_factory=list)


def _interrupt(times: int, spacing: float = 0.02) -> Callable[[Setup], None]:
    def fault(setup: Setup) -> None:
        for _ in range(times):
            setup.kernel.interrupt()
            time.sleep(spacing)
    return fault


def _kill_server(setup: Setup) -> None:
    os.killpg(setup.server._process.pid, signal.SIGKILL)
    setup.server._process.wait()
    setup.server._process = None


def _restart_server(setup: Setup) -> None:
    setup.server.start()


def _freeze_server(seconds: float) -> Callable[[Setup], None]:
    def fault(setup: Setup) -> None:
        group = setup.server._process.pid
        os.killpg(group, signal.SIGSTOP)
        threading.Timer(seconds, os.killpg, (group, signal.SIGCONT)).start()
    return fault


def _read_only(setup: Setup) -> None:
    set_read_only(setup.store, True)


def _writable(setup: Setup) -> None:
    set_read_only(setup.store, False)


def _fill(setup: Setup) -> None:
    setup.tmpfs.fill()


def _free(setup: Setup) -> None:
    setup.tmpfs.free()


def _journal_full_then_server_killed(setup: Setup) -> None:
    setup.tmpfs.fill()
    _kill_server(setup)


CASES = [
    Case("exception", ("embedded", "server"), "FAILED",
         extra=f"if step == {MIDDLE - 1}: raise ValueError('data drifted')"),
    Case("interrupt", ("embedded", "server"), "KILLED", fault=_interrupt(1)),
    Case("double interrupt", ("embedded", "server"), "KILLED", fault=_interrupt(2)),
    Case("interrupts while closing", ("embedded", "server"), "FINISHED|KILLED",
         fault=_interrupt(5, 0.05), pause=0.0),
    Case("server killed, restarted, synced", ("server",), "FINISHED", fault=_kill_server,
         recover=_restart_server),
    Case("server frozen 15 s", ("server",), "FINISHED", fault=_freeze_server(15)),
    Case("read-only store", ("embedded", "server"), "FINISHED", fault=_read_only,
         recover=_writable, read_only=True),
    Case("disk full", ("embedded",), "FINISHED", fault=_fill, recover=_free, on_tmpfs="store"),
    Case("journal folder on a full disk", ("server",), "FINISHED",
         fault=_journal_full_then_server_killed, recover=_restart_server,
         on_tmpfs="journal"),
    Case("kernel killed, new session", ("embedded", "server"), "KILLED", kills_kernel=True,
         pause=0.5),
]


def run_case(case: Case, backend: str, root: Path) -> Result:
    """Run one case on one backend in the empty folder ``root``; the result."""
    setup = _prepare(case, backend, root)
    try:
        return _run(case, backend, setup)
    finally:
        if setup.kernel is not None:
            setup.kernel.stop()
        if setup.server is not None:
            with contextlib.suppress(Exception):
                os.killpg(setup.server._process.pid, signal.SIGCONT)
            setup.server.stop()
        if case.read_only:
            set_read_only(setup.store, False)
        if setup.tmpfs is not None:
            setup.tmpfs.unmount()


def _prepare(case: Case, backend: str, root: Path) -> Setup:
    setup = Setup(root)
    home = root / "home"
    root.mkdir(parents=True, exist_ok=True)
    home.mkdir(parents=True)
    store_folder = root / "store"
    if case.on_tmpfs:
        setup.tmpfs = Tmpfs(root / "tmpfs")
        store_folder = setup.tmpfs.path if case.on_tmpfs == "store" else store_folder
    store_folder.mkdir(exist_ok=True)
    setup.store = store_folder
    setup.env = {**clean_environment("MLMAGIC_JOURNAL_DIR"), "HOME": str(home),
                 "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
    if case.on_tmpfs == "journal":
        setup.env["MLMAGIC_JOURNAL_DIR"] = str(setup.tmpfs.path / "journal")
    if backend == "server":
        setup.server = MlflowServer(store_folder).start()
        setup.uri = setup.server.url
    else:
        setup.uri = f"sqlite:///{store_folder / 'mlflow.db'}"
    return setup


def _start_kernel(setup: Setup) -> Execution:
    setup.kernel = Kernel(setup.root, setup.env).start()
    setup.kernel.run("%load_ext mlmagic")
    return setup.kernel.run(f"%aml_connect {setup.uri} --experiment faults")


def _run(case: Case, backend: str, setup: Setup) -> Result:
    name = f"{case.name} ({backend})"
    connected = _start_kernel(setup)
    assert connected.status == "ok", connected.text
    submitted = setup.kernel.submit(CELL.format(name=name, points=POINTS, pause=case.pause,
                                                extra=case.extra))
    _wait_for_progress(setup, POINTS if case.pause == 0.0 else MIDDLE)
    setup.fault_time = time.monotonic()
    if case.kills_kernel:
        setup.kernel.kill()
        seconds = 0.0
        connected = _start_kernel(setup)  # the next session on this machine
        shown = connected.text
    else:
        case.fault(setup)
        execution = setup.kernel.wait(submitted, timeout=240)
        seconds = time.monotonic() - setup.fault_time
        shown = execution.text
        case.recover(setup)
        for _ in range(2):
            synced = setup.kernel.run("%aml_sync")
            setup.notes.append(synced.text)
    return _measure(case, backend, setup, name, shown, seconds)


def _wait_for_progress(setup: Setup, points: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if setup.progress and setup.progress[-1][0] >= points:
            return
        time.sleep(0.01)
    raise TimeoutError(f"the cell did not reach {points} points in {timeout} s")


def _measure(case: Case, backend: str, setup: Setup, name: str, shown: str,
             seconds: float) -> Result:
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    client = MlflowClient(setup.uri)
    experiment = client.get_experiment_by_name("faults")
    runs = client.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL)
    ours = [run for run in runs if run.info.run_name == name]
    running = sum(run.info.status == "RUNNING" for run in runs)
    if len(ours) != 1:
        return Result(case.name, backend, f"{len(ours)} runs", 0, 0, 0, running, seconds,
                      shown, notes=setup.notes)
    run = ours[0]
    history = client.get_metric_history(run.info.run_id, "loss")
    steps = [point.step for point in history]
    if case.kills_kernel:
        logged = _logged_before(setup, setup.fault_time)
    else:
        logged = int(setup.kernel.value("logged"))
    last_point = max((point.timestamp for point in history), default=None)
    return Result(
        case.name, backend, run.info.status, len(history), logged,
        len(steps) - len(set(steps)), running, seconds, shown,
        end_time_is_last_point=(run.info.end_time == last_point) if case.kills_kernel else None,
        written_floor=_logged_before(setup, setup.fault_time - FLUSH_SECONDS - 0.5),
        notes=setup.notes,
    )


def _logged_before(setup: Setup, moment: float) -> int:
    """Points the cell had logged (as it wrote down) when the kernel was killed."""
    wall = time.time() - (time.monotonic() - moment)
    return max((count for count, at in setup.progress if at <= wall), default=0)
