"""Listing the runs of an experiment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mlmagic.core.connection import ensure_connected, experiment_id_of
from mlmagic.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_MAX_RUNS = 1000


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
        message = error.message.strip().splitlines()[0]
        raise InvalidInput(
            f"MLflow rejected the search: {message}. Filter example: "
            "metrics.accuracy > 0.9 and params.lr = '0.1'; order example: 'metrics.accuracy DESC'."
        ) from None
