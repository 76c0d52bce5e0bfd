"""The offline journal: what a tracked run logs while its tracking store cannot take it,
kept on disk (``~/.mlmagic/journal``) and replayed into the store by ``sync()`` exactly once.

A journal is one JSON-lines file a run: a ``run`` line (how to create the run, or the id it
already has, and the session writing it), then ``batch``, ``artifact`` and ``end`` lines in
the order they happened. A ``.progress`` file beside it records how many lines are in the
store and under which run id, so a sync that stops half-way goes on where it stopped.

Exactly once, with several sessions: a journal is replayed under a lock of its own, by one
session at a time; a journal without its ``end`` line is replayed only once the session that
writes it is gone (its run then ends KILLED at its last point); a run created from a journal
carries the tag ``mlmagic.journal``, so a replay cut short between creating the run and
noting its id finds that run again instead of making a second one. A torn line (a full disk)
is skipped with one line of notice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from mlmagic.base.config import mlmagic_home
from mlmagic.base.display import notify, progress
from mlmagic.base.secrets import redact_uri
from mlmagic.core.leases import holder_alive, session_id, write_json

JOURNAL_TAG = "mlmagic.journal"


def journal_dir() -> Path:
    """Where journals are kept (``MLMAGIC_JOURNAL_DIR`` or ``~/.mlmagic/journal``)."""
    return Path(os.environ.get("MLMAGIC_JOURNAL_DIR") or mlmagic_home() / "journal")


def store_key(tracking_uri: str) -> str:
    """A stable name for a tracking store, made from its URI without credentials, so that it
    reveals nothing of them."""
    return hashlib.sha256(redact_uri(tracking_uri).encode()).hexdigest()[:16]


class Journal:
    """One run's journal, appended to as the run goes on (thread-safe). While its run is
    online it holds what the store has not confirmed yet (``mark_sent`` cuts it back to its
    first line); ``durable`` journals (offline runs) are flushed to disk on each line. An
    append that fails (a full disk) raises; the next one starts on a new line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.durable = False
        self._lock = threading.Lock()
        self._torn = False
        self._header = 0  # bytes of the first line
        self._last_point: int | None = None  # the newest point the store has confirmed
        self._sent = 0  # batches after the first line that the store has confirmed
        self._run_id: str | None = None

    @classmethod
    def open(cls, tracking_uri: str, run: dict) -> Journal:
        """Start a journal for a run: ``run`` has run_id (or None), experiment_id, run_name,
        start_time and tags."""
        folder = journal_dir() / store_key(tracking_uri)
        folder.mkdir(parents=True, exist_ok=True)
        name = run.get("run_id") or f"offline-{uuid.uuid4().hex[:12]}"
        journal = cls(folder / f"{name}.jsonl")
        try:
            journal._append({"kind": "run", "store": redact_uri(tracking_uri), "journal": name,
                             "session": session_id(), "host": socket.gethostname(),
                             "pid": os.getpid(), **run})
        except OSError:
            journal.path.unlink(missing_ok=True)  # a journal without its first line is no use
            raise
        journal._header = journal.path.stat().st_size
        journal._run_id = run.get("run_id")
        return journal

    @property
    def has_entries(self) -> bool:
        """Whether it holds anything besides its first line."""
        with self._lock:
            return self.path.exists() and self.path.stat().st_size > self._header

    def mark_sent(self, last_point: int | None, *, all_sent: bool) -> None:
        """The store has the oldest batch not yet marked (and, with ``all_sent``, every
        batch: the journal is cut back to its first line). The progress file notes it, and
        the time of the newest point sent (a run whose kernel dies is ended there). A
        failure to note it is ignored: the batch is sent again, and the store keeps one copy
        of each point."""
        with self._lock, contextlib.suppress(OSError):
            self._last_point = max(filter(None, (last_point, self._last_point)), default=None)
            if all_sent:
                os.truncate(self.path, self._header)
                self._sent = 0
            else:
                self._sent += 1
            write_json(self.path.with_suffix(".progress"),
                       {"run_id": self._run_id, "lines": 1 + self._sent,
                        "last_point": self._last_point})

    def send_unsent(self, client) -> None:
        """Send to the store (through ``client``) what the store has not confirmed, then cut
        the journal back to its first line."""
        with self._lock:
            _send(self.path, _entries(self.path, quiet=True), client)
            os.truncate(self.path, self._header)
            self._sent = 0
            with contextlib.suppress(OSError):
                write_json(self.path.with_suffix(".progress"),
                           {"run_id": self._run_id, "lines": 1,
                            "last_point": self._last_point})

    def discard(self) -> None:
        """Remove the journal: its run is complete in the store."""
        with self._lock:
            self.path.unlink(missing_ok=True)
            self.path.with_suffix(".progress").unlink(missing_ok=True)

    def add_batch(self, metrics: list, params: list, tags: list) -> None:
        """Keep a batch of MLflow Metric, Param and RunTag entities."""
        self._append({
            "kind": "batch",
            "metrics": [[m.key, m.value, m.timestamp, m.step] for m in metrics],
            "params": [[p.key, p.value] for p in params],
            "tags": [[t.key, t.value] for t in tags],
        })

    def add_artifact(self, name: str, text: str) -> None:
        """Keep a text artifact."""
        self._append({"kind": "artifact", "name": name, "text": text})

    def end(self, status: str, end_time: int) -> None:
        """Keep the run's outcome."""
        self._append({"kind": "end", "status": status, "end_time": end_time})

    def _append(self, entry: dict) -> None:
        line = json.dumps(entry) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as file:
            try:
                file.write("\n" + line if self._torn else line)
                file.flush()
                if self.durable:  # a process that dies loses nothing written; a machine might
                    os.fsync(file.fileno())
            except OSError:
                self._torn = True
                raise
            self._torn = False


