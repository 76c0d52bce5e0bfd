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

import hashlib
import json
import os
import socket
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from mlmagic.config import mlmagic_home
from mlmagic.core.display import notify
from mlmagic.core.secrets import redact_uri

JOURNAL_TAG = "mlmagic.journal"


def journal_dir() -> Path:
    """Where journals are kept (``MLMAGIC_JOURNAL_DIR`` or ``~/.mlmagic/journal``)."""
    return Path(os.environ.get("MLMAGIC_JOURNAL_DIR") or mlmagic_home() / "journal")


def store_key(tracking_uri: str) -> str:
    """A stable name for a tracking store, made from its URI without credentials, so that it
    reveals nothing of them."""
    return hashlib.sha256(redact_uri(tracking_uri).encode()).hexdigest()[:16]


class Journal:
    """One run's journal, appended to as the run goes on (thread-safe). An append that
    fails (a full disk) raises; the next one starts on a new line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._torn = False

    @classmethod
    def open(cls, tracking_uri: str, run: dict) -> Journal:
        """Start a journal for a run: ``run`` has run_id (or None), experiment_id, run_name,
        start_time and tags."""
        from mlmagic.core.leases import session_id

        folder = journal_dir() / store_key(tracking_uri)
        folder.mkdir(parents=True, exist_ok=True)
        name = run.get("run_id") or f"offline-{uuid.uuid4().hex[:12]}"
        journal = cls(folder / f"{name}.jsonl")
        try:
            journal._append({"kind": "run", "store": redact_uri(tracking_uri), "journal": name,
                             "session": session_id(), "host": socket.gethostname(), **run})
        except OSError:
            journal.path.unlink(missing_ok=True)  # a journal without its first line is no use
            raise
        return journal

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
    waiting: int = 0

    def __repr__(self) -> str:
        waiting = (f"; {self.waiting} run(s) still being tracked by another session wait"
                   if self.waiting else "")
        if not self.runs:
            return "nothing to sync: every tracked run is in the store" + waiting
        return f"synced {self.runs} run(s) from the offline journal ({self.points} points)" + (
            waiting)


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
    run_ids, points, waiting = {}, 0, 0
    for path in pending(tracking_uri):
        outcome = replay(path, client)
        if outcome is None:
            waiting += 1
        elif outcome != ("", 0):
            run_ids[path], points = outcome[0], points + outcome[1]
    return SyncReport(len(run_ids), points, waiting), run_ids


def replay(path: Path, client) -> tuple[str, int] | None:
    """Send one journal to the store through ``client``, under its lock: its run id and the
    points sent; None if a live session still writes it; ("", 0) if another session sent it
    meanwhile."""
    from filelock import FileLock, Timeout

    lock = FileLock(path.with_suffix(".lock"), timeout=0, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        return None  # another session is replaying it right now
    try:
        if not path.exists():
            return "", 0
        entries = _entries(path)
        if not entries or entries[-1]["kind"] != "end":
            from mlmagic.core.leases import holder_alive

            if entries and holder_alive(entries[0]):
                return None
            entries.append(_killed(entries))
        outcome = _send(path, entries, client)
        path.unlink()
        path.with_suffix(".progress").unlink(missing_ok=True)
        return outcome
    finally:
        path.with_suffix(".lock").unlink(missing_ok=True)
        lock.release()


def _entries(path: Path) -> list[dict]:
    """The journal's lines; torn ones (a write cut short) skipped with one line of notice."""
    entries, torn = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except ValueError:
            torn += 1
    if torn:
        notify(f"skipped {torn} torn line(s) of {path.name} (a write cut short, e.g. by a full "
               "disk); the rest of the run is sent.")
    if entries and entries[0].get("kind") != "run":
        notify(f"{path.name} lost its first line; it cannot be sent and is kept as "
               f"{path.with_suffix('.unreadable')}.")
        path.rename(path.with_suffix(".unreadable"))
        return []
    return entries


def _killed(entries: list[dict]) -> dict:
    """The end of a run whose session died while writing it: KILLED at its last point."""
    times = [m[2] for e in entries if e["kind"] == "batch" for m in e["metrics"]]
    last = max(times, default=entries[0].get("start_time") if entries else 0)
    notify("a run's session died while tracking it offline; it is sent and ended as KILLED.")
    return {"kind": "end", "status": "KILLED", "end_time": last}


def _send(path: Path, entries: list[dict], client) -> tuple[str, int]:
    from mlflow.entities import Metric, Param, RunTag

    progress_path = path.with_suffix(".progress")
    progress = json.loads(progress_path.read_text()) if progress_path.exists() else {}
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
        _write_atomically(progress_path, {"run_id": run_id, "lines": number})
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


def _write_atomically(path: Path, data: dict) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, path)
