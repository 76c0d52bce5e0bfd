"""The library log: what libraries log, warn or print inside ``library_output`` (and what the
children started there write) goes to the kernel's log file, scrubbed; other threads' output
is left alone; an error there is one line naming the file."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
import warnings

import pytest

from mlmagic.base.library_log import library_output, log_path


@pytest.fixture
def library_logger():
    """A logger with a stderr handler of its own, as MLflow's is."""
    logger = logging.getLogger("fakelibrary.pyfunc")
    handler = logging.StreamHandler(sys.stderr)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger
    logger.removeHandler(handler)


def test_records_warnings_and_prints_go_to_the_log_not_the_notebook(capsys, library_logger):
    before = (sys.stdout, sys.stderr, warnings.showwarning)
    with library_output("scoring") as output:
        library_logger.warning("Calling spark_udf() with env_manager=local")
        library_logger.info("Selected backend for flavor 'python_function'")
        with warnings.catch_warnings():  # pytest's settings ignore FutureWarnings
            warnings.simplefilter("default")
            warnings.warn("a pandas 3 change", FutureWarning, stacklevel=1)
        print("🏃 View run price at: http://127.0.0.1:5000/#/runs/1")
        sys.stderr.write("\x1b[39m\n\n")  # colour codes alone: nothing to keep
        print("half a line", end="")
    captured = capsys.readouterr()
    assert captured.out == captured.err == ""
    text = log_path().read_text(encoding="utf-8")
    for expected in ("WARNING fakelibrary.pyfunc: Calling spark_udf()",
                     "INFO fakelibrary.pyfunc: Selected backend",
                     "FutureWarning", "a pandas 3 change", "🏃 View run price", "half a line"):
        assert expected in text
    assert "\x1b" not in text
    assert output.written and output.shown == str(log_path()) and not output.errors
    assert log_path().parent == log_path().home() / ".mlmagic" / "logs"
    assert (sys.stdout, sys.stderr, warnings.showwarning) == before  # all put back


def test_nothing_written_means_no_path_to_show(capsys):
    with library_output("scoring") as output:
        pass
    assert not output.written and output.shown is None
    assert capsys.readouterr().err == ""


def test_other_threads_print_and_log_as_usual(capsys, library_logger):
    def user_thread():
        print("the user's own line")
        library_logger.warning("the user's own record")

    with library_output("scoring"):
        thread = threading.Thread(target=user_thread)
        thread.start()
        thread.join()
    captured = capsys.readouterr()
    assert "the user's own line" in captured.out
    assert "the user's own record" in captured.err
    assert not log_path().exists() or "the user's own" not in log_path().read_text()


def test_secrets_never_reach_the_log(library_logger, monkeypatch):
    monkeypatch.setenv("MY_API_TOKEN", "env-token-91bc2")
    uri = "http://me:uri-pass-7f3a9@127.0.0.1:5000"
    with library_output("scoring", uri):
        library_logger.warning("connecting to %s with env-token-91bc2", uri)
        print("password: uri-pass-7f3a9")
    text = log_path().read_text(encoding="utf-8")
    assert "env-token-91bc2" not in text and "uri-pass-7f3a9" not in text
    assert "password: ***" in text


def test_an_error_there_is_one_line_naming_the_log(capsys, library_logger):
    with library_output("scoring") as output:
        library_logger.error("the worker died")
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["mlmagic: a library reported an error while scoring: "
                     f"{output.errors[0]} (library output: {log_path()})"]
    assert "ERROR fakelibrary.pyfunc: the worker died" in output.errors[0]


def test_a_librarys_exception_is_logged_and_raised_without_a_second_line(capsys):
    with pytest.raises(ZeroDivisionError), library_output("scoring"):
        1 / 0  # noqa: B018
    assert capsys.readouterr().err == ""
    text = log_path().read_text(encoding="utf-8")
    assert "while scoring:" in text and "ZeroDivisionError" in text


def test_children_started_in_the_block_write_to_the_log_for_as_long_as_they_live(capfd):
    code = ("import sys, time\n"
            "print('Using Spark default log4j profile', flush=True)\n"
            "print('WARN NativeCodeLoader: no native library', file=sys.stderr, flush=True)\n"
            "time.sleep(0.5)\n"
            "print('[Stage 0:>   (0 + 2) / 2]', file=sys.stderr, flush=True)\n")
    with library_output("starting Spark", child_processes=True):
        child = subprocess.Popen([sys.executable, "-c", code])
    child.wait()
    deadline = time.monotonic() + 10
    while "[Stage 0" not in _log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "[Stage 0:>" in _log_text()  # written after the block ended
    assert "Using Spark default log4j profile" in _log_text()
    assert "NativeCodeLoader" in _log_text()
    captured = capfd.readouterr()
    assert captured.out == captured.err == ""
    print("fd 1 is the notebook's again")
    assert capfd.readouterr().out == "fd 1 is the notebook's again\n"


def _log_text() -> str:
    return log_path().read_text(encoding="utf-8") if log_path().exists() else ""
