"""Command jobs for the Azure emulator: compute look-ups, code snapshots uploaded as azure-ai-ml
uploads them (pending upload, SAS blob, code version), environments, and jobs that go
Queued -> Running -> Completed/Failed.

A job really runs: its uploaded code is taken from the emulated blob store and its command
executed as a local child process, with the workspace's MLflow store and the job's run in its
environment (as Azure ML sets them on a cluster), so the script's logging lands in the
workspace. Its output is the run's artifact ``user_logs/std_log.txt``, as on Azure ML. As on
Azure ML, the job's name is its MLflow run's id.

``add_job_routes(emulator, store_db)`` adds the rows to the emulator's route table.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from servers import clean_environment

from .emulator import OPEN, WORKSPACE_PATH, AzureEmulator
from .network import BLOB_ACCOUNT
from .responses import Response, arm_error, json_response

COMPUTE = WORKSPACE_PATH + r"/computes/(?P<compute>[^/]+)"
CODE = WORKSPACE_PATH + r"/codes/(?P<name>[^/]+)/versions"
ENVIRONMENT = WORKSPACE_PATH + r"/environments/(?P<name>[^/]+)/versions/(?P<version>[^/]+)"
JOB = WORKSPACE_PATH + r"/jobs/(?P<job>[^/]+)"


@dataclass
class Jobs:
    """What the emulated workspace holds for jobs: code versions, environments, jobs."""

    emulator: AzureEmulator
    store_db: Path  # the SQLite file of the workspace's MLflow store
    queued_seconds: float = 1.0
    codes: dict[str, dict] = field(default_factory=dict)  # ARM id -> resource
    environments: dict[str, dict] = field(default_factory=dict)
    jobs: dict[str, dict] = field(default_factory=dict)
    experiments: dict[str, str] = field(default_factory=dict)  # job -> its MLflow experiment
    lock: threading.Lock = field(default_factory=threading.Lock)

    def clear(self) -> None:
        """Forget the jobs that ended (those still running go on)."""
        with self.lock:
            for name in [n for n, job in self.jobs.items()
                         if job["properties"]["status"] in ("Completed", "Failed")]:
                del self.jobs[name]

    # -- compute -----------------------------------------------------------------------

    def get_compute(self, sub, rg, ws, compute, headers, **_) -> Response:
        found = self.emulator.find_workspace(sub, rg, ws)
        if isinstance(found, Response):
            return found
        if compute not in self.emulator.computes:
            return arm_error(404, "ResourceNotFound", f"compute '{compute}' not found")
        return json_response(200, {
            "id": f"{found.arm_id}/computes/{compute}", "name": compute,
            "type": "Microsoft.MachineLearningServices/workspaces/computes",
            "location": found.region,
            "properties": {"computeType": "AmlCompute", "provisioningState": "Succeeded",
                           "properties": {"vmSize": "STANDARD_DS3_V2",
                                          "scaleSettings": {"minNodeCount": 0,
                                                            "maxNodeCount": 4}}},
        })

    # -- code snapshots ----------------------------------------------------------------

    def list_code_versions(self, sub, rg, ws, name, headers, **_) -> Response:
        found = self.emulator.find_workspace(sub, rg, ws)
        if isinstance(found, Response):
            return found
        return json_response(200, {"value": []})  # no snapshot is reused: each is uploaded

    def start_pending_upload(self, sub, rg, ws, name, version, headers, **_) -> Response:
        found = self.emulator.find_workspace(sub, rg, ws)
        if isinstance(found, Response):
            return found
        folder = f"code/{name}/{version}"
        sas = self.emulator.storage.sas_url(folder)
        blob_uri = sas.split("?", 1)[0]
        return json_response(200, {
            "blobReferenceForConsumption": {
                "blobUri": blob_uri, "storageAccountArmId": None,
                "credential": {"credentialType": "SAS", "sasUri": sas}},
            "pendingUploadId": name, "pendingUploadType": "TemporaryBlobReference",
        })

    def put_code_version(self, sub, rg, ws, name, version, headers, body, **_) -> Response:
        found = self.emulator.find_workspace(sub, rg, ws)
        if isinstance(found, Response):
            return found
        resource = {"id": f"{found.arm_id}/codes/{name}/versions/{version}", "name": version,
                    "type": "Microsoft.MachineLearningServices/workspaces/codes/versions",
                    "properties": json.loads(body).get("properties", {})}
        self.codes[resource["id"].lower()] = resource
        return json_response(200, resource)

    def get_code_version(self, sub, rg, ws, name, version, headers, **_) -> Response:
        found = self.emulator.find_workspace(sub, rg, ws)
        if isinstance(found, Response):
            return found
        resource = self.codes.get(f"{found.arm_id}/codes/{name}/versions/{version}".lower())
        if resource is None:
            return arm_error(404, "ResourceNotFound", f"code {name}:{version} not found")
        return json_response(200, resource)

    def _code_folder(self, code_id: str) -> Path | None:
        resource = self.codes.get(code_id.removeprefix("azureml:").lower())
        if resource is None:
            return None
        path = urllib.parse.urlparse(resource["properties"]["codeUri"]).path
        return self.emulator.blobs / urllib.parse.unquote(
            path.split(f"/{BLOB_ACCOUNT}/", 1)[1])

    def put_blob(self, name, query, headers, body, **_) -> Response:
        if query.get("comp") != "metadata":
            return self.emulator.storage.put_blob(name=name, body=body)
        if not (self.emulator.blobs / urllib.parse.unquote(name)).is_file():
            return Response(404, b"", {"x-ms-error-code": "BlobNotFound"})
        return Response(200, b"", {"ETag": '"0x2"', "x-ms-request-server-encrypted": "true"})

    # -- environments ------------------------------------------------------------------

    def put_environment(self, sub, rg, ws, name, version, headers, body, **_) -> Response:
        found = self.emulator.find_workspace(sub, rg, ws)
        if isinstance(found, Response):
            return found
        resource = {"id": f"{found.arm_id}/environments/{name}/versions/{version}",
                    "name": version,
                    "type": "Microsoft.MachineLearningServices/workspaces/environments/versions",
                    "properties": json.loads(body).get("properties", {})}
        self.environments[resource["id"].lower()] = resource
        return json_response(200, resource)

    def get_environment(self, sub, rg, ws, name, version, headers, **_) -> Response:
        found = self.emulator.find_workspace(sub, rg, ws)
        if isinstance(found, Response):
            return found
        wanted = f"{found.arm_id}/environments/{name}/versions/{version}".lower()
        if wanted not in self.environments:
            return arm_error(404, "ResourceNotFound", f"environment {name}:{version} not found")
        return json_response(200, self.environments[wanted])

    # -- jobs --------------------------------------------------------------------------

    def put_job(self, sub, rg, ws, job, headers, body, **_) -> Response:
        found = self.emulator.find_workspace(sub, rg, ws)
        if isinstance(found, Response):
            return found
        properties = json.loads(body)["properties"]
        compute = (properties.get("computeId") or "").rstrip("/").split("/")[-1]
        if compute not in self.emulator.computes:
            return arm_error(400, "UserError", f"compute '{compute}' not found")
        code = self._code_folder(properties.get("codeId") or "")
        if code is None or not code.is_dir():
            return arm_error(400, "UserError", "the job's code snapshot was not uploaded")
        environment = properties.get("environmentId", "").removeprefix("azureml:").lower()
        if environment not in self.environments:
            return arm_error(400, "UserError", f"environment {environment} not found")
        resource = {"id": f"{found.arm_id}/jobs/{job}", "name": job,
                    "type": "Microsoft.MachineLearningServices/workspaces/jobs",
                    "properties": {**properties, "status": "Queued", "services": {}}}
        with self.lock:
            self.jobs[job] = resource
        experiment = properties.get("experimentName") or "Default"
        self._create_run(job, experiment, properties.get("displayName") or job)
        threading.Thread(target=self._execute, args=(job, code, properties["command"],
                                                     properties.get("environmentVariables")),
                         daemon=True).start()
        return json_response(200, resource)

    def get_job(self, sub, rg, ws, job, headers, **_) -> Response:
        found = self.emulator.find_workspace(sub, rg, ws)
        if isinstance(found, Response):
            return found
        if job not in self.jobs:
            return arm_error(404, "UserError", f"job {job} not found")
        return json_response(200, self.jobs[job])

    def _create_run(self, job: str, experiment: str, display_name: str) -> None:
        """The job's MLflow run, with the job's name as its id (as on Azure ML)."""
        import mlflow

        client = mlflow.MlflowClient(tracking_uri=self.emulator.mlflow_url)
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(experiment)
        run = client.create_run(experiment_id, run_name=display_name,
                                tags={"azureml.runsource": "azureml.scriptrun"})
        old = run.info.run_id
        with sqlite3.connect(self.store_db) as db:
            db.execute("UPDATE runs SET run_uuid = ?, artifact_uri = replace(artifact_uri, ?, ?) "
                       "WHERE run_uuid = ?", (job, old, job, old))
            db.execute("UPDATE tags SET run_uuid = ? WHERE run_uuid = ?", (job, old))
        self.experiments[job] = experiment_id

    def _execute(self, job: str, code: Path, command: str, variables: dict | None) -> None:
        """Queued for a moment, then the command in a copy of the code, with the job's
        environment variables, its output in the run's std_log.txt; Completed or Failed by its
        exit code."""
        import mlflow

        time.sleep(self.queued_seconds)
        resource = self.jobs[job]
        log = self.emulator.blobs / "ExperimentRun" / f"dcid.{job}" / "user_logs" / "std_log.txt"
        log.parent.mkdir(parents=True, exist_ok=True)
        environment = {
            **clean_environment(),
            "MLFLOW_TRACKING_URI": self.emulator.mlflow_url, "MLFLOW_RUN_ID": job,
            "MLFLOW_EXPERIMENT_ID": self.experiments[job], "PYTHONUNBUFFERED": "1",
            "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
            **(variables or {}),
        }
        resource["properties"]["status"] = "Running"
        with tempfile.TemporaryDirectory() as folder, log.open("w") as output:
            shutil.copytree(code, folder, dirs_exist_ok=True)
            code_exit = subprocess.run(["bash", "-c", command], cwd=folder, env=environment,
                                       stdout=output, stderr=subprocess.STDOUT).returncode
        status = "Completed" if code_exit == 0 else "Failed"
        client = mlflow.MlflowClient(tracking_uri=self.emulator.mlflow_url)
        client.set_terminated(job, "FINISHED" if code_exit == 0 else "FAILED")
        resource["properties"]["status"] = status


def add_job_routes(emulator: AzureEmulator, store_db: Path) -> Jobs:
    """Teach the emulator computes, code snapshots, environments and command jobs; the
    returned object holds their state."""
    state = Jobs(emulator, store_db)
    emulator.parts.append(state)
    # azure-ai-ml tags each uploaded file with metadata (PUT ?comp=metadata): that must not
    # overwrite the blob; this row goes ahead of the emulator's own blob routes
    blob = "/" + re.escape(BLOB_ACCOUNT) + r"/(?P<name>.+)"
    emulator.route("PUT", blob, state.put_blob, plane=OPEN, first=True)
    emulator.route("GET", COMPUTE, state.get_compute)
    emulator.route("GET", CODE, state.list_code_versions)
    emulator.route("POST", CODE + r"/(?P<version>[^/]+)/startPendingUpload",
                   state.start_pending_upload)
    emulator.route("PUT", CODE + r"/(?P<version>[^/]+)", state.put_code_version)
    emulator.route("GET", CODE + r"/(?P<version>[^/]+)", state.get_code_version)
    emulator.route("PUT", ENVIRONMENT, state.put_environment)
    emulator.route("GET", ENVIRONMENT, state.get_environment)
    emulator.route("PUT", JOB, state.put_job)
    emulator.route("GET", JOB, state.get_job)
    return state
