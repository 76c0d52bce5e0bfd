"""Output for people: one-line notices and small cards that render as HTML or text."""

from __future__ import annotations

import html
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, copy_context
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from mlmagic.base.render import html_table

T = TypeVar("T")
MessageReceiver = Callable[[str, bool], None]
_RECEIVER: ContextVar[MessageReceiver | None] = ContextVar("mlmagic_messages", default=None)


def notify(message: str) -> None:
    """Tell the user one thing, on one line, without interrupting the work."""
    receiver = _RECEIVER.get()
    if receiver is not None:
        receiver(message, True)
        return
    print(f"mlmagic: {message}", file=sys.stderr)


def progress(message: str, *, done: bool = False) -> None:
    """Show a one-line progress message that the next one replaces; ``done`` ends the line
    (with ``message`` as its last words, or as it stands when ``message`` is empty).

    In a notebook the line is one display updated in place, so a saved notebook keeps only
    its last words; in a terminal it is a line on stdout rewritten with ``\\r``."""
    receiver = _RECEIVER.get()
    if receiver is not None:
        receiver(message, done)
        return
    line = getattr(_OPEN_LINE, "line", None) or _ProgressLine()
    _OPEN_LINE.line = None if done else line
    if message:
        line.show(message)
    if done:
        line.end()


_OPEN_LINE = threading.local()  # the progress line this thread is rewriting, if any


class _ProgressLine:
    """One line of progress: a display handle in a kernel, a ``\\r`` line elsewhere."""

    def __init__(self) -> None:
        self._handle = None
        self._shown = False
        self._width = 0
        if _in_kernel():
            from IPython.display import DisplayHandle

            self._handle = DisplayHandle()

    def show(self, message: str) -> None:
        """Replace what the line says."""
        if self._handle is not None:
            show = self._handle.update if self._shown else self._handle.display
            show({"text/plain": message}, raw=True)
            self._shown = True
            return
        text = f"mlmagic: {message}"
        print(f"\r{text.ljust(self._width)}", end="", flush=True)
        self._width = len(text)

    def end(self) -> None:
        """Leave the line as it stands; what comes next starts on a line of its own."""
        if self._handle is None and self._width:
            print(flush=True)


