"""Library output kept out of the notebook. What MLflow, Spark and the Azure SDKs log, warn or
print while mlmagic calls them, and everything a child process that mlmagic starts in such a
call writes (the local Spark session's JVM), goes to one log file per kernel,
``~/.mlmagic/logs/kernel-<started>-<pid>.log``, with secrets scrubbed out. An action's card
names the file when the action wrote to it; an error there is one line in the notebook.

The capture is per thread: what other threads (the user's own) log or print is left alone.
The hooks it needs (a filter on the logging handlers, ``warnings.showwarning``, ``sys.stdout``
and ``sys.stderr``) are process-wide, so they are put in while any block runs and let
everything else through."""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path

from mlmagic.base.config import mlmagic_home
from mlmagic.base.display import notify
from mlmagic.base.errors import MlmagicError
from mlmagic.base.secrets import scrub

ERROR_LEVELS = re.compile(r"\b(ERROR|CRITICAL|FATAL|SEVERE)\b")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
RECORD_FORMAT = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
_STARTED = time.strftime("%Y%m%d-%H%M%S")
# MLflow's own output that mlmagic's cards replace (set with base.env.temporary_env, or in a
# child's environment): its "View run" links, and its artifact progress bars.
NO_RUN_LINKS = {"MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
NO_PROGRESS_BARS = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def log_path() -> Path:
    """This kernel's library log: ``~/.mlmagic/logs/kernel-<started>-<pid>.log``."""
    return mlmagic_home() / "logs" / f"kernel-{_STARTED}-{os.getpid()}.log"


@dataclass
class LibraryOutput:
    """What one action's library calls left in the log: whether anything, and its errors."""

    doing: str
    path: Path
    written: bool = False
    errors: tuple[str, ...] = ()

    @property
    def shown(self) -> str | None:
        """The log's path for a card's "library output" row, if the action wrote to it."""
        return str(self.path) if self.written else None


@contextmanager
def library_output(doing: str, uri: str = "", *, child_processes: bool = False
                   ) -> Iterator[LibraryOutput]:
    """Send what libraries log, warn or print in this thread during the block to the library
    log (``uri``'s secrets scrubbed too); with ``child_processes``, also the output of the
    processes started in the block, for as long as they live. A library's exception is logged
    with its traceback and raised. If the block ends well but an error was logged, one line
    says so and names the log. The LibraryOutput yielded is filled in when the block ends."""
    result = LibraryOutput(doing, log_path())
    with _LOCK:
        written, errors = _LOG.written, len(_LOG.errors)
    _enter(uri)
    try:
        with _child_output(uri) if child_processes else nullcontext():
            yield result
    except Exception as error:
        if not isinstance(error, MlmagicError):
            _append(f"while {doing}:\n" + "".join(traceback.format_exception(error)), uri)
        raise
    finally:
        _leave()
        with _LOCK:
            result.written = _LOG.written > written
            result.errors = tuple(_LOG.errors[errors:])
    if result.errors:
        notify(f"a library reported an error while {doing}: {result.errors[0][:200]} "
               f"(library output: {result.path})")


class _Log:
    """The open log file and what was written to it."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.file = None
        self.written = 0
        self.errors: list[str] = []


_LOCK = threading.RLock()
_LOG = _Log()
_HERE = threading.local()  # stack: the URIs of this thread's open blocks; pending: a partial line


def _append(text: str, uri: str = "") -> None:
    lines = [line for line in ANSI.sub("", text).replace("\r", "\n").splitlines()
             if line.strip()]
    if not lines:
        return
    text = scrub("\n".join(lines) + "\n", uri)
    with _LOCK:
        path = log_path()
        if _LOG.path != path:
            if _LOG.file is not None:
                _LOG.file.close()
            path.parent.mkdir(parents=True, exist_ok=True)
            _LOG.path, _LOG.file = path, path.open("a", encoding="utf-8")
        _LOG.file.write(text)
        _LOG.file.flush()
        _LOG.written += len(text)
        _LOG.errors += [line for line in text.splitlines() if ERROR_LEVELS.search(line)]


def _capturing() -> str | None:
    """The URI of this thread's innermost open block, or None outside any."""
    stack = getattr(_HERE, "stack", None)
    return stack[-1] if stack else None


# -- the process-wide hooks --------------------------------------------------------------

_USERS = 0
_PREVIOUS: dict[str, object] = {}


def _enter(uri: str) -> None:
    global _USERS
    with _LOCK:
        _USERS += 1
        if warnings.showwarning is not _show_warning:
            _PREVIOUS["showwarning"] = warnings.showwarning
            warnings.showwarning = _show_warning
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if stream is not None and not isinstance(stream, _ThreadStream):
                setattr(sys, name, _ThreadStream(stream))
    _filter_handlers()
    _HERE.stack = [*getattr(_HERE, "stack", []), uri]


def _leave() -> None:
    global _USERS
    uri = _HERE.stack.pop()
    pending, _HERE.pending = getattr(_HERE, "pending", ""), ""
    _append(pending, uri)
    with _LOCK:
        _USERS -= 1
        if _USERS:
            return
        if warnings.showwarning is _show_warning:
            warnings.showwarning = _PREVIOUS.pop("showwarning")
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if isinstance(stream, _ThreadStream):
                setattr(sys, name, stream.original)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    uri = _capturing()
    if uri is None:
        shown = _PREVIOUS.get("showwarning") or warnings._showwarning_orig
        shown(message, category, filename, lineno, file, line)
        return
    _append(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {category.__name__} "
            f"({filename}:{lineno}): {message}", uri)


class _ThreadStream:
    """``sys.stdout`` / ``sys.stderr`` while a block runs: the block's thread writes to the
    library log, every other thread to the stream it replaced."""

    def __init__(self, original) -> None:
        self.original = original

    def write(self, text: str) -> int:
        uri = _capturing()
        if uri is None:
            return self.original.write(text)
        _HERE.pending = getattr(_HERE, "pending", "") + text
        if "\n" in _HERE.pending:
            done, _, _HERE.pending = _HERE.pending.rpartition("\n")
            _append(done, uri)
        return len(text)

    def flush(self) -> None:
        if _capturing() is None:
            self.original.flush()

    def __getattr__(self, name: str):
        return getattr(self.original, name)


class _ToLibraryLog(logging.Filter):
    """On every handler: a record logged in a thread inside a block goes to the library log
    (once, whichever handlers it reaches) instead of the handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        uri = _capturing()
        if uri is None:
            return True
        if getattr(_HERE, "last_record", None) is not record:
            _HERE.last_record = record
            _append(RECORD_FORMAT.format(record), uri)
        return False


_FILTER = _ToLibraryLog()


def _filter_handlers() -> None:
    loggers = [logging.root, *(logger for logger in list(logging.root.manager.loggerDict.values())
                               if isinstance(logger, logging.Logger))]
    handlers = {handler for logger in loggers for handler in logger.handlers}
    for handler in handlers | ({logging.lastResort} if logging.lastResort else set()):
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)


@contextmanager
def _child_output(uri: str) -> Iterator[None]:
    """Point this process's file descriptors 1 and 2 at a pipe while the block runs, so that
    the children it starts inherit the pipe; a thread copies what they write, for as long as
    they live, into the library log."""
    for stream in (sys.__stdout__, sys.__stderr__):
        if stream is not None:
            stream.flush()
    read_end, write_end = os.pipe()
    saved = [os.dup(1), os.dup(2)]
    threading.Thread(target=_copy_to_log, args=(read_end, uri), daemon=True,
                     name="mlmagic-library-output").start()
    try:
        os.dup2(write_end, 1)
        os.dup2(write_end, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for descriptor in (*saved, write_end):
            os.close(descriptor)


def _copy_to_log(read_end: int, uri: str) -> None:
    with os.fdopen(read_end, encoding="utf-8", errors="replace") as pipe:
        for line in pipe:
            with suppress(Exception):  # the pipe is drained whatever happens, or children block
                _append(line, uri)
