"""A real Jupyter kernel (ipykernel) driven as a front end drives it: run a cell, interrupt
it, or kill the kernel, and see what the notebook would show."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;]*m")
# What libraries print that a notebook should not keep (issue 16): the JVM's start-up, log4j,
# Spark's progress bar, Python warnings, MLflow's records, links and progress bars, colour codes.
LIBRARY_NOISE = ("WARNING", "WARN ", "log4j", "Using Spark's default", "[Stage", "Warning:",
                 "NativeCodeLoader", "incubator", "View run", "View experiment", "\U0001f3c3",
                 "\U0001f9ea", " mlflow.", "Downloading artifacts", "Uploading", "\x1b[")


@dataclass
class Execution:
    """What one cell did: its status, what it showed, and how long until it returned."""

    status: str  # ok, error or aborted
    outputs: list[str] = field(default_factory=list)
    error: str | None = None  # the exception's name, for status "error"
    seconds: float = 0.0
    displays: list[dict] = field(default_factory=list)  # each display's data, by MIME type
    size: int = 0  # bytes of every message the cell sent the front end (widgets' included)

    @property
    def text(self) -> str:
        """Everything the cell showed, as plain text."""
        return "\n".join(self.outputs)

    @property
    def noise(self) -> list[str]:
        """The lines of library output the cell showed (see LIBRARY_NOISE)."""
        return [line for line in self.outputs if any(word in line for word in LIBRARY_NOISE)]


class Kernel:
    """An ipykernel process in ``cwd`` with ``env``; stopped by :meth:`stop`."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd, self.env = cwd, env
        self.manager = self.client = None

    def start(self) -> Kernel:
        """Start the kernel and wait until it answers."""
        from jupyter_client import KernelManager

        self.manager = KernelManager(kernel_name="python3")
        self.manager.start_kernel(cwd=str(self.cwd), env=self.env)
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=120)
        return self

    def __enter__(self) -> Kernel:
        return self.start()

    def __exit__(self, *_) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        """The kernel's process id."""
        return self.manager.provisioner.process.pid

    def submit(self, code: str) -> tuple[str, float]:
        """Send a cell without waiting: its message id and when it was sent."""
        return self.client.execute(code, allow_stdin=False), time.monotonic()

    def wait(self, submitted: tuple[str, float], timeout: float = 300) -> Execution:
        """Collect a submitted cell's output until the kernel is idle again."""
        msg_id, started = submitted
        deadline = started + timeout
        execution = Execution("ok")
        while True:
            try:
                message = self.client.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"no end of the cell within {timeout} s: "
                                   f"{execution.outputs[-5:]}") from None
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            execution.size += len(json.dumps(content, default=str))
            if kind == "stream":
                execution.outputs += content["text"].splitlines()
            elif kind in ("display_data", "execute_result", "update_display_data"):
                execution.outputs += content["data"].get("text/plain", "").splitlines()
                execution.displays.append(content["data"])
            elif kind == "error":
                execution.status, execution.error = "error", content["ename"]
                execution.outputs += [ANSI.sub("", line) for line in content["traceback"]]
            elif kind == "status" and content["execution_state"] == "idle":
                execution.seconds = time.monotonic() - started
                execution.outputs += self._paged(msg_id)
                return execution

    def _paged(self, msg_id: str) -> list[str]:
        """What the cell sent to the pager (``?`` help): it comes with the execute reply."""
        while True:
            reply = self.client.get_shell_msg(timeout=30)
            if reply["parent_header"].get("msg_id") == msg_id:
                return [line for payload in reply["content"].get("payload", [])
                        if payload.get("source") == "page"
                        for line in payload["data"].get("text/plain", "").splitlines()]

    def run(self, code: str, timeout: float = 300) -> Execution:
        """Run a cell and wait for it."""
        return self.wait(self.submit(code), timeout)

    def set_up(self, *cells: str) -> None:
        """Run cells that must succeed before what a test looks at (loading, connecting)."""
        for cell in cells:
            ran = self.run(cell)
            assert ran.status == "ok", f"{cell}: {ran.text}"

    def value(self, expression: str) -> str:
        """What ``print(expression)`` shows in the kernel."""
        return self.run(f"print({expression})").text.strip()

    def interrupt(self) -> None:
        """Interrupt the running cell, as the notebook's stop button does (SIGINT)."""
        self.manager.interrupt_kernel()

    def kill(self) -> None:
        """Kill the kernel at once (SIGKILL), as the out-of-memory killer would."""
        os.kill(self.pid, signal.SIGKILL)
        self.manager.provisioner.process.wait()
        self.stop()

    def stop(self) -> None:
        """Shut the kernel down (if it still runs) and close the channels."""
        if self.client is not None:
            self.client.stop_channels()
        if self.manager is not None and self.manager.is_alive():
            self.manager.shutdown_kernel(now=True)
