"""Work that must run to its end even when the user interrupts (closing a run, starting
one): an interrupt that arrives meanwhile is noted and raised afterwards."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Deferred:
    """Whether an interrupt arrived while it was held back."""

    seen: bool = False


@contextmanager
def deferred_interrupts() -> Iterator[Deferred]:
    """Hold back SIGINT (Ctrl-C, the notebook's interrupt button) for the block: it is noted
    in the yielded :class:`Deferred`, not raised. In other threads, where Python delivers no
    signals, the block runs as it is."""
    deferred = Deferred()
    if threading.current_thread() is not threading.main_thread():
        yield deferred
        return
    previous = signal.getsignal(signal.SIGINT)

    def note(signum, frame) -> None:
        deferred.seen = True

    signal.signal(signal.SIGINT, note)
    try:
        yield deferred
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None
                      else signal.default_int_handler)


def run_to_end(step: Callable[[], None]) -> bool:
    """Run ``step()`` to its end however many interrupts arrive; whether any arrived. An
    interrupt that lands before the hold takes effect (``step`` has not begun) starts it
    again; one that lands after it ended is only noted."""
    interrupted, done = False, False
    while not done:
        try:
            with deferred_interrupts() as deferred:
                step()
                done = True
            interrupted = interrupted or deferred.seen
        except KeyboardInterrupt:
            interrupted = True
    return interrupted
