"""Notebooks in a real Jupyter kernel: the quickstart end to end, Run All stopping at a
failing tracked cell, one-line errors, and a real kernel interrupt."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import mlflow
import nbformat
import pytest
from conftest import ENV_TO_CLEAR
from jupyter_client.manager import start_new_kernel
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from servers import clean_environment, free_port, process_alive

REPO = Path(__file__).resolve().parents[1]


def notebook(*sources: str):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    return nb


def execute(nb, workdir: Path, **options):
    client = NotebookClient(
        nb, timeout=300, resources={"metadata": {"path": str(workdir)}}, **options
    )
    client.execute()
    return nb


def store_runs(workdir: Path, experiment: str):
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id]) if found else []


def test_readme_main_command_runs_the_quickstart(workdir):
    result = subprocess.run(
        [sys.executable, str(REPO / "notebooks" / "run.py")],
        cwd=workdir, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Runs are in sqlite:///{workdir / 'mlflow.db'}" in result.stdout
    assert "experiment 'quickstart': 2 runs" in result.stdout
    assert "registered model 'diabetes': 1 version(s)" in result.stdout
    executed = nbformat.read(REPO / "notebooks" / "quickstart.out.ipynb", as_version=4)
    predicted = [c for c in executed.cells if c.source.startswith("preds = %aml_predict")][0]
    assert "array(" in predicted.outputs[0]["data"]["text/plain"]
    scored = [c for c in executed.cells if c.source.startswith("scored = %aml_score")][0]
    assert "prediction" in scored.outputs[0]["data"]["text/plain"]
    deployed = [c for c in executed.cells if c.source.startswith("%aml_deploy")][0]
    assert [o.output_type for o in deployed.outputs] == ["display_data", "execute_result"]
    assert deployed.outputs[0]["data"]["text/plain"].startswith("diabetes is ready after ")
    runs = {run.info.run_name: run for run in store_runs(workdir, "quickstart")}
    assert set(runs) == {"ridge", "sgd"}
    assert all(run.info.status == "FINISHED" for run in runs.values())
    assert 30 < runs["ridge"].data.metrics["rmse"] < 90
    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    history = mlflow.MlflowClient().get_metric_history(runs["sgd"].info.run_id, "epoch_loss")
    assert [m.step for m in history] == list(range(20))
    model = mlflow.pyfunc.load_model(f"runs:/{runs['ridge'].info.run_id}/model")
    assert len(model.predict(model.input_example)) == 3


def test_run_all_stops_at_a_failing_tracked_cell(workdir):
    nb = notebook(
        "%load_ext mlmagic",
        "%%track --name broken\nraise ValueError('bad batch')",
        "after = 'should not run'",
    )
    with pytest.raises(CellExecutionError) as caught:
        execute(nb, workdir)
    assert caught.value.ename == "ValueError" and "bad batch" in caught.value.evalue
    assert nb.cells[2].get("execution_count") is None
    (run,) = store_runs(workdir, "Default")
    assert run.info.status == "FAILED"


def test_user_errors_are_one_line_in_the_kernel(workdir):
    nb = notebook("%load_ext mlmagic", f"%aml_connect http://127.0.0.1:{free_port()}")
    execute(nb, workdir, allow_errors=True)
    (error,) = [o for o in nb.cells[1].outputs if o.output_type == "error"]
    assert error.ename == "ConnectionFailed"
    assert len(error.traceback) == 1
    assert error.traceback[0].startswith("ConnectionFailed: cannot reach the MLflow server")


def test_kernel_interrupt_closes_the_run_as_killed(workdir):
    manager, client = start_new_kernel(
        kernel_name="python3", cwd=str(workdir),
        env={**clean_environment(*ENV_TO_CLEAR), "JPY_SESSION_NAME": str(workdir / "long.ipynb")},
    )
    try:
        client.execute_interactive("%load_ext mlmagic\n%aml_connect", timeout=120)
        message_id = client.execute(
            "%%track --name long\nimport time\nfor _ in range(1200):\n    time.sleep(0.1)"
        )
        _wait_for_running_run(workdir)
        manager.interrupt_kernel()
        reply = client.get_shell_msg(timeout=60)
        assert reply["parent_header"]["msg_id"] == message_id
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    (run,) = store_runs(workdir, "Default")
    assert run.info.status == "KILLED"
    assert run.data.tags["mlflow.source.name"] == str(workdir / "long.ipynb")


def _wait_for_running_run(workdir: Path, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if (workdir / "mlflow.db").exists() and any(
            run.info.status == "RUNNING" for run in store_runs(workdir, "Default")
        ):
            return
        time.sleep(0.3)
    raise AssertionError("the tracked cell never started its run")


def test_a_running_cell_shows_its_metrics_live_in_the_kernel(workdir):
    manager, client = start_new_kernel(
        kernel_name="python3", cwd=str(workdir), env=clean_environment(*ENV_TO_CLEAR)
    )
    messages = []
    try:
        client.execute_interactive("%load_ext mlmagic\n%aml_connect", timeout=120)
        cell = (
            "%%track --name live\n"
            "import mlflow, time\n"
            "for step in range(30):\n"
            "    mlflow.log_metric('loss', 1.0 / (step + 1), step=step)\n"
            "    time.sleep(0.1)\n"
        )
        reply = client.execute_interactive(cell, timeout=120, output_hook=messages.append)
        assert reply["content"]["status"] == "ok"
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    shown = [m for m in messages if m["msg_type"] in ("display_data", "update_display_data")]
    assert shown[0]["msg_type"] == "display_data"
    display_id = shown[0]["content"]["transient"]["display_id"]
    updates = [m for m in shown if m["msg_type"] == "update_display_data"]
    assert all(m["content"]["transient"]["display_id"] == display_id for m in updates)
    texts = [m["content"]["data"]["text/plain"] for m in updates]
    running = [text for text in texts if "run live: RUNNING" in text]
    assert 2 <= len(running) <= 15  # a few times a second, over about three seconds
    assert "loss=" in running[-1]
    assert "run live: FINISHED" in texts[-1] and "loss=0.0333333" in texts[-1]
    assert len([m for m in shown if m["msg_type"] == "display_data"]) == 1


def test_endpoints_stop_when_the_kernel_exits(workdir):
    from conftest import PRICE_CELL

    manager, client = start_new_kernel(
        kernel_name="python3", cwd=str(workdir), env=clean_environment(*ENV_TO_CLEAR)
    )
    quiet = {"timeout": 300, "output_hook": lambda message: None}
    try:
        client.execute_interactive("%load_ext mlmagic\n%aml_connect", **quiet)
        assert client.execute_interactive(PRICE_CELL, **quiet)["content"]["status"] == "ok"
        reply = client.execute_interactive(
            "%aml_deploy price --name svc\n"
            "from mlmagic.core.session import current_session\n"
            "pid = current_session().endpoints['svc'].details['pid']",
            user_expressions={"pid": "pid"}, **quiet,
        )
        assert reply["content"]["status"] == "ok", reply["content"]
        pid = int(reply["content"]["user_expressions"]["pid"]["data"]["text/plain"])
        assert process_alive(pid)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=False)
    deadline = time.monotonic() + 30
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not process_alive(pid)
