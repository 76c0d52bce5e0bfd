"""Execute a notebook headless in a real Jupyter kernel, then say where its runs went.

    python notebooks/run.py [NOTEBOOK]      # default: notebooks/quickstart.ipynb

The kernel runs in the current directory, so with nothing configured the runs land in the
embedded store there (mlflow.db and mlruns/). The executed copy is written beside the
notebook as NAME.out.ipynb.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

HERE = Path(__file__).resolve().parent


def execute(notebook: Path, workdir: Path) -> Path:
    """Run every cell of ``notebook`` in a fresh kernel started in ``workdir``."""
    nb = nbformat.read(notebook, as_version=4)
    NotebookClient(nb, timeout=600, resources={"metadata": {"path": str(workdir)}}).execute()
    executed = notebook.with_suffix(".out.ipynb")
    nbformat.write(nb, executed)
    return executed


def describe_store(workdir: Path) -> str:
    """Where runs go from ``workdir``, as the notebook's %aml_connect resolved it."""
    from mlflow import MlflowClient

    from mlmagic.base.config import resolve_settings
    from mlmagic.base.secrets import redact_uri
    from mlmagic.core import embedded_uri

    uri = resolve_settings(workdir).tracking_uri or embedded_uri(workdir)
    client = MlflowClient(tracking_uri=uri)
    lines = [f"Runs are in {redact_uri(uri)}"]
    for experiment in client.search_experiments():
        found = client.search_runs([experiment.experiment_id], max_results=1000)
        if found:
            lines.append(f"  experiment '{experiment.name}': {len(found)} runs")
    for model in client.search_registered_models():
        versions = client.search_model_versions(f"name = '{model.name}'")
        lines.append(f"  registered model '{model.name}': {len(versions)} version(s)")
    if uri.startswith("sqlite:"):
        lines.append(f"Browse them: mlflow ui --backend-store-uri {uri}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    notebook = Path(argv[0]) if argv else HERE / "quickstart.ipynb"
    workdir = Path.cwd()
    started = time.perf_counter()
    try:
        executed = execute(notebook, workdir)
    except CellExecutionError as error:
        print(f"{notebook} failed:\n{error}", file=sys.stderr)
        return 1
    print(f"Executed {notebook} in {time.perf_counter() - started:.1f} s -> {executed}")
    print(describe_store(workdir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
