"""Peers, side by side: one 10,000-step loop logging a metric a step, as a cell of the same
IPython shell, logged four ways in one process:

- ``%%track`` (mlmagic, as it comes: its run, the cell's source, its summary);
- W&B offline (``wandb.init`` … ``wandb.log`` … ``wandb.finish``), at its leanest: no system
  stats, no git, code or machine metadata, no console capture;
- MLflow's own async logging (``log_metric(..., synchronous=False)`` in ``start_run``, then
  ``flush_async_logging``), as it comes, and with its buffering on
  (``MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS=1``): as it comes, its thread writes one point per
  store call, so at the end of the loop nearly all of them are still to write;
- plain MLflow (``log_metric`` in ``start_run``).

Plain MLflow and unbuffered async MLflow pay a store round trip a point, so they run
SHORT_STEPS steps and their whole cell is scaled to STEPS (their start and finish, tens of
milliseconds, scaled with it).

Each cell times its own loop (the in-loop cost per step); the whole cell is timed from
outside (start, loop, and finish until every point is in the store or the W&B file). The
MLflow ways share one SQLite store in a temporary folder. Each is run once to warm up
(W&B starts its service, imports are paid), then alternated ROUNDS times; medians. W&B is a
bench-only dependency (``pip install wandb``, or the ``bench`` extra); without it the other
three are measured.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from _common import alternate, run_quietly, tracked_shell

STEPS = 10_000
SHORT_STEPS = 1_000
ROUNDS = 5
VALUE = "1.0 / (step + 1)"
TIMED_LOOP = (
    "{indent}_bench_started = time.perf_counter()\n"
    "{indent}for step in range({steps}):\n"
    "{indent}    {call}\n"
    "{indent}_bench_loop_s = time.perf_counter() - _bench_started\n"
)
WANDB_SETTINGS = (
    "wandb.Settings(mode='offline', silent=True, console='off', disable_code=True,"
    " disable_git=True, disable_job_creation=True, x_disable_stats=True,"
    " x_disable_meta=True, x_disable_machine_info=True)"
)


def _loop(call: str, steps: int = STEPS, indent: str = "") -> str:
    return TIMED_LOOP.format(indent=indent, steps=steps, call=call)


ASYNC = f"mlflow.log_metric('loss', {VALUE}, step=step, synchronous=False)"
CELLS = {
    "track": "%%track\nimport mlflow, time\n"
    + _loop(f"mlflow.log_metric('loss', {VALUE}, step=step)"),
    "wandb": "import wandb, time\n"
    f"_bench_run = wandb.init(project='bench-peers', settings={WANDB_SETTINGS})\n"
    + _loop(f"wandb.log({{'loss': {VALUE}}}, step=step)")
    + "_bench_run.finish()\n",
    "mlflow_async_buffered": "import mlflow, os, time\n"
    "os.environ['MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS'] = '1'\n"
    "try:\n    with mlflow.start_run():\n"
    + _loop(ASYNC, indent="        ")
    + "        mlflow.flush_async_logging()\n"
    "finally:\n    del os.environ['MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS']\n",
    "mlflow_async": "import mlflow, time\nwith mlflow.start_run():\n"
    + _loop(ASYNC, SHORT_STEPS, "    ")
    + "    mlflow.flush_async_logging()\n",
    "mlflow_plain": "import mlflow, time\nwith mlflow.start_run():\n"
    + _loop(f"mlflow.log_metric('loss', {VALUE}, step=step)", SHORT_STEPS, "    "),
}
STEPS_OF = {"mlflow_async": SHORT_STEPS, "mlflow_plain": SHORT_STEPS}
INSTALL_WANDB = "bench/peers.py: wandb is not installed, so W&B is left out (pip install wandb)"


def _offline_wandb(folder: Path) -> bool:
    """Point W&B at a folder, offline and silent; False if it is not installed."""
    try:
        import wandb  # noqa: F401
    except ImportError:
        print(INSTALL_WANDB)
        return False
    os.environ.update(WANDB_MODE="offline", WANDB_DIR=str(folder), WANDB_SILENT="true",
                      WANDB_DISABLE_CODE="true", WANDB_DISABLE_GIT="true",
                      WANDB_CONSOLE="off")
    return True


@contextlib.contextmanager
def _restored(environ: dict[str, str]) -> Iterator[None]:
    """Put back the environment, and stop W&B's service if it was started, at the end."""
    try:
        yield
    finally:
        teardown = getattr(sys.modules.get("wandb"), "teardown", None)
        if teardown is not None:
            teardown()
        os.environ.clear()
        os.environ.update(environ)


