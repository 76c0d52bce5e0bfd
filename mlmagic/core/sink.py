"""Where a tracked run's data goes: its store, or the offline journal once the store does not
take it (unreachable, read-only, full, or answering with an error), or memory while neither
can. Writes to a remote store use short retries, so a dead server costs seconds, not MLflow's
default minutes of back-off. Nothing here raises into the cell: what cannot be written is
kept and tried again, and what is still unsaved when the run closes is said in one line."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from mlmagic.core.display import notify
from mlmagic.core.failures import failure_reason, network_failure
from mlmagic.core.journal import Journal, journal_dir
from mlmagic.core.leases import Lease
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
    """Takes a run's batches, artifacts and outcome; journals them once the store does not
    take them, and keeps them in memory while the journal cannot be written either."""

    def __init__(self, connection: Connection, run_id: str | None, run: dict) -> None:
        self.connection = connection
        self.run_id = run_id
        self.journal: Journal | None = None
        self.lease: Lease | None = None  # while the run is open in the store
        self.offline_reason: str | None = None
        self._run = run  # experiment_id, run_name, start_time, tags: to create it later
        self._unsaved: list[tuple] = []  # entries neither the store nor the journal took
        self._journal_failure: str | None = None
        self._journaled = 0  # entries the journal holds besides its first line
        self._lock = threading.RLock()

    @property
    def offline(self) -> bool:
        """Whether this run's data now goes to the journal."""
        return self.offline_reason is not None

    def go_offline(self, error: BaseException) -> None:
        """Send everything from now on to the journal, because of ``error``; say so once."""
        with self._lock:
            if self.offline_reason is not None:
                return
            self.offline_reason = reason = failure_reason(error)
            shown = redact_uri(self.connection.tracking_uri)
            problem = (f"cannot be reached ({reason})" if network_failure(error)
                       else f"did not take a write ({reason})")
            where = "the offline journal"
            if self._open_journal():
                where = str(self.journal.path)
            notify(f"the tracking store at {shown} {problem}; this run is kept in {where} "
                   "until %aml_sync sends it.")

    def write_batch(self, metrics: list, params: list, tags: list) -> None:
        """Write a batch to the store, else to the journal, else keep it for later."""
        if not self.offline:
            try:
                self._log_batch(metrics, params, tags)
                self._note_progress(metrics)
                return
            except Exception as error:
                self.go_offline(error)
        self._keep(("batch", metrics, params, tags))
        self._note_progress(metrics)

    def keep_artifact(self, name: str, text: str, error: BaseException | None = None) -> None:
        """Journal a text artifact (that could not be uploaded because of ``error``)."""
        if error is not None:
            self.go_offline(error)
        self._keep(("artifact", name, text))

    def end(self, status: str, end_time: int) -> None:
        """Journal the outcome, if the run is being journaled."""
        if self.offline:
            self._keep(("end", status, end_time))

    def unsaved_points(self) -> int:
        """How many metric points neither the store nor the journal has taken (yet)."""
        with self._lock:
            if self._unsaved:
                self._keep(None)  # one more try
            return sum(len(entry[1]) for entry in self._unsaved if entry[0] == "batch")

    def unsaved_reason(self) -> str:
        """Why the unsaved points are not saved."""
        return (f"the store did not take them ({self.offline_reason}) and the journal "
                f"could not be written ({self._journal_failure})")

    def _keep(self, entry: tuple | None) -> None:
        """Append ``entry`` (after what is still unsaved) to the journal; while the journal
        cannot be written and holds nothing yet, try the store again instead."""
        with self._lock:
            if entry is not None:
                self._unsaved.append(entry)
            if self.journal is not None or self._open_journal():
                self._write_unsaved(self._to_journal)
            if self._unsaved and not self._journaled and self.run_id is not None:
                self._write_unsaved(self._to_store)
                if not self._unsaved:
                    self._back_online()

    def _write_unsaved(self, write: Callable[[str, list], None]) -> None:
        while self._unsaved:
            kind, *values = self._unsaved[0]
            try:
                write(kind, values)
            except Exception as error:
                if write == self._to_journal:
                    self._journal_failed(error)
                return
            self._unsaved.pop(0)

    def _to_journal(self, kind: str, values: list) -> None:
        getattr(self.journal, {"batch": "add_batch", "artifact": "add_artifact",
                               "end": "end"}[kind])(*values)
        self._journaled += 1

    def _to_store(self, kind: str, values: list) -> None:
        from mlflow import MlflowClient

        client = MlflowClient(self.connection.tracking_uri)
        if kind == "batch":
            self._log_batch(*values, retries=0, timeout=5)
        elif kind == "artifact":
            client.log_text(self.run_id, values[1], values[0])
        else:
            client.set_terminated(self.run_id, *values)

    def _back_online(self) -> None:
        """The store took what the journal could not: the run goes on there."""
        if self.journal is not None:
            self.journal.path.unlink(missing_ok=True)  # it holds the run line only
            self.journal = None
        self.offline_reason = None
        notify(f"the tracking store at {redact_uri(self.connection.tracking_uri)} takes "
               "writes again; the run goes on there.")

    def _open_journal(self) -> bool:
        if self.journal is not None:
            return True
        try:
            self.journal = Journal.open(self.connection.tracking_uri,
                                        {**self._run, "run_id": self.run_id})
            return True
        except Exception as error:
            self._journal_failed(error)
            return False

    def _journal_failed(self, error: Exception) -> None:
        first = self._journal_failure is None
        self._journal_failure = failure_reason(error)
        if first:
            notify(f"cannot write the offline journal in {journal_dir()} "
                   f"({self._journal_failure}); the run's data is kept in memory and "
                   "written as soon as the store or the journal takes it.")

    def _note_progress(self, metrics: list) -> None:
        if self.lease is not None and metrics:
            self.lease.update(last_point=max(m.timestamp for m in metrics))

    def _log_batch(self, metrics: list, params: list, tags: list, *, retries: int = 1,
                   timeout: float = 10) -> None:
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
            max_retries=retries, backoff_factor=1, timeout=timeout,
        )
        verify_rest_response(response, LOG_BATCH)

