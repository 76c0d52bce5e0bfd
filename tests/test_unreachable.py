"""Fast, honest failure: with the tracking server dead (connection refused) or hung (the
process stopped), every interactive magic answers within the connect timeout with one line,
instead of MLflow's minutes of retries."""

from __future__ import annotations

import os
import signal
import time
import urllib.request

import pytest
from conftest import PRICE_CELL, only_line
from servers import MlflowServer

TIMEOUT = 2.0  # %aml_connect --timeout: what every interactive call may wait
MAGICS = ["%aml_runs", "%aml_show last", "%aml_workspace", "%aml_models",
          "%aml_models price", "%aml_experiment other", "%aml_compare last price-model",
          "%aml_register copy --run last", "%aml_deploy price --name svc",
          "%aml_show last --download cell.py --to out"]


@pytest.fixture
def connected(shell, tmp_path, capsys):
    folder = tmp_path / "server"
    folder.mkdir()
    server = MlflowServer(folder).start()
    try:
        # A fresh server's first answers are slow on a busy machine: warm it first.
        search = f"{server.url}/api/2.0/mlflow/experiments/search?max_results=1"
        with urllib.request.urlopen(search, timeout=60):
            pass
        shell.run_line_magic("aml_connect", f"{server.url} --experiment unreachable "
                                            f"--timeout {TIMEOUT}")
        assert shell.run_cell(PRICE_CELL).success
        capsys.readouterr()
        yield shell, server
    finally:  # stopped however the test (or this set-up) ends
        if server._process is not None:
            os.killpg(server._process.pid, signal.SIGCONT)
        server.stop()


@pytest.mark.parametrize("fault", ["dead", "hung"])
def test_every_interactive_magic_answers_within_the_timeout(connected, capsys, fault):
    shell, server = connected
    if fault == "dead":
        server.stop()
    else:
        os.killpg(server._process.pid, signal.SIGSTOP)
    slow = []
    for line in MAGICS:
        started = time.monotonic()
        result = shell.run_cell(line)
        seconds = time.monotonic() - started
        assert not result.success, line
        shown = only_line(capsys)
        assert shown.startswith("ConnectionFailed: cannot reach"), (line, shown)
        expected = "connection refused" if fault == "dead" else f"no answer within {TIMEOUT:g} s"
        assert expected in shown, (line, shown)
        if seconds > TIMEOUT + 1.5:
            slow.append(f"{line}: {seconds:.1f} s")
    assert not slow, slow


def test_the_python_functions_answer_within_the_timeout_too(connected):
    import mlmagic
    from mlmagic.base.errors import ConnectionFailed

    shell, server = connected
    run_id = mlmagic.last_run().info.run_id
    server.stop()
    calls = {"last_run": mlmagic.last_run, "runs": mlmagic.runs,
             "experiments": mlmagic.experiments, "show": lambda: mlmagic.show("last"),
             "models": mlmagic.models,
             "metric_history": lambda: mlmagic.metric_history([run_id], "rmse")}
    slow = []
    for name, call in calls.items():
        started = time.monotonic()
        with pytest.raises(ConnectionFailed, match="connection refused"):
            call()
        if time.monotonic() - started > TIMEOUT + 1.5:
            slow.append(f"{name}: {time.monotonic() - started:.1f} s")
    assert not slow, slow
