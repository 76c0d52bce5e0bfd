"""`%aml_submit` and `%aml_jobs` without a compute: the script is a real child process whose
plain mlflow.log_* calls land in a run created for it, in a real store."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import only_line

import mlmagic

TRAIN = """\
import sys
import mlflow

lr = float(sys.argv[sys.argv.index("--lr") + 1])
mlflow.log_param("lr", lr)
for step in range(3):
    mlflow.log_metric("loss", 1.0 / (step + 1) * lr, step=step)
    print(f"epoch {step} done")
print("warming up the GPU", file=sys.stderr)
"""
FAILING = """\
import mlflow
import sys
mlflow.log_metric("seen", 1)
print("loading data")
sys.exit("bad data: the column 'age' is missing")
"""
WAITING = """\
import pathlib, time
import mlflow
print("started", flush=True)
mlflow.log_metric("alive", 1)
while not pathlib.Path("go").exists():
    time.sleep(0.05)
print("finished")
"""


def lines_of(capsys) -> list[str]:
    captured = capsys.readouterr()
    return [line for line in (captured.out + captured.err).splitlines() if line.strip()]


def test_script_logs_into_its_run_and_its_output_streams_into_the_notebook(
    shell, workdir, client, capsys
):
    (workdir / "train.py").write_text(TRAIN)
    shell.run_line_magic("aml_connect", "--experiment remote")
    capsys.readouterr()
    job = shell.run_line_magic("aml_submit", 'train.py --args "--lr 0.5" --name lr-half')
    shown = lines_of(capsys)
    assert shown == ["epoch 0 done", "epoch 1 done", "epoch 2 done", "warming up the GPU"]
    run = client().get_run(job.run_id)
    assert (run.info.status, run.info.run_name) == ("FINISHED", "lr-half")
    assert run.info.experiment_id == shell.run_line_magic("aml_status", "").experiment_id
    assert run.data.params == {"lr": "0.5"}
    assert [m.value for m in client().get_metric_history(job.run_id, "loss")] == [
        0.5, 0.25, 0.5 / 3]
    log = client().download_artifacts(job.run_id, "output.log", str(workdir))
    assert "epoch 2 done" in Path(log).read_text()
    assert mlmagic.last_run().info.run_id == job.run_id
    assert "job " in repr(job) and "FINISHED" in repr(job) and job.exit_code == 0


def test_a_failing_script_is_one_line_and_its_run_is_failed_with_the_stderr_tail(
    shell, workdir, client, capsys
):
    (workdir / "prepare.py").write_text(FAILING)
    shell.run_line_magic("aml_connect", "--experiment remote")
    capsys.readouterr()
    result = shell.run_cell("%aml_submit prepare.py")
    assert not result.success
    captured = capsys.readouterr()
    *script_output, error = captured.out.splitlines()
    assert captured.err.splitlines() == ["bad data: the column 'age' is missing"]
    run = mlmagic.last_run()
    assert run.info.status == "FAILED" and run.data.metrics == {"seen": 1.0}
    stderr = client().download_artifacts(run.info.run_id, "stderr.txt", str(workdir))
    assert "bad data: the column 'age' is missing" in Path(stderr).read_text()
    assert script_output == ["loading data"]
    assert error.startswith("RunFailed: prepare.py failed (exit code 1): bad data")
    assert "stderr.txt" in error


def test_no_wait_leaves_the_notebook_free_and_jobs_show_state_and_log(
    shell, workdir, client, capsys
):
    (workdir / "slow.py").write_text(WAITING)
    shell.run_line_magic("aml_connect", "--experiment remote")
    job = shell.run_line_magic("aml_submit", "slow.py --no-wait")
    assert job.status == "RUNNING"
    deadline = time.monotonic() + 60
    while "started" not in job.tail() and time.monotonic() < deadline:
        time.sleep(0.1)
    table = shell.run_line_magic("aml_jobs", "")
    row = table.set_index("job").loc[job.name]
    assert row["status"] == "RUNNING" and row["log tail"] == "started"
    assert client().get_run(job.run_id).info.status == "RUNNING"

    (workdir / "go").write_text("")
    while shell.run_line_magic("aml_jobs", job.name).status == "RUNNING":
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(0.1)
    assert "finished" in repr(shell.run_line_magic("aml_jobs", job.name))
    run = client().get_run(job.run_id)
    assert run.info.status == "FINISHED" and run.data.metrics == {"alive": 1.0}
    assert mlmagic.last_run().info.run_id == job.run_id


def test_a_run_on_an_mlflow_server_keeps_secrets_of_the_environment_out(
    shell, workdir, mlflow_server, monkeypatch, capsys
):
    monkeypatch.setenv("MY_API_TOKEN", "tok-very-secret-0042")
    (workdir / "train.py").write_text(TRAIN)
    shell.run_line_magic("aml_connect", f"{mlflow_server} --experiment remote-http")
    job = shell.run_line_magic("aml_submit", 'train.py --args "--lr 1"')
    from mlflow import MlflowClient

    server = MlflowClient(tracking_uri=mlflow_server)
    run = server.get_run(job.run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["loss"] == pytest.approx(1 / 3)
    stored = [*run.data.params.values(), *run.data.tags.values()]
    stored.append(Path(server.download_artifacts(job.run_id, "output.log", str(workdir))
                       ).read_text())
    assert not any("tok-very-secret-0042" in value for value in stored)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("%aml_submit missing.py", "NotFound: no script at "),
        ("%aml_submit train.py --pip scikit-learn", "InvalidInput: --environment and --pip "
         "are for --compute jobs"),
        ("%aml_submit train.py --compute gpu-cluster", "InvalidInput: --compute needs an "
         "Azure ML workspace"),
        ("%aml_submit", "UsageError: the following arguments are required: script"),
        ("%aml_submit train.py --colour red", "UsageError: unrecognized arguments: --colour"),
        ("%aml_jobs nothing-here", "NotFound: no job named 'nothing-here'"),
    ],
)
def test_bad_input_is_one_line_and_creates_no_run(shell, workdir, client, capsys, line,
                                                  expected):
    (workdir / "train.py").write_text(TRAIN)
    shell.run_line_magic("aml_connect", "--experiment remote")
    capsys.readouterr()
    result = shell.run_cell(line)
    assert not result.success
    assert only_line(capsys).startswith(expected)
    experiment = client().get_experiment_by_name("remote")
    assert client().search_runs([experiment.experiment_id]) == []
