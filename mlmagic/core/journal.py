"""The offline journal: what a tracked run logs while its tracking store cannot be reached,
kept on disk (``~/.mlmagic/journal``) and replayed into the store by ``sync()`` exactly once.

A journal is one JSON-lines file a run: a ``run`` line (how to create the run, or the id it
already has), then ``batch``, ``artifact`` and ``end`` lines in the order they happened. A
``.progress`` file beside it records how many lines are in the store and under which run id,
so a sync that stops half-way goes on where it stopped, and a second sync sends nothing twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from mlmagic.core.secrets import redact_uri


def journal_dir() -> Path:
    """Where journals are kept (``MLMAGIC_JOURNAL_DIR`` or ``~/.mlmagic/journal``)."""
    return Path(os.environ.get("MLMAGIC_JOURNAL_DIR") or Path.home() / ".mlmagic" / "journal")


def store_key(tracking_uri: str) -> str:
    """A stable name for a tracking store that does not hold its credentials."""
    return hashlib.sha256(tracking_uri.encode()).hexdigest()[:16]


class Journal:
    """One run's journal, appended to as the run goes on (thread-safe)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    @classmethod
    def open(cls, tracking_uri: str, run: dict) -> Journal:
        """Start a journal for a run: ``run`` has run_id (or None), experiment_id, run_name,
        start_time and tags."""
        folder = journal_dir() / store_key(tracking_uri)
        folder.mkdir(parents=True, exist_ok=True)
        name = run.get("run_id") or f"offline-{uuid.uuid4().hex[:12]}"
        journal = cls(folder / f"{name}.jsonl")
        journal._append({"kind": "run", "store": redact_uri(tracking_uri), **run})
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
            file.write(line)
            file.flush()
            os.fsync(file.fileno())


@dataclass(frozen=True)
class SyncReport:
    """What a sync sent."""

    runs: int
    points: int

    def __repr__(self) -> str:
        if not self.runs:
            return "nothing to sync: every tracked run is in the store"
        return f"synced {self.runs} run(s) from the offline journal ({self.points} points)"


def pending(tracking_uri: str) -> list[Path]:
    """The journals still to be sent to this store, oldest first."""
    folder = journal_dir() / store_key(tracking_uri)
    return sorted(folder.glob("*.jsonl"), key=lambda path: path.stat().st_mtime)


def sync_journals(tracking_uri: str) -> tuple[SyncReport, dict[Path, str]]:
    """Send every journal kept for this store; the report, and the run id each journal got."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    run_ids, points = {}, 0
    for path in pending(tracking_uri):
        run_id, sent = replay(path, client)
        run_ids[path], points = run_id, points + sent
    return SyncReport(len(run_ids), points), run_ids


def replay(path: Path, client) -> tuple[str, int]:
    """Send one journal to the store through ``client``; its run id and the points sent."""
    from mlflow.entities import Metric, Param, RunTag

    progress_path = path.with_suffix(".progress")
    progress = json.loads(progress_path.read_text()) if progress_path.exists() else {}
    run_id, done, points = progress.get("run_id"), progress.get("lines", 0), 0
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines[done:], start=done + 1):
        entry = json.loads(line)
        kind = entry["kind"]
        if kind == "run":
            run_id = entry["run_id"] or client.create_run(
                entry["experiment_id"], start_time=entry["start_time"],
                tags=entry["tags"], run_name=entry["run_name"],
            ).info.run_id
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
    path.unlink()
    progress_path.unlink(missing_ok=True)
    return run_id, points


def _write_atomically(path: Path, data: dict) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, path)
