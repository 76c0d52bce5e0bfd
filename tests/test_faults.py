"""The fault matrix (tests/fault_matrix.py): a 10,000-point tracked cell in a real kernel,
on the embedded store and on a real `mlflow server`, with a fault at its middle. Whatever
the fault: the run ends (never RUNNING), every point logged is stored once (on SIGKILL, all
but the last flush interval), the user sees their own outcome and no traceback of mlmagic's,
and the cell returns in bounded time."""

from __future__ import annotations

import re

import pytest
from fault_matrix import CASES, can_freeze, can_mount, run_case

MOUNT_PROBLEM = can_mount()
FREEZE_PROBLEM = can_freeze()
MATRIX = [pytest.param(case, backend, id=f"{case.name}-{backend}".replace(" ", "-"))
          for case in CASES for backend in case.backends]


@pytest.mark.parametrize(("case", "backend"), MATRIX)
def test_fault(case, backend, tmp_path):
    if case.on_tmpfs and MOUNT_PROBLEM:
        pytest.skip(MOUNT_PROBLEM)
    if case.read_only and FREEZE_PROBLEM:
        pytest.skip(FREEZE_PROBLEM)
    result = run_case(case, backend, tmp_path / "case")
    shown = result.shown
    assert result.status in case.expected.split("|"), (result, shown, result.notes)
    assert result.running == 0, shown
    assert result.duplicates == 0
    assert not re.search(r"File \S*mlmagic/\S*\.py", shown), f"mlmagic's traceback:\n{shown}"
    if case.kills_kernel:
        # the next session found the run, ended it, and said so in one line
        assert "ended 1 run(s) left RUNNING by a session that died" in shown, shown
        assert [line for line in shown.splitlines() if line.startswith("mlmagic:")] == [
            line for line in shown.splitlines() if "session that died" in line], shown
        assert result.end_time_is_last_point
        assert result.written_floor <= result.stored <= result.logged + 500
        return
    assert result.stored == result.logged, (result, shown, result.notes)
    if case.name == "exception":
        assert "ValueError: data drifted" in shown
    if case.name in ("interrupt", "double interrupt"):
        assert result.seconds < 10, result
    else:
        assert result.seconds < 60, result
    if case.name in ("read-only store", "disk full", "server killed, restarted, synced"):
        assert "did not take a write" in shown or "cannot be reached" in shown, shown
