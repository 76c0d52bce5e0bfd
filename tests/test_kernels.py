"""What only a real kernel shows: `%%track --autolog` against a tracking server (its
threads and MLflow's import hooks once deadlocked the kernel), and a killed kernel's local
endpoint, stopped by the next session."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from conftest import PRICE_CELL
from kernels import Kernel
from servers import MlflowServer, clean_environment, process_alive

AUTOLOG_CELL = """\
%%track --autolog --name auto-{n}
import mlflow
from sklearn.linear_model import LinearRegression
for step in range(2000):
    mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    if step == 1000:
        import sklearn.ensemble, sklearn.tree  # first imports while the run's threads send
LinearRegression().fit([[0.0], [1.0], [2.0]], [0.0, 1.0, 2.0])
"""


@pytest.fixture
def kernel_env(workdir):
    home = workdir.parent / "home"
    return {**clean_environment(), "HOME": str(home),
            "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}


def test_autolog_cells_on_a_server_never_deadlock(tmp_path, workdir, kernel_env):
    (tmp_path / "server").mkdir()
    server = MlflowServer(tmp_path / "server").start()
    kernel = Kernel(workdir, kernel_env)
    try:
        kernel.start()
        kernel.run("%load_ext mlmagic")
        assert kernel.run(f"%aml_connect {server.url} --experiment auto").status == "ok"
        for n in range(3):
            cell = kernel.run(AUTOLOG_CELL.format(n=n), timeout=90)
            assert cell.status == "ok", cell.text
            seen = f"{cell.text}\n--- server log ---\n{server._log_tail()}"
            assert f"run auto-{n}: FINISHED" in cell.text, seen
            assert "training_score=1" in cell.text, seen
    finally:
        kernel.stop()
        server.stop()


def test_a_killed_kernels_local_endpoint_is_stopped_by_the_next_session(workdir, kernel_env):
    kernel = Kernel(workdir, kernel_env).start()
    try:
        kernel.run("%load_ext mlmagic")
        kernel.run("%aml_connect --experiment endpoints")
        assert kernel.run(PRICE_CELL).status == "ok"
        deployed = kernel.run("%aml_deploy price --name orphan")
        assert deployed.status == "ok", deployed.text
        assert deployed.noise == [] and "log" in deployed.text  # the server's output: its log
        kernel.run("from mlmagic.core.session import current_session")
        pid, port = (int(kernel.value(f"current_session().endpoints['orphan'].details['{key}']"))
                     for key in ("pid", "port"))
        kernel.kill()
    finally:
        kernel.stop()
    assert process_alive(pid) and _answers(port)  # orphaned: nobody stops it

    kernel = Kernel(workdir, kernel_env).start()
    try:
        kernel.run("%load_ext mlmagic")
        connected = kernel.run("%aml_connect --experiment endpoints")
        assert connected.status == "ok", connected.text
        notes = [line for line in connected.outputs if line.startswith("mlmagic:")]
        assert notes == ["mlmagic: stopped 1 local endpoint(s) left serving by a session that "
                         f"died: orphan (port {port})."], connected.text
        deadline = time.monotonic() + 20
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not process_alive(pid) and not _answers(port)
    finally:
        kernel.stop()


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
            return True
    except OSError:
        return False


def test_an_interrupted_local_deploy_leaves_no_server_behind(workdir, kernel_env):
    leases = workdir.parent / "home" / ".mlmagic" / "leases" / "endpoints"
    kernel = Kernel(workdir, kernel_env).start()
    try:
        kernel.run("%load_ext mlmagic")
        kernel.run("%aml_connect --experiment endpoints")
        assert kernel.run(PRICE_CELL).status == "ok"
        submitted = kernel.submit("%aml_deploy price --name cut")
        deadline = time.monotonic() + 60
        while not list(leases.glob("cut-*.json")) and time.monotonic() < deadline:
            time.sleep(0.05)
        lease = json.loads(next(leases.glob("cut-*.json")).read_text())
        kernel.interrupt()  # while the server starts
        assert kernel.wait(submitted).error == "KeyboardInterrupt"
        deadline = time.monotonic() + 20
        while process_alive(lease["server_pid"]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not process_alive(lease["server_pid"]) and not _answers(lease["port"])
        assert not list(leases.glob("cut-*.json"))
        listed = kernel.run("listed = %aml_endpoints\nprint(listed.to_string())").text
        assert "cut" not in listed
    finally:
        kernel.stop()
