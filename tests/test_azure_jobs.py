"""`%aml_submit --compute` on an Azure ML workspace: a command job through the real azure-ai-ml
against the emulator, which uploads the code snapshot, runs the script as the job (a local
child process logging into the workspace's store), and reports Queued -> Running ->
Completed/Failed."""

from __future__ import annotations

import time

import pytest
from conftest import only_line
from kernels import Kernel
from servers import clean_environment
from test_azure import WORKSPACE_FLAGS, workspace_store

import mlmagic

TRAIN = """\
import sys
import mlflow

mlflow.log_param("epochs", sys.argv[1])
for step in range(int(sys.argv[1])):
    mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    print(f"epoch {step}")
"""


@pytest.fixture
def on_workspace(shell, azure, workdir, capsys):
    azure.computes.add("cpu-cluster")
    (workdir / "job").mkdir()
    (workdir / "job" / "train.py").write_text(TRAIN)
    (workdir / "job" / "fail.py").write_text("import sys\nprint('reading')\n"
                                              "sys.exit('no GPU on this node')\n")
    shell.run_line_magic("aml_connect", WORKSPACE_FLAGS + " -e remote-jobs")
    capsys.readouterr()
    return shell


def test_a_command_job_runs_on_the_compute_and_logs_into_the_workspace(on_workspace, azure,
                                                                     capsys):
    job = on_workspace.run_line_magic(
        "aml_submit", 'job/train.py --args "3" --compute cpu-cluster --pip scikit-learn '
        "--name three-epochs")
    out = capsys.readouterr().out
    assert "epoch 0\nepoch 1\nepoch 2\n" in out
    run = workspace_store(azure).get_run(job.name)
    assert run.info.status == "FINISHED" and run.info.run_name == "three-epochs"
    assert run.data.params == {"epochs": "3"}
    assert run.data.metrics == {"loss": pytest.approx(1 / 3)}
    assert workspace_store(azure).get_experiment(run.info.experiment_id).name == "remote-jobs"
    assert mlmagic.last_run().info.run_id == job.name
    assert job.status == "FINISHED" and "azure ml compute cpu-cluster" in repr(job)
    assert f"runs/{job.name}?wsid=" in repr(job)

    sent = azure.jobs.jobs[job.name]["properties"]
    assert sent["command"] == "python train.py 3"
    environment = azure.jobs.environments[sent["environmentId"].removeprefix("azureml:").lower()]
    conda = environment["properties"]["condaFile"]
    assert all(package in conda for package in ("mlflow", "azureml-mlflow", "scikit-learn"))
    uploaded = [r.path for r in azure.requests if r.method == "PUT" and "/code/" in r.path]
    assert any(path.endswith("/train.py") for path in uploaded)
    states = [r for r in azure.requests if r.method == "GET" and r.path.endswith(job.name)]
    assert len(states) >= 2  # polled until it ended


def test_no_wait_then_jobs_shows_the_state_and_the_log(on_workspace, azure):
    job = on_workspace.run_line_magic("aml_submit",
                                      "job/train.py --args 2 --compute cpu-cluster --no-wait")
    assert job.status == "QUEUED"
    deadline = time.monotonic() + 120
    while (shown := on_workspace.run_line_magic("aml_jobs", job.name)).status != "FINISHED":
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(0.5)
    assert shown.tail() == "epoch 0\nepoch 1"  # and none of MLflow's links
    row = on_workspace.run_line_magic("aml_jobs", "").set_index("job").loc[job.name]
    assert row["status"] == "FINISHED" and row["log tail"] == "epoch 0\nepoch 1"


def test_a_failing_job_is_one_line_and_its_run_failed_with_the_log(on_workspace, azure,
                                                                  capsys):
    result = on_workspace.run_cell("%aml_submit job/fail.py --compute cpu-cluster")
    assert not result.success
    error = capsys.readouterr().out.splitlines()[-1]
    assert error.startswith("RunFailed: job/fail.py failed: no GPU on this node")
    assert "user_logs/std_log.txt" in error
    run = mlmagic.last_run()
    assert run.info.status == "FAILED"
    log = mlmagic.show("last").artifacts
    assert log == ("user_logs/std_log.txt",)
    assert "no GPU on this node" in (mlmagic.download_artifact("last", log[0])).read_text()


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("job/train.py --compute gpu-monster", "NotFound: no compute 'gpu-monster'"),
        ("job/train.py --compute cpu-cluster --environment env:1 --pip torch",
         "InvalidInput: give --environment or --pip, not both"),
        ("job/absent.py --compute cpu-cluster", "NotFound: no script at"),
    ],
)
def test_bad_input_is_one_line_and_creates_no_job(on_workspace, azure, capsys, line, expected):
    before = set(azure.jobs.jobs)
    result = on_workspace.run_cell(f"%aml_submit {line}")
    assert not result.success
    assert only_line(capsys).startswith(expected)
    assert set(azure.jobs.jobs) == before


def test_a_notebook_shows_the_jobs_card_and_output_without_mlflows_links(on_workspace, azure,
                                                                        workdir):
    """In a real kernel: a command job and a local job each show the script's output and the
    job's card (which links the run), and none of MLflow's "View run" lines or the SDKs'
    upload and download bars; a tracked cell shows its summary card only."""
    with Kernel(workdir, {**clean_environment(), "HOME": str(workdir.parent / "home")}) as kernel:
        kernel.set_up("%load_ext mlmagic", f"%aml_connect {WORKSPACE_FLAGS} -e remote-jobs")
        remote = kernel.run('%aml_submit job/train.py --args "3" --compute cpu-cluster')
        local = kernel.run('%aml_submit job/train.py --args "2"')
        tracked = kernel.run("%%track --name summary-on\nx = 1")
    for cell in (remote, local, tracked):
        assert cell.status == "ok" and cell.noise == [], cell.text
    assert "job " in remote.text and "JobStatus." not in remote.text  # Azure's words, no repr
    for cell, epochs in ((remote, 3), (local, 2)):
        assert "".join(f"epoch {step}\n" for step in range(epochs)) in cell.text + "\n"
        assert "FINISHED" in cell.text and "runs/" in cell.text  # the card links the run
    assert "run summary-on: FINISHED" in tracked.text
