"""Listing experiments and runs, and the metric histories of runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mlmagic.base.config import DEFAULT_MAX_RUNS
from mlmagic.base.errors import InvalidInput, NotFound
from mlmagic.base.failures import explain
from mlmagic.base.secrets import error_line
from mlmagic.core.connection import ensure_connected, experiment_id_of
from mlmagic.core.interactive import interactive

if TYPE_CHECKING:
    import pandas as pd

HISTORY_COLUMNS = ["run_id", "key", "step", "timestamp", "value"]


@interactive
def experiments() -> list[str]:
    """The names of the experiments (not deleted) in the current store, sorted."""

    client = ensure_connected().client()
    return sorted(experiment.name for experiment in client.search_experiments())


@interactive
def metric_history(run_ids: Sequence[str], key: str | None = None) -> pd.DataFrame:
    """Every logged point of the metric ``key`` (None: of each metric) of the runs, as a
    DataFrame with the columns run_id, key, step, timestamp, value, in step order."""
    import pandas as pd

    client = _client()
    rows = []
    for run_id in run_ids:
        keys = [key] if key else sorted(stored_run(client, run_id).data.metrics)
        for name in keys:
            rows += [(run_id, name, m.step, m.timestamp, m.value)
                     for m in client.get_metric_history(run_id, name)]
    frame = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
    return frame.sort_values(["run_id", "key", "step", "timestamp"], ignore_index=True)


def _client():

    return ensure_connected().client()


def stored_run(client, run_id: str):
    """The run ``run_id`` from the client's store; NotFound (one line) if there is none."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException as error:
        if error.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
        raise NotFound(f"no run with id '{run_id}' in this store. Check the id, or list "
                       "runs with %aml_runs.") from None


def run_artifact_paths(run, tracking_uri: str, folder: str | None = None) -> list[str]:
    """Every file the run keeps among its artifacts (under ``folder``), read from its artifact
    store: MLflow 3's own listing also asks the logged-models API, which some stores lack
    (Azure ML's answered 404 through 2026), and never lists MLflow 3's logged models anyway."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repository = get_artifact_repository(run.info.artifact_uri, tracking_uri=tracking_uri)

    def files(under: str | None) -> list[str]:
        found = []
        for item in repository.list_artifacts(under):
            found += files(item.path) if item.is_dir else [item.path]
        return found

    return files(folder)


@interactive
def runs(
    experiment: str | None = None,
    *,
    filter_string: str | None = None,
    order_by: Sequence[str] | None = None,
    max_results: int = DEFAULT_MAX_RUNS,
) -> pd.DataFrame:
    """The runs of an experiment (the current one by default) as a pandas DataFrame.

    ``filter_string`` and ``order_by`` use MLflow's search syntax, e.g.
    ``"metrics.accuracy > 0.9"`` and ``["metrics.accuracy DESC"]``.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    if max_results < 1:
        raise InvalidInput(f"--max must be at least 1, got {max_results}.")
    connection = ensure_connected()
    experiment_id = experiment_id_of(experiment) if experiment else connection.experiment_id
    try:
        return mlflow.search_runs(
            experiment_ids=[experiment_id],
            filter_string=filter_string or "",
            order_by=list(order_by) if order_by else None,
            max_results=max_results,
        )
    except MlflowException as error:
        if explain(error, connection.tracking_uri) is not None:
            raise
        raise InvalidInput(
            f"MLflow rejected the search: {error_line(error)}. Filter example: "
            "metrics.accuracy > 0.9 and params.lr = '0.1'; order example: 'metrics.accuracy DESC'."
        ) from None
