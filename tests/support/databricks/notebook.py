"""What makes a Python process look like a Databricks notebook attached to a cluster, for a real
Jupyter kernel (or an in-process IPython shell):

- ``DATABRICKS_RUNTIME_VERSION`` (15.4 unless ``runtime`` names another) and
  ``MLFLOW_TRACKING_URI=databricks`` in its environment, and no ``DATABRICKS_HOST`` /
  ``DATABRICKS_TOKEN``: a cluster gives credentials through the notebook context;
- a ``dbruntime`` package on ``PYTHONPATH``: ``databricks_repl_context.get_context()`` (the
  attributes MLflow's ``databricks_utils`` reads: ``apiUrl``, ``apiToken``, ``notebookPath``,
  ``notebookId``, ``clusterId``, ``isInNotebook``, ``isInCluster``, ``workspaceId``,
  ``workspaceUrl``, ``browserHostName``, ``user``, … and None for the job ones),
  ``sdk_credential_provider.init_runtime_native_auth`` and ``UserNamespaceInitializer`` (what
  databricks-sdk's ``runtime`` auth and ``databricks.sdk.runtime`` import), and ``dbutils``
  whose ``notebook.entry_point.getDbutils().notebook().getContext()`` answers the same in the
  Java-option shapes MLflow calls (``apiUrl().get()``, ``tags().get("orgId").isDefined()``);
- an IPython startup file (``IPYTHONDIR``) that defines the notebook's globals: ``dbutils``,
  ``display`` (which keeps what it was given in ``display.shown``, for tests to read),
  ``displayHTML`` (which also records each HTML it received: :meth:`displayed`),
  ``getArgument``, and, unless ``spark=False``, ``spark`` (a real local SparkSession,
  ``local[1]`` on 127.0.0.1, with the cluster's conf and its warehouse under the context's
  root), ``sc``, ``sql``, ``table``, ``udf``.

The context is read from a JSON file at every call, as Databricks refreshes a notebook's token:
:meth:`NotebookContext.rotate_token` changes it under a running kernel.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from servers import clean_environment

RUNTIME_VERSION = "15.4"
CLUSTER_ID = "0601-182128-dcbte59m"
DATABRICKS_VARIABLES = ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CONFIG_PROFILE",
                        "DATABRICKS_CONFIG_FILE", "DATABRICKS_CLIENT_ID",
                        "DATABRICKS_CLIENT_SECRET", "DATABRICKS_AUTH_TYPE",
                        "DATABRICKS_RUNTIME_VERSION", "MLFLOW_REGISTRY_URI",
                        "MLFLOW_DISABLE_DATABRICKS_SDK_FOR_RUN_ARTIFACTS")
PACKAGE = Path(__file__).with_name("runtime")  # the dbruntime stand-in's sources


class NotebookContext:
    """A notebook at workspace ``path`` of the emulated workspace, run by ``user`` with
    ``token`` (a new token of the workspace's user by default), on cluster ``cluster_id`` of
    Databricks Runtime ``runtime``; its files under ``root`` (written by :meth:`prepare`)."""

    def __init__(self, emulator: Any, root: Path, *, path: str | None = None,
                 user: str | None = None, token: str | None = None,
                 cluster_id: str = CLUSTER_ID, spark: bool = True,
                 runtime: str = RUNTIME_VERSION) -> None:
        self.emulator = emulator
        self.root = root
        self.user = user or emulator.user
        self.path = path or f"/Users/{self.user}/churn-notebook"
        self.token = token or emulator.issue_token(self.user)
        self.cluster_id = cluster_id
        self.spark = spark
        self.runtime = runtime
        self.secrets: dict[str, dict[str, str]] = {}
        self.notebook_id = ""

    @property
    def python_path(self) -> Path:
        """The folder to put on ``PYTHONPATH`` (it holds ``dbruntime``)."""
        return self.root / "python"

    @property
    def ipython_dir(self) -> Path:
        """The ``IPYTHONDIR`` whose default profile runs the notebook's startup file."""
        return self.root / "ipython"

    @property
    def startup_file(self) -> Path:
        return self.ipython_dir / "profile_default" / "startup" / "00-databricks-init.py"

    @property
    def warehouse(self) -> Path:
        """Where the cluster's managed tables are (``spark.sql.warehouse.dir``; on Databricks,
        ``dbfs:/user/hive/warehouse``)."""
        return self.root / "warehouse"

    @property
    def context_file(self) -> Path:
        return self.root / "context.json"

    @property
    def displayed_file(self) -> Path:
        """Where ``displayHTML`` records what it received, a JSON string a line."""
        return self.root / "displayHTML.jsonl"

    def displayed(self) -> list[str]:
        """Every HTML the notebook's ``displayHTML`` received so far, oldest first."""
        if not self.displayed_file.is_file():
            return []
        return [json.loads(line) for line in self.displayed_file.read_text().splitlines()]

    def prepare(self) -> NotebookContext:
        """Register the notebook in the workspace and write the ``dbruntime`` package, the
        startup file and the context."""
        self.notebook_id = self.emulator.add_notebook(self.path)
        package = self.python_path / "dbruntime"
        package.mkdir(parents=True, exist_ok=True)
        for source in PACKAGE.glob("*.py"):
            (package / source.name).write_text(source.read_text())
        (package / "context_file.txt").write_text(str(self.context_file))
        self.startup_file.parent.mkdir(parents=True, exist_ok=True)
        startup = (PACKAGE / "startup.py.txt").read_text()
        startup = startup.replace("SPARK = True", f"SPARK = {self.spark}").replace(
            'WAREHOUSE = "spark-warehouse"', f"WAREHOUSE = {str(self.warehouse)!r}")
        self.startup_file.write_text(startup)
        self.write_context()
        return self

    def context(self) -> dict[str, Any]:
        """The REPL context's attributes, as ``get_context()`` gives them."""
        host = self.emulator.url.removeprefix("http://")
        return {
            "apiUrl": self.emulator.url, "apiToken": self.token, "sslTrustAll": False,
            "notebookPath": self.path, "notebookId": self.notebook_id, "isInNotebook": True,
            "isInJob": False, "isInCluster": True, "clusterId": self.cluster_id,
            "workspaceId": self.emulator.workspace_id, "workspaceUrl": host,
            "browserHostName": host, "user": self.user, "userName": self.user,
            "aclPathOfAclRoot": f"/workspace/{self.notebook_id}",
            "replId": f"ReplId-{self.notebook_id}-emulated", "jobGroupId": None,
            "jobId": None, "idInJob": None, "jobTaskType": None, "jobType": None,
            "workloadId": None, "workloadClass": None, "mlflowGitRepoUrl": None,
            "mlflowGitRepoProvider": None, "mlflowGitRepoCommit": None,
            "mlflowGitRelativePath": None, "mlflowGitRepoReference": None,
            "mlflowGitRepoReferenceType": None, "mlflowGitRepoStatus": None,
        }

    def write_context(self) -> None:
        self.context_file.write_text(json.dumps({
            "context": self.context(), "secrets": self.secrets,
            "temp": str(self.root / "tmp"), "runtime": self.runtime,
            "displayed": str(self.displayed_file)}))

    def rotate_token(self, token: str | None = None) -> str:
        """Give the notebook a new token (as Databricks refreshes it); the token."""
        self.token = token or self.emulator.issue_token(self.user)
        self.write_context()
        return self.token

    def add_secret(self, scope: str, key: str, value: str) -> None:
        """A secret ``dbutils.secrets.get(scope, key)`` answers."""
        self.secrets.setdefault(scope, {})[key] = value
        self.write_context()

    def environment(self) -> dict[str, str]:
        """The environment of a kernel started as this notebook: this process's, less every
        tracking and Databricks setting, plus the runtime's."""
        env = clean_environment(*DATABRICKS_VARIABLES)
        env.update({
            "DATABRICKS_RUNTIME_VERSION": self.runtime,
            "MLFLOW_TRACKING_URI": "databricks",
            "PYTHONPATH": os.pathsep.join(
                [str(self.python_path), *filter(None, [env.get("PYTHONPATH")])]),
            "IPYTHONDIR": str(self.ipython_dir),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "PYSPARK_PYTHON": sys.executable,
        })
        return env

    def enter(self, shell) -> None:
        """Make this process's in-process IPython ``shell`` the notebook (see
        :func:`enter_notebook`)."""
        enter_notebook(shell, self.root)


def enter_notebook(shell, root: Path) -> None:
    """Make this process's in-process IPython ``shell`` the notebook whose files a
    :class:`NotebookContext` wrote under ``root``: ``dbruntime`` on ``sys.path``, the runtime's
    variables in ``os.environ`` (the caller restores them), the startup file run in the shell's
    namespace. MLflow decides at import whether it runs in Databricks: import
    ``mlflow.utils.databricks_utils`` only after this (in a fresh process)."""
    sys.path.insert(0, str(root / "python"))
    for name in DATABRICKS_VARIABLES:
        os.environ.pop(name, None)
    written = json.loads((root / "context.json").read_text())
    os.environ.update({"DATABRICKS_RUNTIME_VERSION": written.get("runtime", RUNTIME_VERSION),
                       "MLFLOW_TRACKING_URI": "databricks"})
    startup = root / "ipython" / "profile_default" / "startup" / "00-databricks-init.py"
    shell.safe_execfile(str(startup), shell.user_ns, raise_exceptions=True)
