"""Progress outside a notebook: one terminal line rewritten in place, on stdout."""

from __future__ import annotations

from mlmagic.base.display import Waiting, progress


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
