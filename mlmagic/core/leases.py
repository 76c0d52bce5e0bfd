"""Leases: what a session owns, written down so that the next session on this machine can
end what a killed kernel left behind.

A session holds one lock file (``~/.mlmagic/leases/sessions/ID.lock``) while its process
lives; the operating system lets go of the lock when the process dies, however it dies
(SIGKILL, OOM). A lease is a small JSON file naming the session, its pid and host, and what
it owns. Another session that can take the lock of a lease's session knows that the holder
is gone. A run's lease is its journal (:mod:`mlmagic.core.journal`); a local endpoint's is a
file in ``~/.mlmagic/leases/endpoints``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import uuid
from pathlib import Path

from mlmagic.base.config import mlmagic_home
from mlmagic.base.display import notify


def leases_dir() -> Path:
    """Where leases and session locks are kept: ``~/.mlmagic/leases``."""
    return mlmagic_home() / "leases"


def session_id() -> str:
    """The current session's lease identity, its lock taken on first use (a forked child
    gets its own)."""
    from filelock import FileLock

    from mlmagic.core.session import current_session

    session = current_session()
    if session.lease_pid != os.getpid():
        ident = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        folder = leases_dir() / "sessions"
        folder.mkdir(parents=True, exist_ok=True)
        _remove_dead_session_locks(folder)
        lock = FileLock(folder / f"{ident}.lock", timeout=0, thread_local=False)
        lock.acquire()
        session.lease_id, session.lease_pid, session.lease_lock = ident, os.getpid(), lock
    return session.lease_id


def _remove_dead_session_locks(folder: Path, older_than: float = 60.0) -> None:
    """Remove the lock files of this machine's sessions that have ended, so the folder does
    not grow with every kernel ever started (a file younger than a minute may belong to a
    session that is taking its lock right now, and is left)."""
    import time

    for path in folder.glob(f"{socket.gethostname()}-*.lock"):
        with contextlib.suppress(OSError):
            if time.time() - path.stat().st_mtime > older_than:
                _gone(path)


def holder_alive(lease: dict) -> bool:
    """Whether the session that wrote ``lease`` still runs. A lease of another machine (a
    shared home folder) counts as alive: this machine cannot tell."""
    if lease.get("host") != socket.gethostname():
        return True
    from mlmagic.core.session import current_session

    session = current_session()
    if lease.get("session") == session.lease_id and session.lease_pid == os.getpid():
        return True
    path = leases_dir() / "sessions" / f"{lease.get('session')}.lock"
    return path.exists() and not _gone(path)


def _gone(lock_path: Path) -> bool:
    """Whether no process holds the session lock at ``lock_path`` (its file is then removed)."""
    from filelock import FileLock, Timeout

    lock = FileLock(lock_path, timeout=0, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        return False
    lock.release()
    lock_path.unlink(missing_ok=True)
    return True


class Lease:
    """One thing this session owns, on disk until it is released."""

    def __init__(self, path: Path, data: dict) -> None:
        self.path, self.data = path, data

    @classmethod
    def take(cls, folder: Path, file_name: str, **data) -> Lease | None:
        """Write the lease ``file_name`` in ``folder``; None (and one line) if it cannot be
        written, for a lease must never stop the work it guards."""
        try:
            data = {"session": session_id(), "pid": os.getpid(),
                    "host": socket.gethostname(), **data}
            lease = cls(folder / f"{file_name}.json", data)
            folder.mkdir(parents=True, exist_ok=True)
            write_json(lease.path, data)
            return lease
        except Exception as error:
            notify(f"cannot write a lease in {folder} ({type(error).__name__}: {error}); if "
                   "this kernel dies, the next session will not know what it left.")
            return None

    def release(self) -> None:
        """Remove the lease: what it guarded is done."""
        self.path.unlink(missing_ok=True)



def write_json(path: Path, data: dict) -> None:
    """Write ``data`` to ``path`` as JSON, all at once: a reader sees the old file or the new
    one, never half of one."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, path)


def orphaned(folder: Path) -> list[Lease]:
    """The leases in ``folder`` whose session is gone (unreadable ones are removed)."""
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            continue
        if not holder_alive(data):
            found.append(Lease(path, data))
    return found


# --- what a dead session left serving: local endpoints ---------------------------------------

def endpoint_leases_dir() -> Path:
    """Where the leases of local endpoints are kept."""
    return leases_dir() / "endpoints"


def endpoint_lease(file_name: str, **data) -> Lease | None:
    """A lease on an endpoint this session serves: if the kernel dies, the next session on
    this machine stops it (this module is what a deploy target's ``owner`` is)."""
    return Lease.take(endpoint_leases_dir(), file_name, **data)


def stop_orphaned_endpoints() -> list[str]:
    """Stop the local endpoints a dead session left serving, say so in one line, and return
    their names."""
    import signal

    stopped = []
    for lease in orphaned(endpoint_leases_dir()):
        pid = lease.data.get("server_pid")
        if pid and _is_endpoint_server(pid, lease.data.get("port")):
            try:
                os.killpg(pid, signal.SIGTERM)
                stopped.append(f"{lease.data.get('name')} (port {lease.data.get('port')})")
            except (ProcessLookupError, PermissionError):
                pass
        lease.release()
    if stopped:
        notify(f"stopped {len(stopped)} local endpoint(s) left serving by a session that "
               f"died: {', '.join(stopped)}.")
    return stopped


def _is_endpoint_server(pid: int, port: int | None) -> bool:
    """Whether ``pid`` still runs the MLflow scoring server that answers on ``port`` (not a
    process that got the same pid later)."""
    from mlmagic.deploy.local import answers

    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        os.kill(pid, 0)
        if cmdline.exists() and b"mlflow" not in cmdline.read_bytes():
            return False
    except OSError:
        return False
    return answers(f"http://127.0.0.1:{port}/ping")
