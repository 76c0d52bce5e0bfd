"""The panel's actions run one at a time in a background thread, so a long one (a deploy,
a connection to a slow server) never freezes the notebook. A status line shows what is
going on: progress, the outcome, or an error in one line."""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from typing import Any

import ipywidgets as widgets

from mlmagic.base.display import messages_to
from mlmagic.base.secrets import first_line

_STYLES = {
    "busy": ("⏳", "#555"),
    "ok": ("✓", "#2a7d2a"),
    "error": ("✗", "#b00020"),
    "idle": ("", "#555"),
}


def one_line(error: BaseException) -> str:
    """An error as the one line a user reads: its kind and the first line of its message."""
    text = first_line(str(error))
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class Worker:
    """Runs actions in order on one background thread and reports them in ``status``."""

    def __init__(self) -> None:
        self.status = widgets.HTML(layout=widgets.Layout(min_height="1.6em"))
        self.message, self.state = "", "idle"
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlmagic-panel")
        self._futures: list[Future] = []
        self._lock = threading.Lock()

    def submit(
        self, label: str | None, action: Callable[[], Any],
        outcome: Callable[[Any], str | None] | None = None,
    ) -> Future:
        """Run ``action`` in the background; meanwhile the status says ``label`` (None: a
        quiet action), then ``outcome(result)`` (if it gives a line), or the error in one
        line."""
        if label:
            self.show(f"{label}…", "busy")
        future = self._executor.submit(self._run, label, action, outcome)
        with self._lock:
            self._futures = [f for f in self._futures if not f.done()] + [future]
        return future

    @property
    def busy(self) -> bool:
        """Whether an action is running or waiting to run."""
        with self._lock:
            return any(not future.done() for future in self._futures)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every submitted action (and any it submitted) has ended; False if
        ``timeout`` seconds passed first."""
        while True:
            with self._lock:
                pending = [future for future in self._futures if not future.done()]
            if not pending:
                return True
            if wait_for(pending, timeout).not_done:
                return False

    def show(self, message: str, state: str) -> None:
        """Put one line in the status line."""
        icon, color = _STYLES[state]
        self.message, self.state = message, state
        self.status.value = (
            f"<span class='mlmagic-status mlmagic-{state}' style='color:{color}'>"
            f"{icon} {html.escape(message)}</span>" if message else ""
        )

    def shutdown(self) -> None:
        """Let the running action finish, drop the waiting ones, stop the thread."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _run(self, label: str | None, action, outcome) -> Any:
        with messages_to(lambda line, done: self.show(line, "busy")):
            try:
                result = action()
                line = outcome(result) if outcome else None
            except Exception as error:
                self.show(one_line(error), "error")
                return None
        if line:
            self.show(line, "ok")
        elif self.state == "busy":
            self.show("", "idle")
        return result
