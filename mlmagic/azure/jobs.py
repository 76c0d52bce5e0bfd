"""Azure ML command jobs (SDK v2, the successor of SDK v1's ``ScriptRunConfig``): a script's
folder is uploaded as the job's code, and it runs on a compute cluster of the workspace in an
environment with mlflow and azureml-mlflow, so its MLflow logging lands in the workspace.

An Azure ML job is an MLflow run: the job's name is the run's id. Its state is polled from the
workspace; its output is the run's artifact ``user_logs/std_log.txt``.
"""

from __future__ import annotations

import functools
import sys
import tempfile
import time
import uuid
from pathlib import Path

from mlmagic.azure import sdk
from mlmagic.base.display import progress
from mlmagic.base.env import temporary_env
from mlmagic.base.errors import ConnectionFailed, InvalidInput, NotFound
from mlmagic.base.library_log import NO_PROGRESS_BARS, library_output
from mlmagic.base.secrets import error_line, scrub
from mlmagic.runners import SCRIPT_ENVIRONMENT, Job, log_folder

BASE_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest"
BASE_PACKAGES = ("mlflow", "azureml-mlflow")
LOG_ARTIFACT = "user_logs/std_log.txt"
POLL_SECONDS = 2.0
# Azure ML job states, as MLflow run states
STATES = {
    "NotStarted": "QUEUED", "Queued": "QUEUED", "Preparing": "STARTING",
    "Provisioning": "STARTING", "Starting": "STARTING", "Running": "RUNNING",
    "Finalizing": "RUNNING", "CancelRequested": "RUNNING", "Completed": "FINISHED",
    "Failed": "FAILED", "Canceled": "KILLED", "NotResponding": "FAILED",
}


def submit(script: Path, arguments: list[str], connection, experiment_id: str, *,
           name: str | None, compute: str, environment: str | None, pip: list[str]) -> Job:
    """Create a command job running ``script`` on ``compute``; return it (not waited for)."""
    workspace = connection.backend.workspace
    if workspace is None:
        raise InvalidInput(f"--compute needs an Azure ML workspace; this session tracks to "
                           f"{connection.backend.name}. Leave out --compute to run the script "
                           "here, or %aml_connect to a workspace.")
    if environment and pip:
        raise InvalidInput("give --environment or --pip, not both: --pip builds a fresh "
                           "environment with mlflow, azureml-mlflow and those packages.")
    client = workspace.ml_client()
    _check_compute(client, compute)
    experiment = _experiment_name(connection, experiment_id)
    job_name = uuid.uuid4().hex  # becomes the MLflow run id
    with library_output("submitting the job") as library:
        created = _create(client, script, arguments, job_name, name or script.stem, experiment,
                          compute, environment or _environment(pip))
    log_path = log_folder() / f"{job_name}.log"
    log_path.write_text("", encoding="utf-8")
    job = Job(job_name, str(script), f"azure ml compute {compute}", created.name, experiment_id,
              connection.tracking_uri, log_path, status="QUEUED",
              link=workspace.studio_link(f"runs/{created.name}"), error_artifact=LOG_ARTIFACT,
              library_output=library.shown)
    job.refresh = functools.partial(_refresh, job, client, connection)
    return job


@sdk.quiet()
def _check_compute(client, compute: str) -> None:
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

    try:
        client.compute.get(compute)
    except ResourceNotFoundError:
        raise NotFound(f"no compute '{compute}' in the workspace. List them in Azure ML "
                       "studio (Compute), or create a cluster there.") from None
    except HttpResponseError as error:
        raise ConnectionFailed(f"Azure ML could not look up the compute '{compute}': "
                               f"{error_line(error)}") from None


def _experiment_name(connection, experiment_id: str) -> str:
    if experiment_id == connection.experiment_id:
        return connection.experiment_name

    return connection.client().get_experiment(experiment_id).name


def _environment(pip: list[str]):
    from azure.ai.ml.entities import Environment

    conda = {
        "name": "mlmagic-job",
        "channels": ["conda-forge"],
        "dependencies": [f"python={sys.version_info.major}.{sys.version_info.minor}", "pip",
                         {"pip": [*BASE_PACKAGES, *pip]}],
    }
    return Environment(image=BASE_IMAGE, conda_file=conda,
                       description="mlmagic: mlflow and azureml-mlflow for a submitted script")


@sdk.quiet()
def _create(client, script: Path, arguments: list[str], job_name: str, display_name: str,
            experiment: str, compute: str, environment):
    import shlex

    from azure.ai.ml import command
    from azure.core.exceptions import HttpResponseError

    job = command(
        code=str(script.resolve().parent),
        command=" ".join(shlex.quote(part) for part in ["python", script.name, *arguments]),
        environment=environment, compute=compute, name=job_name, display_name=display_name,
        experiment_name=experiment, environment_variables=SCRIPT_ENVIRONMENT,
    )
    try:
        return client.jobs.create_or_update(job)
    except HttpResponseError as error:
        raise ConnectionFailed(f"Azure ML refused the job: {error_line(error)}") from None


@sdk.quiet()
def _refresh(job: Job, client, connection, *, echo: bool, wait: bool) -> None:
    """Read the job's state and log; with ``wait``, until it ends (``echo``: show the log)."""
    shown = 0
    while True:
        state = client.jobs.get(job.name).status
        state = getattr(state, "value", state)  # an enum of str on some SDK versions
        job.status = STATES.get(state, "RUNNING")
        if echo and not job.done:
            progress(f"job {job.name}: {state}")
        _read_log(job, connection)
        if echo:
            text = job.log_path.read_text(encoding="utf-8")
            if text[shown:]:
                progress(f"job {job.name}: {state}", done=True)
                print(text[shown:], end="", flush=True)
            shown = len(text)
        if job.done:
            job.ended = job.ended or time.time()
            job.exit_code = 0 if job.status == "FINISHED" else None  # Azure ML reports none
            if echo:
                progress(f"job {job.name}: {state}", done=True)
            return
        if not wait:
            return
        time.sleep(POLL_SECONDS)


def _read_log(job: Job, connection) -> None:
    """Copy the job's std_log.txt (once it exists) into the job's local log."""
    from mlflow.exceptions import MlflowException

    client = connection.client()
    try:
        if not client.list_artifacts(job.run_id, "user_logs"):
            return
        with tempfile.TemporaryDirectory() as folder, temporary_env(NO_PROGRESS_BARS):
            local = client.download_artifacts(job.run_id, LOG_ARTIFACT, folder)
            text = Path(local).read_text(encoding="utf-8", errors="replace")
            job.log_path.write_text(scrub(text, connection.tracking_uri), encoding="utf-8")
    except MlflowException:
        return
