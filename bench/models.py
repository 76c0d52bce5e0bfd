"""A local endpoint: time from deploy to ready, and p50 / p95 latency of 1-row and 100-row
requests. Batch scoring: rows per second for 1,000,000 rows, pandas pyfunc vs a Spark pandas
UDF on local[2], in one run."""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

ROWS = 1_000_000
REQUESTS = 200


def _registered_model() -> str:
    import mlflow
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    import mlmagic

    frame = pd.DataFrame({"rooms": np.arange(1.0, 101.0), "age": np.arange(100.0, 0.0, -1.0)})
    with mlmagic.track("bench-model"):
        reg = LinearRegression().fit(frame, 10 * frame["rooms"] - frame["age"])
        mlflow.sklearn.log_model(reg, name="model", input_example=frame.head(2),
                                 pip_requirements=["scikit-learn"])
    mlmagic.register("bench-price", run="last")
    return "bench-price"


def _percentiles(seconds: list[float]) -> dict:
    ordered = sorted(seconds)
    return {"p50_ms": statistics.median(ordered) * 1000,
            "p95_ms": ordered[int(len(ordered) * 0.95) - 1] * 1000}


def measure() -> dict:
    """Endpoint readiness and latency, and pandas vs Spark scoring throughput."""
    import numpy as np
    import pandas as pd

    import mlmagic
    from mlmagic.core import score, spark_session

    figures = {}
    with tempfile.TemporaryDirectory() as folder:
        mlmagic.connect(f"sqlite:///{Path(folder) / 'bench.db'}", experiment="bench-models")
        model = _registered_model()
        started = time.perf_counter()
        mlmagic.deploy(model, name="bench")
        figures["deploy_to_ready_s"] = time.perf_counter() - started
        rng = np.random.default_rng(0)
        for rows in (1, 100):
            frame = pd.DataFrame({"rooms": rng.random(rows), "age": rng.random(rows)})
            seconds = []
            for _ in range(REQUESTS):
                started = time.perf_counter()
                mlmagic.predict("bench", frame)
                seconds.append(time.perf_counter() - started)
            figures[f"request_{rows}_rows"] = _percentiles(seconds)
        mlmagic.undeploy("bench")

        big = pd.DataFrame({"rooms": rng.random(ROWS), "age": rng.random(ROWS)})
        started = time.perf_counter()
        score(model, big)
        pandas_seconds = time.perf_counter() - started
        session = spark_session()
        spark_frame = session.createDataFrame(big).repartition(2).cache()
        spark_frame.count()
        started = time.perf_counter()
        score(model, spark_frame).agg({"prediction": "sum"}).collect()
        spark_seconds = time.perf_counter() - started
        figures["score_1m_rows"] = {
            "pandas_rows_per_s": ROWS / pandas_seconds,
            "spark_local2_rows_per_s": ROWS / spark_seconds,
            "spark_over_pandas_time": spark_seconds / pandas_seconds,
        }
    return figures


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
