"""How much `%load_ext mlmagic` costs, in fresh processes, next to `import mlflow`."""

from __future__ import annotations

import json
import subprocess
import sys

from _common import alternate

LOAD_EXT = """
import json, time
started = time.perf_counter()
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
loaded_ipython = time.perf_counter()
shell.run_line_magic("load_ext", "mlmagic")
done = time.perf_counter()
print(json.dumps([loaded_ipython - started, done - loaded_ipython]))
"""
IMPORT_MLFLOW = """
import json, time
started = time.perf_counter()
import mlflow
print(json.dumps(time.perf_counter() - started))
"""


def _in_fresh_process(code: str):
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def measure(rounds: int = 7) -> dict:
    """Median seconds of IPython + shell, of load_ext on top, and of import mlflow."""
    seen: dict[str, list[float]] = {"ipython": [], "load_ext": []}

    def load_ext() -> float:
        ipython, load = _in_fresh_process(LOAD_EXT)
        seen["ipython"].append(ipython)
        seen["load_ext"].append(load)
        return load

    medians = alternate(
        {"load_ext": load_ext, "import_mlflow": lambda: _in_fresh_process(IMPORT_MLFLOW)},
        rounds,
    )
    ipython = sorted(seen["ipython"])[len(seen["ipython"]) // 2]
    return {
        "import_ipython_and_shell_s": ipython,
        "load_ext_s": medians["load_ext"],
        "import_mlflow_s": medians["import_mlflow"],
        "load_ext_over_import_mlflow": medians["load_ext"] / medians["import_mlflow"],
    }


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