@dataclass(frozen=True)
class SyncReport:
    """What a sync sent, and what it left for later (journals still being written)."""

    runs: int
    points: int
    waiting: int = 0  # journals of runs a live session still tracks
    kept: int = 0  # runs whose data is still only in this kernel's memory
    killed: tuple[str, ...] = ()  # runs of sessions that died, now ended KILLED

    def __repr__(self) -> str:
        parts = []
        if self.killed:
            parts.append(f"ended {len(self.killed)} run(s) left RUNNING by a session that died "
                         f"({', '.join(self.killed[:3])}{', ...' * (len(self.killed) > 3)}): "
                         "now KILLED, with what they logged")
        if self.runs > len(self.killed):
            parts.append(f"synced {self.runs - len(self.killed)} run(s) ({self.points} points)")
        if self.waiting:
            parts.append(f"{self.waiting} run(s) still being tracked wait for their end")
        if self.kept:
            parts.append(f"{self.kept} run(s) are still kept in memory: the store and the "
                         "journal do not take them yet")
        return "; ".join(parts) or "nothing to sync: every tracked run is in the store"


def pending(tracking_uri: str) -> list[Path]:
    """The journals kept for this store, oldest first."""
    folder = journal_dir() / store_key(tracking_uri)
    paths = []
    for path in folder.glob("*.jsonl"):
        try:
            paths.append((path.stat().st_mtime, path))
        except FileNotFoundError:  # replayed by another session meanwhile
            continue
    return [path for _, path in sorted(paths)]


