"""10,000 `mlflow.log_metric` calls: under `%%track`, in a plain `mlflow.start_run()`, and as
hand-written `log_batch` calls, on SQLite and on a local `mlflow server` over HTTP.

Plain MLflow pays a store round trip per point, so it runs PLAIN_POINTS points and is
compared per point; the others run all POINTS.
"""

from __future__ import annotations

import json
import time

from _common import alternate, backends, run_quietly, tracked_shell

POINTS = 10_000
PLAIN_POINTS = 500
LOOP = "for step in range({n}):\n    mlflow.log_metric('loss', 1.0 / (step + 1), step=step)\n"


def measure(rounds: int = 3) -> dict:
    """Per-point milliseconds of each way of logging, by backend, and the ratios."""
    import mlflow
    from mlflow.entities import Metric

    shell = tracked_shell()
    figures = {}
    with backends() as uris:
        for backend, uri in uris.items():
            run_quietly(shell, f"%aml_connect {uri} --experiment bench-logging")

            def tracked() -> None:
                run_quietly(shell, "%%track\nimport mlflow\n" + LOOP.format(n=POINTS))

            def plain() -> None:
                with mlflow.start_run():
                    for step in range(PLAIN_POINTS):
                        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)

            def log_batch() -> None:
                client = mlflow.MlflowClient()
                with mlflow.start_run() as run:
                    now = int(time.time() * 1000)
                    points = [Metric("loss", 1.0 / (s + 1), now, s) for s in range(POINTS)]
                    for start in range(0, POINTS, 1000):
                        client.log_batch(run.info.run_id, metrics=points[start:start + 1000])

            seconds = alternate({"track": tracked, "plain": plain, "log_batch": log_batch}, rounds)
            per_point = {
                "track_ms": seconds["track"] / POINTS * 1000,
                "plain_ms": seconds["plain"] / PLAIN_POINTS * 1000,
                "log_batch_ms": seconds["log_batch"] / POINTS * 1000,
            }
            figures[backend] = {
                **per_point,
                "plain_over_track": per_point["plain_ms"] / per_point["track_ms"],
                "track_over_log_batch": per_point["track_ms"] / per_point["log_batch_ms"],
            }
    return figures


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
