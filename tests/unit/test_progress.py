"""Progress outside a notebook: one terminal line rewritten in place, on stdout."""

from __future__ import annotations

import _thread
import threading
import time

import pytest

from mlmagic.base.display import Waiting, progress, with_progress


def test_progress_rewrites_one_line_on_stdout(capsys):
    progress("starting svc (0 s)")
    progress("starting svc (1 s, log: x)")
    progress("starting svc: done after 2 s", done=True)
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.count("\n") == 1 and captured.out.endswith("done after 2 s\n")
    shown = captured.out.split("\r")[-1]  # what the terminal shows once the line ends
    assert shown.rstrip() == "mlmagic: starting svc: done after 2 s"


def test_an_error_while_waiting_ends_the_line_without_a_stray_prefix(capsys):
    try:
        with Waiting("starting svc", timeout=5, every=0.01,
                     timed_out=lambda: TimeoutError("slow")) as wait:
            for _ in wait:
                if wait.elapsed > 0.02:
                    raise RuntimeError("failed")
    except RuntimeError:
        pass
    out = capsys.readouterr().out
    assert out.endswith("\n") and out.count("\n") == 1
    assert out.split("\r")[-1].rstrip().startswith("mlmagic: starting svc (")  # kept, ended
    assert "mlmagic: \n" not in out


def test_slow_work_shows_one_progress_line_and_returns_its_result(capsys):
    assert with_progress("writing t", lambda: time.sleep(1.2) or 42, quiet_for=0.2) == 42
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.split("\r")[-1].startswith("mlmagic: writing t: done after")


def test_quick_work_shows_nothing_and_a_failure_is_raised_here(capsys):
    assert with_progress("writing t", lambda: 7) == 7

    def fails():
        time.sleep(0.5)
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        with_progress("writing t", fails, quiet_for=0.1)
    out = capsys.readouterr().out
    assert "done" not in out and out.endswith("\n")  # the line ends; the error follows it


def test_an_interrupt_cancels_the_work_and_is_raised():
    cancelled = threading.Event()
    release = threading.Event()
    threading.Timer(0.5, _thread.interrupt_main).start()
    with pytest.raises(KeyboardInterrupt):
        with_progress("writing t", lambda: release.wait(10), cancel=cancelled.set,
                      quiet_for=0.1)
    release.set()
    assert cancelled.is_set()