def _in_kernel() -> bool:
    """Whether this runs in a Jupyter kernel, whose front end can update a display."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython else None
    return getattr(shell, "kernel", None) is not None


class Waiting:
    """The one way mlmagic waits for something slow: a progress line that says what it waits
    for and for how long, and a time limit. Use it as a context and loop over it::

        with Waiting("starting churn", timeout=180, every=0.5, timed_out=too_slow) as wait:
            for _ in wait:              # once now, then every ``every`` seconds
                if ready():
                    return wait.done()  # "starting churn: done after 4 s"

    ``detail`` (e.g. the service's state) is shown beside the seconds. When ``timeout`` runs
    out, the exception ``timed_out()`` returns is raised; on any exception the progress line
    is ended, so the error's own line follows it."""

    def __init__(self, doing: str, *, timeout: float, every: float,
                 timed_out: Callable[[], BaseException]) -> None:
        self.doing, self.timeout, self.every, self.timed_out = doing, timeout, every, timed_out
        self.detail = ""
        self._started = time.monotonic()
        self._shown = False

    @property
    def elapsed(self) -> float:
        """Seconds since the wait began."""
        return time.monotonic() - self._started

    def __enter__(self) -> Waiting:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if error is not None and self._shown:
            progress("", done=True)
            self._shown = False

    def __iter__(self) -> Iterator[float]:
        while True:
            yield self.elapsed
            if self.elapsed > self.timeout:
                raise self.timed_out()
            detail = f", {self.detail}" if self.detail else ""
            progress(f"{self.doing} ({self.elapsed:.0f} s{detail})")
            self._shown = True
            time.sleep(self.every)

    def done(self, message: str | None = None) -> None:
        """End the progress line with what was done and how long it took."""
        progress(f"{message or self.doing + ': done'} after {self.elapsed:.0f} s", done=True)
        self._shown = False


def with_progress(doing: str, work: Callable[[], T], *,
                  cancel: Callable[[], object] | None = None, quiet_for: float = 1.0) -> T:
    """Run ``work`` in a thread and return what it returns (or raise what it raises, here),
    showing one progress line ("writing scored (4 s)") once it has taken ``quiet_for``
    seconds, so a quick action shows none. An interrupt calls ``cancel`` (e.g. Spark's
    cancelAllJobs) and is raised; work that cannot be cancelled ends in the background."""
    from concurrent.futures import ThreadPoolExecutor
    from concurrent.futures import TimeoutError as Pending

    pool = ThreadPoolExecutor(1, thread_name_prefix="mlmagic-work")
    future = pool.submit(copy_context().run, work)
    pool.shutdown(wait=False)
    try:
        try:
            return future.result(timeout=quiet_for)
        except Pending:
            pass
        with Waiting(doing, timeout=math.inf, every=0.5, timed_out=TimeoutError) as wait:
            for _ in wait:
                if future.done():
                    if future.exception() is None:
                        wait.done()
                    return future.result()
    except KeyboardInterrupt:
        if cancel is not None:
            cancel()
        raise
    raise AssertionError("unreachable: Waiting without a time limit ended")


@contextmanager
def messages_to(receiver: MessageReceiver) -> Iterator[None]:
    """Send the block's ``notify`` and ``progress`` lines to ``receiver(message, done)``
    instead of stderr: in this thread (context) only, so a panel can show the progress of
    an action it runs in the background while the notebook goes on."""
    token = _RECEIVER.set(receiver)
    try:
        yield
    finally:
        _RECEIVER.reset(token)


@contextmanager
def quiet_loggers(names: tuple[str, ...], level: int) -> Iterator[None]:
    """Raise the named loggers (and their children) to ``level`` for a while: libraries'
    own chatter stays out of the notebook where mlmagic says what matters in one line."""
    children = [name for name in logging.root.manager.loggerDict
                if name.startswith(tuple(f"{prefix}." for prefix in names))]
    loggers = [logging.getLogger(name) for name in (*names, *children)]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(level)
    try:
        yield
    finally:
        for logger, old in zip(loggers, levels, strict=True):
            logger.setLevel(old)


_SILENCED = threading.local()


class _SilencedHere(logging.Filter):
    """Drops the records logged in a thread that is inside :func:`silenced`."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_SILENCED, "depth", 0)


_SILENCER = _SilencedHere()


@contextmanager
def silenced(names: tuple[str, ...]) -> Iterator[None]:
    """Drop what the named loggers log in this thread during the block (other threads log
    as usual): for a library's traceback of an error mlmagic says in one line itself."""
    for name in names:
        logger = logging.getLogger(name)
        if _SILENCER not in logger.filters:
            logger.addFilter(_SILENCER)
    _SILENCED.depth = getattr(_SILENCED, "depth", 0) + 1
    try:
        yield
    finally:
        _SILENCED.depth -= 1


@dataclass(frozen=True)
class Card:
    """A title and labelled rows; values that are web addresses render as links."""

    title: str
    rows: tuple[tuple[str, str], ...]

    def _repr_html_(self) -> str:
        table = html_table((), self.rows, css_class="mlmagic-card", row_headers=True)
        return f"<div><b>{html.escape(self.title)}</b>{table}</div>"

    def __repr__(self) -> str:
        width = max((len(label) for label, _ in self.rows), default=0)
        lines = [self.title] + [f"  {label.ljust(width)}  {value}" for label, value in self.rows]
        return "\n".join(lines)


class ShownAsCard:
    """A result that shows as the card its ``_card()`` builds, in a notebook and as text
    (a dataclass using it needs ``repr=False``)."""

    def _card(self) -> Card:
        raise NotImplementedError

    def _repr_html_(self) -> str:
        return self._card()._repr_html_()

    def __repr__(self) -> str:
        return repr(self._card())


class ShownAsCardPath(ShownAsCard):
    """A file or folder an action wrote, shown as a card; ``os.fspath()`` and ``str()`` give
    its path, so ``Path(result)`` and ``open(result)`` work (needs a ``path`` field)."""

    path: Path

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)


def card(title: str, *rows: tuple[str, object]) -> Card:
    """Build a card, leaving out the rows whose value is None or empty."""
    kept = tuple((label, str(value)) for label, value in rows if value not in (None, ""))
    return Card(title, kept)


def format_duration(milliseconds: int | None) -> str:
    """A short human duration: 850 ms, 12.3 s, 4 min 05 s."""
    if milliseconds is None:
        return ""
    if milliseconds < 1000:
        return f"{milliseconds} ms"
    seconds = milliseconds / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes} min {seconds:02d} s"
