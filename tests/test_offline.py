"""The offline journal: a tracked cell keeps running when its tracking server goes away, and
`%aml_sync` (or the next connection) sends what it logged, as the same run, exactly once."""

from __future__ import annotations

import time

import mlflow
import pytest
from conftest import only_line
from servers import FlakyGateway, MlflowServer

import mlmagic
from mlmagic.core.journal import journal_dir
from mlmagic.core.provenance import ARTIFACTS as PROVENANCE

POINTS = 10_000


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real `mlflow server` of this module's own, which the tests stop and start."""
    server = MlflowServer(tmp_path_factory.mktemp("offline-server")).start()
    yield server
    server.stop()


@pytest.fixture
def online(server, shell):
    """The shell connected to the module's server, started again if a test stopped it."""
    if not server.answers():
        server.start()
    shell.run_line_magic("aml_connect", f"{server.url} --experiment offline")
    shell.user_ns["server"] = server
    return shell


def journals() -> list:
    return sorted(journal_dir().rglob("*.jsonl"))


def loss_points(run_id: str) -> list:
    return mlflow.MlflowClient().get_metric_history(run_id, "loss")


def test_server_killed_mid_cell_then_synced_exactly_once(online, server, capsys):
    cell = (
        "%%track --name interrupted-server --param lr=0.1\n"
        "import mlflow, time\n"
        f"for step in range({POINTS}):\n"
        "    mlflow.log_metric('loss', 1.0 / (step + 1), step=step)\n"
        "    if step == 4000:\n"
        "        time.sleep(1.5)  # let some points reach the server first\n"
        "        server.stop()\n"
        "mlflow.log_param('epochs', 1)\n"
        "finished = True\n"
    )
    assert online.run_cell(cell).success
    assert online.user_ns["finished"] is True
    notes = capsys.readouterr().err
    assert notes.count("cannot be reached") == 1 and "%aml_sync" in notes
    assert len(journals()) == 1

    server.start()
    report = online.run_line_magic("aml_sync", "")
    assert report.runs == 1 and 0 < report.points < POINTS
    again = online.run_line_magic("aml_sync", "")
    assert again.runs == 0 and journals() == []

    run = mlmagic.last_run()
    assert run.info.run_name == "interrupted-server"
    assert run.info.status == "FINISHED"
    assert run.data.params == {"lr": "0.1", "epochs": "1"}
    points = loss_points(run.info.run_id)
    assert len(points) == POINTS
    assert sorted(p.step for p in points) == list(range(POINTS))
    artifacts = [a.path for a in mlflow.artifacts.list_artifacts(run_id=run.info.run_id)]
    assert [path for path in artifacts if path not in PROVENANCE] == ["cell.py"]


FLAKY_CELL = (
    "%%track --name {name}\n"
    "import mlflow\n"
    "for step in range(3000):\n"
    "    mlflow.log_metric('loss', 1.0 / (step + 1), step=step)\n"
)


@pytest.mark.parametrize("status", [503, None], ids=["503", "hung-up"])
def test_a_store_that_fails_for_a_moment_keeps_the_run_online(server, shell, capsys, status):
    if not server.answers():
        server.start()
    with FlakyGateway(server.url, "/runs/log-batch", failures=2, status=status) as gateway:
        shell.run_line_magic("aml_connect", f"{gateway.url} --experiment flaky")
        assert shell.run_cell(FLAKY_CELL.format(name="hiccup")).success
        notes = capsys.readouterr().err
        assert gateway.refused == 2
        assert "did not take a write" not in notes and "cannot be reached" not in notes, notes
        assert journals() == []
        run = mlmagic.last_run()
        assert run.info.status == "FINISHED"
        assert len(loss_points(run.info.run_id)) == 3000


def test_a_store_that_keeps_failing_sends_the_run_to_the_journal_in_seconds(
    server, shell, capsys
):
    if not server.answers():
        server.start()
    with FlakyGateway(server.url, "/runs/log-batch", failures=10**9) as gateway:
        shell.run_line_magic("aml_connect", f"{gateway.url} --experiment flaky")
        started = time.monotonic()
        assert shell.run_cell(FLAKY_CELL.format(name="outage")).success
        seconds = time.monotonic() - started
        notes = capsys.readouterr().err
        assert notes.count("did not take a write (it answered HTTP 503)") == 1, notes
        assert seconds < 15 and len(journals()) == 1

        gateway.heal()
        assert shell.run_line_magic("aml_sync", "").points == 3000
        assert journals() == []
        run = mlmagic.last_run()
        assert run.info.status == "FINISHED"
        assert len(loss_points(run.info.run_id)) == 3000


def test_server_down_at_start_the_cell_runs_and_the_next_connection_syncs(
    online, server, shell, capsys
):
    server.stop()
    capsys.readouterr()
    cell = (
        "%%track --name offline-from-start --tag team=risk\n"
        "import mlflow\n"
        "for step in range(100):\n"
        "    mlflow.log_metric('loss', 1.0 / (step + 1), step=step)\n"
        "raise ValueError('data drifted')\n"
    )
    result = shell.run_cell(cell)
    assert isinstance(result.error_in_exec, ValueError)
    printed = capsys.readouterr()
    assert printed.err.count("cannot be reached") == 1
    assert "run offline-from-start: FAILED (offline)" in printed.out
    assert mlmagic.last_run() is None  # not in the store yet

    server.start()
    shell.run_line_magic("aml_connect", f"{server.url} --experiment offline")
    assert "synced 1 run(s)" in capsys.readouterr().err
    run = mlmagic.last_run()
    assert run.info.run_name == "offline-from-start"
    assert run.info.status == "FAILED"
    assert run.data.tags["team"] == "risk"
    assert len(loss_points(run.info.run_id)) == 100
    artifacts = sorted(a.path for a in mlflow.artifacts.list_artifacts(run_id=run.info.run_id))
    assert [path for path in artifacts if path not in PROVENANCE] == ["cell.py", "traceback.txt"]
    assert journals() == []


def test_sync_while_the_server_is_still_down_is_one_line_and_keeps_the_journal(
    online, server, shell, capsys
):
    server.stop()
    shell.run_cell("%%track\nimport mlflow\nmlflow.log_metric('loss', 1.0)")
    capsys.readouterr()
    shell.run_cell("%aml_sync")
    assert "the journal is kept" in only_line(capsys)
    assert len(journals()) == 1
    server.start()
    assert shell.run_line_magic("aml_sync", "").runs == 1


def test_the_journal_holds_no_credentials(server, shell, capsys):
    if not server.answers():
        server.start()
    secret_url = server.url.replace("http://", "http://alice:hunter2@")
    shell.run_line_magic("aml_connect", secret_url)
    server.stop()
    shell.run_cell("%%track\nimport mlflow\nmlflow.log_metric('loss', 1.0)")
    printed = capsys.readouterr()
    (journal,) = journals()
    assert "hunter2" not in journal.read_text()
    assert "hunter2" not in printed.out + printed.err
    server.start()
    shell.run_line_magic("aml_sync", "")


def test_syncing_several_runs_shows_one_progress_line(online, server, shell, capsys):
    server.stop()
    for n in range(3):
        shell.run_cell(f"%%track --name cell{n}\nimport mlflow\nmlflow.log_metric('loss', {n})")
    server.start()
    capsys.readouterr()
    assert shell.run_line_magic("aml_sync", "").runs == 3
    printed = capsys.readouterr()
    assert printed.err == ""
    assert printed.out.count("\n") == 1 and "sending run 3 of 3" in printed.out
    assert printed.out.split("\r")[-1].startswith("mlmagic: sent 3 runs after ")
