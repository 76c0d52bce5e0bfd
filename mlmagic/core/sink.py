"""Where a tracked run's data goes: its store, or the offline journal once the store does not
take it (unreachable, read-only, full, or answering with an error), or memory while neither
can. Writes to a remote store use short retries, so a dead server costs seconds, not MLflow's
default minutes of back-off. Nothing here raises into the cell: what cannot be written is
kept and tried again, and what is still unsaved when the run closes is said in one line."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable

from mlmagic.base.display import notify, silenced
from mlmagic.base.env import temporary_env
from mlmagic.base.failures import (
    credentials_refused,
    failure_reason,
    network_failure,
    refusal,
    transient,
)
from mlmagic.base.secrets import redact_uri
from mlmagic.core.journal import Journal, journal_dir
from mlmagic.core.session import Connection

LOG_BATCH = "/api/2.0/mlflow/runs/log-batch"
# MLflow logs a traceback for each failed SQL write; a failed write of a run is one line here.
STORE_LOGGERS = ("mlflow.store.db.utils",)
SHORT_RETRIES = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
QUICK_TRY = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
# Seconds between the tries of a batch the store failed to take for a moment (a dropped
# keep-alive connection, a 503 from a gateway, a locked SQLite file): 3.5 s in all before the
# run goes offline.
RETRY_PAUSES = (0.5, 1.0, 2.0)


def prepare_writer_threads() -> None:
    """Do in this (the kernel's) thread the imports the run's writer threads would do: with
    ``mlflow.autolog()`` on, MLflow's import hooks hold a lock of their own while importing,
    and its finder takes that lock during every import, so a thread that imports while the
    kernel's thread does can deadlock the kernel. MLflow probes for the Databricks runtime on
    every request by importing ``dbruntime`` (seen with MLflow 3.10 to 3.17); where it does not
    exist, it is marked absent (:func:`mlmagic.databricks.sdk.mark_runtime_absent`)."""
    import mlflow.protos.service_pb2  # noqa: F401 - what _log_batch needs, imported here
    import mlflow.utils.proto_json_utils  # noqa: F401
    import mlflow.utils.rest_utils  # noqa: F401

    from mlmagic.databricks.sdk import mark_runtime_absent

    mark_runtime_absent()


def _problem(error: BaseException, reason: str, uri: str) -> str:
    """What the store did, for the line that says a run went offline."""
    if network_failure(error):
        return f"cannot be reached ({reason})"
    if credentials_refused(error):
        return refusal(error, uri)  # an expired token, most often, while the run went on
    return f"did not take a write ({reason})"


class RunSink:
    """Takes a run's batches, artifacts and outcome.

    Each batch is appended to the run's journal at once, and a sender thread writes it to the
    store; what the store has confirmed is marked in the journal, which is cut back to its
    first line whenever the store has everything. So when the kernel dies, at most the last
    flush interval is lost: the next session sends the rest and ends the run (see
    :mod:`mlmagic.core.journal`). When the store does not take a write, the run goes offline:
    the journal, written durably from then on, is its only copy until %aml_sync sends it.
    While the journal cannot be written either, entries wait in memory and are tried again.
    """

    def __init__(self, connection: Connection, run_id: str | None, run: dict) -> None:
        self.connection = connection
        self.run_id = run_id
        self.journal: Journal | None = None
        self.offline_reason: str | None = None
        self._run = run  # experiment_id, run_name, start_time, tags: to create it later
        self._unsaved: list[tuple] = []  # entries neither the store nor the journal took
        self._outbox: deque[tuple] = deque()  # batches on their way to the store
        self._journal_failure: str | None = None
        self._lock = threading.RLock()
        self._work = threading.Condition(self._lock)
        self._closing = False
        self._sender: threading.Thread | None = None

    def start(self) -> None:
        """Open the run's journal and start sending to the store."""
        prepare_writer_threads()
        with self._lock:
            self._open_journal()
        self._sender = threading.Thread(target=self._send_forever, daemon=True)
        self._sender.start()

    @property
    def offline(self) -> bool:
        """Whether the journal, not the store, now takes this run's data."""
        return self.offline_reason is not None

    def go_offline(self, error: BaseException) -> None:
        """Send everything from now on to the journal, because of ``error``; say so once."""
        with self._lock:
            if self.offline_reason is not None:
                return
            self.offline_reason = reason = failure_reason(error)
            shown = redact_uri(self.connection.tracking_uri)
            problem = _problem(error, reason, self.connection.tracking_uri)
            unsent = [("batch", *batch) for batch, in_journal in self._outbox if not in_journal]
            self._outbox.clear()  # the journal holds them, or memory does
            if self._open_journal(quiet=True):
                self.journal.durable = True
                notify(f"the tracking store at {shown} {problem}; this run is kept in "
                       f"{self.journal.path} until %aml_sync sends it.")
            else:
                notify(f"the tracking store at {shown} {problem}, and the offline journal "
                       f"cannot be written ({self._journal_failure}); the run's data is kept "
                       "in memory until one of them takes it (%aml_sync tries again).")
            self._unsaved[:0] = unsent
            self._keep(None)

    def write_batch(self, metrics: list, params: list, tags: list) -> None:
        """Take a batch: into the journal at once, and on its way to the store (or, offline,
        into the journal or memory)."""
        with self._lock:
            if self.offline or self._sender is None:
                self._keep(("batch", metrics, params, tags))
                return
            in_journal = self._write_ahead(metrics, params, tags)
            self._outbox.append(((metrics, params, tags), in_journal))
            self._work.notify()

    def drain(self) -> None:
        """Wait until the store has every batch taken so far (or the run went offline), and
        stop the sender."""
        with self._lock:
            self._closing = True
            self._work.notify()
        if self._sender is not None:
            self._sender.join()

    def _send_forever(self) -> None:
        """The sender thread: write the outbox to the store, oldest first."""
        while True:
            with self._lock:
                while not self._outbox and not self._closing:
                    self._work.wait()
                if not self._outbox or self.offline:
                    return
                (batch, in_journal) = self._outbox[0]
            try:
                self._send_batch(batch)
            except Exception as error:
                self.go_offline(error)
                return
            with self._lock:
                if self.offline:  # another thread's failure: the journal has the rest
                    return
                self._outbox.popleft()
                if in_journal:
                    self.journal.mark_sent(max((m.timestamp for m in batch[0]), default=None),
                                           all_sent=not self._outbox)

    def _send_batch(self, batch: tuple[list, list, list]) -> None:
        """Write one batch to the store, trying again after a pause while it fails in a way
        that passes (:func:`mlmagic.base.failures.transient`)."""
        for pause in RETRY_PAUSES:
            try:
                self._log_batch(*batch, retries=0)
                return
            except Exception as error:
                if not transient(error):
                    raise
            time.sleep(pause)
        self._log_batch(*batch, retries=0)

    def keep_artifact(self, name: str, text: str, error: BaseException | None = None) -> None:
        """Journal a text artifact (that could not be uploaded because of ``error``)."""
        if error is not None:
            self.go_offline(error)
        self._keep(("artifact", name, text))

    def end(self, status: str, end_time: int) -> None:
        """Take the run's outcome: the journal keeps it when the run is offline; otherwise
        the store has everything, and the journal goes."""
        with self._lock:
            if self.offline:
                self._keep(("end", status, end_time))
            elif self.journal is not None:
                self.journal.discard()

    def retry(self) -> None:
        """Try once more to write what neither the store nor the journal has taken yet."""
        with self._lock:
            if self._unsaved:
                self._keep(None)

    def unsaved_points(self) -> int:
        """How many metric points neither the store nor the journal has taken yet."""
        with self._lock:
            return sum(len(entry[1]) for entry in self._unsaved if entry[0] == "batch")

    @property
    def saved(self) -> bool:
        """Whether everything of the run is in the store or the journal."""
        return not self._unsaved

    def unsaved_reason(self) -> str:
        """Why the unsaved points are not saved."""
        return (f"the store did not take them ({self.offline_reason}) and the journal "
                f"could not be written ({self._journal_failure})")

    def _write_ahead(self, metrics: list, params: list, tags: list) -> bool:
        """Append the batch to the journal before the store gets it; False if it can't."""
        if self.journal is None:
            return False
        try:
            self.journal.add_batch(metrics, params, tags)
            return True
        except OSError:
            return False

    def _keep(self, entry: tuple | None) -> None:
        """Append ``entry`` (after what is still unsaved) to the journal; while the journal
        cannot be written and holds nothing of the run, try the store again instead."""
        with self._lock:
            if entry is not None:
                self._unsaved.append(entry)
            if self.journal is not None or self._open_journal():
                self.journal.durable = True
                self._write_unsaved(self._to_journal)
            if self._unsaved and self.run_id is not None:
                self._everything_to_store()

    def _everything_to_store(self) -> None:
        """While the journal cannot be written: send what it holds, then what memory holds,
        to the store; if the store takes it all, the run is back online."""

        try:
            if self.journal is not None and self.journal.has_entries:
                with silenced(STORE_LOGGERS), temporary_env(QUICK_TRY):
                    self.journal.send_unsent(self.connection.client())
        except Exception:
            return
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

    def _to_store(self, kind: str, values: list) -> None:

        client = self.connection.client()
        with silenced(STORE_LOGGERS), temporary_env(QUICK_TRY):
            if kind == "batch":
                self._log_batch(*values, retries=0, timeout=5)
            elif kind == "artifact":
                client.log_text(self.run_id, values[1], values[0])
            else:
                client.set_terminated(self.run_id, *values)

    def _back_online(self) -> None:
        """The store took what the journal could not: the run goes on there."""
        if self.journal is not None:
            self.journal.durable = False
        self.offline_reason = None
        notify(f"the tracking store at {redact_uri(self.connection.tracking_uri)} takes "
               "writes again: what was kept in memory is there now.")

    def _open_journal(self, quiet: bool = False) -> bool:
        if self.journal is not None:
            return True
        try:
            self.journal = Journal.open(self.connection.tracking_uri,
                                        {**self._run, "run_id": self.run_id})
            return True
        except Exception as error:
            self._journal_failed(error, quiet)
            return False

    def _journal_failed(self, error: Exception, quiet: bool = False) -> None:
        first = self._journal_failure is None
        self._journal_failure = failure_reason(error)
        if first and not quiet:
            notify(f"cannot write the offline journal in {journal_dir()} "
                   f"({self._journal_failure}); what the store has not taken yet is kept "
                   "in memory, and is lost if this kernel dies.")

    def _log_batch(self, metrics: list, params: list, tags: list, *, retries: int = 1,
                   timeout: float = 10) -> None:
        host_creds = self.connection.backend.host_creds
        if host_creds is None:

            with silenced(STORE_LOGGERS):
                self.connection.client().log_batch(
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