def _stored_steps(shell, name: str) -> int:
    """How many points the cell just run left where its logger keeps them."""
    if name == "wandb":
        # Each history record of the run's .wandb file names the key.
        return Path(shell.user_ns["_bench_run"].settings.sync_file).read_bytes().count(b"loss")
    import mlflow

    client = mlflow.MlflowClient()
    run = client.search_runs([mlflow.get_experiment_by_name("bench-peers").experiment_id],
                             order_by=["attributes.start_time DESC"], max_results=1)[0]
    return len(client.get_metric_history(run.info.run_id, "loss"))


def _candidate(shell, name: str, loops: dict[str, list[float]]) -> Callable[[], None]:
    """Run the cell, keep its loop time, check that every point arrived."""
    steps = STEPS_OF.get(name, STEPS)

    def run() -> None:
        run_quietly(shell, CELLS[name])
        loops[name].append(shell.user_ns["_bench_loop_s"])
        stored = _stored_steps(shell, name)
        assert stored >= steps, f"{name}: {stored} of {steps} points stored"

    return run


def measure(rounds: int = ROUNDS) -> dict:
    """Per-step in-loop microseconds and whole-cell seconds (for STEPS steps) of each way."""
    shell = tracked_shell()
    environ = dict(os.environ)
    with tempfile.TemporaryDirectory() as folder, _restored(environ):
        names = [n for n in CELLS if n != "wandb" or _offline_wandb(Path(folder))]
        run_quietly(shell, f"%aml_connect sqlite:///{folder}/bench.db --experiment bench-peers")
        loops: dict[str, list[float]] = {name: [] for name in names}
        candidates = {name: _candidate(shell, name, loops) for name in names}
        for candidate in candidates.values():  # warm up: imports, W&B's service
            candidate()
        for values in loops.values():
            values.clear()
        whole = alternate(candidates, rounds)
    figures = {}
    for name in names:
        steps = STEPS_OF.get(name, STEPS)
        loop_s = statistics.median(loops[name])
        figures[name] = {
            "steps": steps,
            "loop_us_per_step": loop_s / steps * 1e6,
            "cell_s": whole[name],
            "cell_s_for_10000_steps": whole[name] * STEPS / steps,
        }
    return {**figures, **_ratios(figures), "versions": _versions(names)}


def _versions(names: list[str]) -> dict[str, str]:
    """The versions of the peers measured."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("mlflow", "wandb") if "wandb" in names else ("mlflow",):
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


def _ratios(figures: dict) -> dict:
    """How many times cheaper ``%%track`` is than each peer, in the loop and whole."""
    track = figures["track"]
    return {
        f"{name}_over_track": {
            "loop": figure["loop_us_per_step"] / track["loop_us_per_step"],
            "cell": figure["cell_s_for_10000_steps"] / track["cell_s_for_10000_steps"],
        }
        for name, figure in figures.items() if name != "track"
    }


LABELS = {
    "track": "`%%track` (mlmagic)",
    "wandb": "W&B offline, `wandb.log`",
    "mlflow_async": "MLflow async, `log_metric(synchronous=False)`",
    "mlflow_async_buffered": "same, `MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS=1`",
    "mlflow_plain": "plain MLflow, `log_metric`",
}


def table(figures: dict) -> str:
    """The figures as a Markdown table."""
    rows = ["| way | in the loop, per step | whole cell, 10,000 steps "
            "| vs `%%track` (loop / cell) |", "|---|---|---|---|"]
    for name, label in LABELS.items():
        if name not in figures:
            continue
        figure, ratio = figures[name], figures.get(f"{name}_over_track")
        note = f" ({figure['steps']:,} steps, scaled)" if figure["steps"] != STEPS else ""
        versus = f"{ratio['loop']:.0f}x / {ratio['cell']:.2f}x" if ratio else ""
        rows.append(f"| {label}{note} | {figure['loop_us_per_step']:.1f} µs | "
                    f"{figure['cell_s_for_10000_steps']:.2f} s | {versus} |")
    return "\n".join(rows)


if __name__ == "__main__":
    results = measure()
    print(table(results))
    print(json.dumps(results, indent=2))
