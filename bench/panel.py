"""The panel's runs table with 1,000 runs: the time to load and render it (search, build the
table, first page), to sort it, to turn a page, and to chart one selected run's history,
which is fetched only on selection."""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

RUNS = 1000
STEPS = 50
ROUNDS = 5


def _store_with_runs(uri: str) -> str:
    """RUNS finished runs with two metrics (STEPS points of loss each) and two params."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    client = MlflowClient(uri)
    experiment_id = client.create_experiment("bench-panel")
    now = int(time.time() * 1000)
    for i in range(RUNS):
        run = client.create_run(experiment_id, run_name=f"run-{i}", start_time=now + i)
        losses = [Metric("loss", 1.0 / (step + 1 + i), now + i, step) for step in range(STEPS)]
        client.log_batch(run.info.run_id, metrics=[*losses, Metric("acc", i / RUNS, now, 0)],
                         params=[Param("lr", str(i % 7)), Param("depth", str(i % 5))])
        client.set_terminated(run.info.run_id, end_time=now + i + 1000)
    return "bench-panel"


def _seconds(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def measure() -> dict:
    """Median seconds over ROUNDS of: the search alone (what %aml_runs costs), load and
    render 1,000 runs in the table, sort, next page, chart a selected run."""
    import mlmagic
    from mlmagic.panel import Panel

    # tmpfs where there is one: creating 1,000 runs on disk waits on a sync per write
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=shm) as folder:
        uri = f"sqlite:///{Path(folder) / 'bench.db'}"
        setup = time.perf_counter()
        experiment = _store_with_runs(uri)
        setup = time.perf_counter() - setup
        mlmagic.connect(uri, experiment=experiment)
        panel = Panel({})
        panel.wait()
        runs = panel.runs
        times = {"search_only": [], "load_and_render": [], "sort": [], "next_page": [],
                 "chart_selected_run": []}
        for round_ in range(ROUNDS):
            times["search_only"].append(_seconds(lambda: mlmagic.runs(max_results=RUNS)))
            times["load_and_render"].append(_seconds(runs.load))
            times["sort"].append(_seconds(lambda: runs.sort_by("metrics.loss")))
            times["next_page"].append(_seconds(lambda: runs.show_page(runs.page + 1)))
            run_id = runs.table.index[round_]
            times["chart_selected_run"].append(_seconds(
                lambda run_id=run_id: (runs.select([run_id]), panel.wait())))
        shown = runs.page_label.value
        panel.close()
    return {
        "runs": RUNS, "points_per_run": STEPS, "shown": shown, "store_setup_s": setup,
        **{f"{name}_s": statistics.median(values) for name, values in times.items()},
    }


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
