"""The fixed cost of a tracked cell: an empty `%%track` cell (source logged, summary shown)
next to a cell holding a plain `with mlflow.start_run(): pass`, both run by the same
IPython shell, on SQLite and on a local `mlflow server`."""

from __future__ import annotations

import json

from _common import alternate, backends, run_quietly, tracked_shell

PLAIN = "import mlflow\nwith mlflow.start_run():\n    pass"


def measure(rounds: int = 30) -> dict:
    """Median seconds of each, by backend, and their ratio."""
    shell = tracked_shell()
    figures = {}
    with backends() as uris:
        for backend, uri in uris.items():
            run_quietly(shell, f"%aml_connect {uri} --experiment bench-empty")

            seconds = alternate(
                {
                    "track": lambda: run_quietly(shell, "%%track\npass"),
                    "plain": lambda: run_quietly(shell, PLAIN),
                },
                rounds,
            )
            figures[backend] = {
                "track_s": seconds["track"],
                "plain_s": seconds["plain"],
                "track_over_plain": seconds["track"] / seconds["plain"],
            }
    return figures


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
