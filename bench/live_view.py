"""The cost of the live summary: a logging-heavy tracked cell (10,000 points) in a real
Jupyter kernel, with the live summary refreshed every 0.5 s and with it off."""

from __future__ import annotations

import json
import tempfile
import time

from _common import alternate, clean_environment

CELL = (
    "%%track\n"
    "import mlflow\n"
    "for step in range(10_000):\n"
    "    mlflow.log_metric('loss', 1.0 / (step + 1), step=step)\n"
)


def measure(rounds: int = 9) -> dict:
    """Median seconds of the cell with and without the live summary, and their ratio."""
    from jupyter_client.manager import start_new_kernel

    with tempfile.TemporaryDirectory() as folder:
        manager, client = start_new_kernel(
            kernel_name="python3", cwd=folder, env=clean_environment()
        )
        try:
            client.execute_interactive(
                "%load_ext mlmagic\n%aml_connect", timeout=300, output_hook=lambda m: None
            )

            def run(interval: float) -> float:
                client.execute_interactive(f"%config MlMagic.live_interval = {interval}",
                                           output_hook=lambda m: None)
                started = time.perf_counter()
                reply = client.execute_interactive(CELL, timeout=300, output_hook=lambda m: None)
                assert reply["content"]["status"] == "ok", reply["content"]
                return time.perf_counter() - started

            seconds = alternate({"live": lambda: run(0.5), "off": lambda: run(0)}, rounds)
        finally:
            client.stop_channels()
            manager.shutdown_kernel(now=True)
    return {
        "live_s": seconds["live"],
        "off_s": seconds["off"],
        "live_over_off": seconds["live"] / seconds["off"],
    }


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
