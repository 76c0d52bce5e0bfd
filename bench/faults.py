"""The fault matrix as a table: a 10,000-point tracked cell in a real Jupyter kernel, on the
embedded store and a real `mlflow server`, with one fault at its middle (see
tests/fault_matrix.py). For each case: the time from the fault until the cell returned, how
the run ended, points stored against points logged, duplicates after two syncs, and runs
left RUNNING. Cases that need to mount a tmpfs or to make a folder read-only are left out
where this machine does not allow it.

    python bench/faults.py          # prints the table (about 6 minutes)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from _common import REPO  # noqa: F401 - puts tests/ on the path
from fault_matrix import CASES, can_freeze, can_mount, run_case

COLUMNS = ("case", "backend", "returned after", "status", "stored / logged", "duplicates",
           "RUNNING")


def measure() -> dict:
    """One row per case and backend."""
    skipped = {"tmpfs": can_mount(), "read-only": can_freeze()}
    rows = []
    for case in CASES:
        reason = (skipped["tmpfs"] if case.on_tmpfs else None) or (
            skipped["read-only"] if case.read_only else None)
        for backend in case.backends:
            if reason:
                rows.append({"case": case.name, "backend": backend, "skipped": reason})
                continue
            with tempfile.TemporaryDirectory() as folder:
                result = run_case(case, backend, Path(folder) / "case")
            rows.append({
                "case": case.name, "backend": backend,
                "returned after": "(kernel killed)" if case.kills_kernel
                else f"{result.seconds:.1f} s",
                "status": result.status,
                "stored / logged": f"{result.stored} / {result.logged}",
                "duplicates": result.duplicates, "RUNNING": result.running,
            })
    return {"rows": rows}


def table(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = [str(row.get(column, row.get("skipped", "") if column == "status" else ""))
                 for column in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(measure()["rows"]))
