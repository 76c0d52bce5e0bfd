"""Where a tracked run's data goes: its store, or the offline journal once the store cannot
be reached. Writes to a remote store use short retries, so a dead server costs seconds, not
MLflow's default minutes of back-off."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from mlmagic.backends.server import network_failure
from mlmagic.core.display import notify
from mlmagic.core.journal import Journal
from mlmagic.core.secrets import redact_uri
from mlmagic.core.state import Connection

LOG_BATCH = "/api/2.0/mlflow/runs/log-batch"
SHORT_RETRIES = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}


@contextmanager
def temporary_env(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block, then put back what was there."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class RunSink:
    """Takes a run's batches, artifacts and outcome; journals them once the store is gone."""

    def __init__(self, connection: Connection, run_id: str | None, run: dict) -> None:
        self.connection = connection
        self.run_id = run_id
        self.journal: Journal | None = None
        self._run = run  # experiment_id, run_name, start_time, tags: to create it later
        self._lock = threading.Lock()

    @property
    def offline(self) -> bool:
        """Whether this run's data now goes to the journal."""
        return self.journal is not None

    def go_offline(self, reason: str) -> None:
        """Send everything from now on to the journal, and say so once."""
        with self._lock:
            if self.journal is not None:
                return
            uri = self.connection.tracking_uri
            self.journal = Journal.open(uri, {**self._run, "run_id": self.run_id})
            notify(
                f"the tracking store at {redact_uri(uri)} cannot be reached ({reason}); this "
                f"run is kept in {self.journal.path} until %aml_sync sends it."
            )

    def write_batch(self, metrics: list, params: list, tags: list) -> None:
        """Write a batch to the store, or to the journal if the store cannot be reached."""
        if self.journal is None:
            try:
                self._log_batch(metrics, params, tags)
                return
            except Exception as error:
                self.go_offline(network_failure(error) or type(error).__name__)
        self.journal.add_batch(metrics, params, tags)

    def keep_artifact(self, name: str, text: str, reason: str) -> None:
        """Journal a text artifact that could not be uploaded."""
        self.go_offline(reason)
        self.journal.add_artifact(name, text)

    def end(self, status: str, end_time: int) -> None:
        """Journal the outcome, if the run is being journaled."""
        if self.journal is not None:
            self.journal.end(status, end_time)

    def _log_batch(self, metrics: list, params: list, tags: list) -> None:
        host_creds = self.connection.backend.host_creds
        if host_creds is None:
            from mlflow import MlflowClient

            MlflowClient(self.connection.tracking_uri).log_batch(
                self.run_id, metrics=metrics, params=params, tags=tags
            )
            return
        from mlflow.protos.service_pb2 import LogBatch
        from mlflow.utils.proto_json_utils import message_to_json
        from mlflow.utils.rest_utils import http_request, verify_rest_response

        request = LogBatch(
            run_id=self.run_id,
            metrics=[m.to_proto() for m in metrics],
            params=[p.to_proto() for p in params],
            tags=[t.to_proto() for t in tags],
        )
        response = http_request(
            host_creds(), LOG_BATCH, "POST", json=json.loads(message_to_json(request)),
            max_retries=1, backoff_factor=1, timeout=10,
        )
        verify_rest_response(response, LOG_BATCH)
