"""Several sessions at once, as separate processes: two writing into one store (a fresh
embedded one, and a server), two syncing one journal, one connecting while another still
journals. Nothing may be lost, duplicated or corrupted."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from servers import clean_environment

RUNS, POINTS = 5, 2000
WRITER = """\
import sys, mlflow, mlmagic
uri, session = sys.argv[1], sys.argv[2]
mlmagic.connect(uri, experiment="shared")
for number in range({runs}):
    with mlmagic.track(f"{{session}}-{{number}}", quiet=True):
        for step in range({points}):
            mlflow.log_metric("x", step, step=step)
"""
SYNCER = """\
import sys, mlmagic
mlmagic.connect(sys.argv[1], experiment="shared")
print(repr(mlmagic.sync()))
"""
LONG_OFFLINE = """\
import pathlib, sys, time, mlflow, mlmagic
uri = sys.argv[1]
flag = pathlib.Path(sys.argv[2])
mlmagic.connect(uri, experiment="shared")
(flag / "connected").touch()
while not (flag / "server-down").exists():
    time.sleep(0.05)
with mlmagic.track("long-offline", quiet=True):
    for step in range({points}):
        mlflow.log_metric("x", step, step=step)
        if step == 1000:
            (flag / "journaling").touch()
            while not (flag / "finish").exists():
                time.sleep(0.05)
(flag / "done").touch()
while not (flag / "sync").exists():
    time.sleep(0.05)
print(repr(mlmagic.sync()))
"""


def _spawn(script: str, folder: Path, *args: str) -> subprocess.Popen:
    path = folder / f"script-{time.monotonic_ns()}.py"
    path.write_text(script)
    env = {**clean_environment(), "HOME": str(Path.home()),
           "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
    return subprocess.Popen([sys.executable, str(path), *args], cwd=folder, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen, timeout: float = 300) -> str:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    assert "Traceback" not in out + err, err[-3000:]
    return out + err


def _runs(uri: str) -> dict[str, list]:
    """Each run's name -> its metric history (steps), and that every run ended."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("shared")
    found = {}
    for run in client.search_runs([experiment.experiment_id], max_results=1000):
        assert run.info.status == "FINISHED", run.info
        assert run.info.run_name not in found, f"two runs named {run.info.run_name}"
        found[run.info.run_name] = [m.step for m in client.get_metric_history(
            run.info.run_id, "x")]
    return found


def _assert_complete(runs: dict[str, list], names: list[str]) -> None:
    assert sorted(runs) == sorted(names)
    for name, steps in runs.items():
        assert sorted(steps) == list(range(POINTS)), f"{name}: {len(steps)} points"


def test_two_sessions_write_into_one_fresh_embedded_store(workdir):
    uri = f"sqlite:///{workdir / 'fresh' / 'mlflow.db'}"
    (workdir / "fresh").mkdir()
    script = WRITER.format(runs=RUNS, points=POINTS)
    writers = [_spawn(script, workdir, uri, name) for name in ("a", "b")]  # both at once
    for writer in writers:
        _finish(writer)
    _assert_complete(_runs(uri), [f"{s}-{n}" for s in "ab" for n in range(RUNS)])
    with sqlite3.connect(workdir / "fresh" / "mlflow.db") as database:
        assert database.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert not list((Path.home() / ".mlmagic" / "journal").rglob("*.jsonl"))


def test_two_sessions_write_into_one_server(workdir, server):
    script = WRITER.format(runs=RUNS, points=POINTS)
    writers = [_spawn(script, workdir, server.url, name) for name in ("a", "b")]
    for writer in writers:
        _finish(writer)
    _assert_complete(_runs(server.url), [f"{s}-{n}" for s in "ab" for n in range(RUNS)])


def test_two_sessions_syncing_one_journal_send_each_run_once(shell, workdir, server):
    shell.run_line_magic("aml_connect", f"{server.url} --experiment shared")
    server.stop()
    for number in range(3):
        cell = (f"%%track --name offline-{number}\nimport mlflow\n"
                f"for step in range({POINTS}):\n    mlflow.log_metric('x', step, step=step)\n")
        assert shell.run_cell(cell).success
    assert len(list((Path.home() / ".mlmagic" / "journal").rglob("*.jsonl"))) == 3
    server.start()
    syncers = [_spawn(SYNCER, workdir, server.url) for _ in range(2)]
    reports = [_finish(syncer) for syncer in syncers]
    assert sum("synced" in report for report in reports) >= 1, reports
    _assert_complete(_runs(server.url), [f"offline-{n}" for n in range(3)])
    assert not list((Path.home() / ".mlmagic" / "journal").rglob("*.jsonl"))
    assert repr(shell.run_line_magic("aml_sync", "")).startswith("nothing to sync")


def test_a_session_connecting_never_replays_a_journal_still_being_written(
    shell, workdir, server
):
    flags = workdir / "flags"
    flags.mkdir()
    writer = _spawn(LONG_OFFLINE.format(points=POINTS), workdir, server.url, str(flags))
    _wait_for(flags / "connected", writer)
    server.stop()
    (flags / "server-down").touch()
    _wait_for(flags / "journaling", writer)
    server.start()
    connected = shell.run_line_magic("aml_connect", f"{server.url} --experiment shared")
    report = shell.run_line_magic("aml_sync", "")
    journals = list((Path.home() / ".mlmagic").rglob("*"))
    assert report.runs == 0 and report.waiting == 1, (repr(report), journals)
    (flags / "finish").touch()
    _wait_for(flags / "done", writer)
    (flags / "sync").touch()
    shown = _finish(writer)
    assert "synced 1 run(s)" in shown, shown
    assert shell.run_line_magic("aml_sync", "").runs == 0
    assert connected.tracking_uri == server.url
    _assert_complete(_runs(server.url), ["long-offline"])


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{path.name} never appeared: {process.communicate()}")
        time.sleep(0.05)