def sync_journals(tracking_uri: str) -> tuple[SyncReport, dict[Path, str]]:
    """Send every journal kept for this store that no live session still writes; the report,
    and the run id each sent journal got."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    run_ids, points, waiting, killed = {}, 0, 0, []
    paths, started = pending(tracking_uri), time.monotonic()
    for number, path in enumerate(paths, 1):
        if len(paths) > 1:
            progress(f"sending run {number} of {len(paths)} to {redact_uri(tracking_uri)}")
        outcome = replay(path, client)
        if outcome is None:
            waiting += 1
        elif outcome.run_id:
            run_ids[path], points = outcome.run_id, points + outcome.points
            killed += [outcome.name] if outcome.killed else []
    if len(paths) > 1:
        progress(f"sent {len(run_ids)} runs after {time.monotonic() - started:.0f} s", done=True)
    return SyncReport(len(run_ids), points, waiting, killed=tuple(killed)), run_ids


@dataclass(frozen=True)
class Replayed:
    """What replaying one journal did."""

    run_id: str  # "" if another session had sent it meanwhile
    points: int = 0
    name: str = ""
    killed: bool = False  # its session had died: the run was ended KILLED


def replay(path: Path, client) -> Replayed | None:
    """Send one journal to the store through ``client``, under its lock; None if a live
    session still writes it."""
    from filelock import FileLock, Timeout

    lock = FileLock(path.with_suffix(".lock"), timeout=0, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        return None  # another session is replaying it right now
    try:
        if not path.exists():
            return Replayed("")
        entries = _entries(path)
        if not entries:
            return Replayed("")
        killed = entries[-1]["kind"] != "end"
        if killed:
            if "session" in entries[0] and holder_alive(entries[0]):
                return None
            entries.append(_killed(entries, _progress(path).get("last_point")))
        run_id, points = _send(path, entries, client)
        path.unlink()
        path.with_suffix(".progress").unlink(missing_ok=True)
        return Replayed(run_id, points, entries[0].get("run_name") or run_id, killed)
    finally:
        path.with_suffix(".lock").unlink(missing_ok=True)
        lock.release()


def _entries(path: Path, quiet: bool = False) -> list[dict]:
    """The journal's lines; torn ones (a write cut short) skipped with one line of notice
    (unless ``quiet``)."""
    entries, torn = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except ValueError:
            torn += 1
    if torn and not quiet:
        notify(f"skipped {torn} torn line(s) of {path.name} (a write cut short, e.g. by a full "
               "disk); the rest of the run is sent.")
    if entries and entries[0].get("kind") != "run":
        notify(f"{path.name} lost its first line; it cannot be sent and is kept as "
               f"{path.with_suffix('.unreadable')}.")
        path.rename(path.with_suffix(".unreadable"))
        return []
    return entries


def _killed(entries: list[dict], sent_last_point: int | None) -> dict:
    """The end of a run whose session died while tracking it: KILLED at its last point."""
    times = [m[2] for e in entries if e["kind"] == "batch" for m in e["metrics"]]
    times += [sent_last_point] if sent_last_point else []
    last = max(times, default=entries[0].get("start_time") or 0)
    return {"kind": "end", "status": "KILLED", "end_time": last}


def _progress(path: Path) -> dict:
    try:
        return json.loads(path.with_suffix(".progress").read_text())
    except (OSError, ValueError):
        return {}


def _send(path: Path, entries: list[dict], client) -> tuple[str, int]:
    from mlflow.entities import Metric, Param, RunTag

    progress_path = path.with_suffix(".progress")
    progress = _progress(path)
    run_id, done, points = progress.get("run_id"), progress.get("lines", 0), 0
    for number, entry in enumerate(entries[done:], start=done + 1):
        kind = entry["kind"]
        if kind == "run":
            run_id = entry["run_id"] or _created_run(entry, client)
        elif kind == "batch":
            client.log_batch(
                run_id,
                metrics=[Metric(k, v, ts, step) for k, v, ts, step in entry["metrics"]],
                params=[Param(k, v) for k, v in entry["params"]],
                tags=[RunTag(k, v) for k, v in entry["tags"]],
            )
            points += len(entry["metrics"])
        elif kind == "artifact":
            client.log_text(run_id, entry["text"], entry["name"])
        elif kind == "end":
            client.set_terminated(run_id, entry["status"], entry["end_time"])
        with contextlib.suppress(OSError):  # unnoted, an entry is sent twice: the store keeps one
            write_json(progress_path, {**progress, "run_id": run_id, "lines": number})
    return run_id, points


def _created_run(entry: dict, client) -> str:
    """The run a journal becomes: the one an earlier, interrupted replay created, or a new
    one."""
    journal = entry.get("journal")
    if journal:
        found = client.search_runs([entry["experiment_id"]],
                                   f"tags.`{JOURNAL_TAG}` = '{journal}'", max_results=1)
        if found:
            return found[0].info.run_id
    tags = {**entry["tags"], **({JOURNAL_TAG: journal} if journal else {})}
    return client.create_run(entry["experiment_id"], start_time=entry["start_time"],
                             tags=tags, run_name=entry["run_name"]).info.run_id
