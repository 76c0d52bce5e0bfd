"""Tracking: a block of code (a notebook cell) becomes one MLflow run."""

from __future__ import annotations

import numbers
import os
import time
import traceback
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from mlmagic.core.connection import ensure_connected, experiment_id_of
from mlmagic.core.display import card, format_duration, notify
from mlmagic.core.notebook import notebook_path
from mlmagic.core.secrets import is_secret_name
from mlmagic.core.state import STATE
from mlmagic.errors import InvalidInput

if TYPE_CHECKING:
    from mlflow import ActiveRun
    from mlflow.entities import Run

    from mlmagic.core.display import Card

SOURCE_ARTIFACT = "cell.py"
TRACEBACK_ARTIFACT = "traceback.txt"


@contextmanager
def track(
    name: str | None = None,
    *,
    experiment: str | None = None,
    params: Mapping[str, object] | None = None,
    tags: Mapping[str, str] | None = None,
    source: str | None = None,
    capture: Iterable[str] = (),
    namespace: Mapping[str, object] | None = None,
    autolog: bool = False,
    nested: bool = False,
    quiet: bool = False,
) -> Iterator[ActiveRun]:
    """Run the block inside a new MLflow run and record its outcome.

    Plain ``mlflow.log_*`` calls in the block write to this run. ``source`` is logged as the
    artifact ``cell.py``; ``capture`` names variables of ``namespace`` to log after the block
    (numbers as metrics, other scalars as params; secret-looking names never). The run ends
    FINISHED, FAILED (traceback logged, exception re-raised unchanged) or KILLED (on
    KeyboardInterrupt), and no run that the block started is left active. ``quiet`` leaves
    out MLflow's own "View run" lines, for callers that show ``run_summary`` instead.
    """
    import mlflow

    outer = mlflow.active_run()
    if outer is not None and not nested:
        raise InvalidInput(
            f"the run {outer.info.run_id} is still active. End it with mlflow.end_run(), "
            "or use --nested (nested=True) to track this cell inside it."
        )
    connection = ensure_connected()
    experiment_id = experiment_id_of(experiment, create=True) if experiment else None
    params = _without_secrets(params or {}, "param")
    tags = {**_source_tags(namespace), **_without_secrets(tags or {}, "tag")}
    run = mlflow.start_run(
        run_name=name, experiment_id=experiment_id or connection.experiment_id,
        nested=nested, tags=tags,
    )
    run_id = run.info.run_id
    STATE.last_run_id, STATE.last_run_uri = run_id, connection.tracking_uri
    status = "FAILED"
    try:
        if params:
            mlflow.log_params({key: str(value) for key, value in params.items()})
        if source is not None:
            mlflow.log_text(source, SOURCE_ARTIFACT)
        if autolog:
            mlflow.autolog(silent=True)
        yield run
        if capture:
            log_variables(capture, namespace or {})
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except BaseException as error:
        _log_traceback(error, run_id)
        raise
    finally:
        if autolog:
            mlflow.autolog(disable=True)
        with _suppressed_run_links(quiet):
            _end_run(run_id, outer.info.run_id if outer else None, status)


def log_variables(names: Iterable[str], namespace: Mapping[str, object]) -> None:
    """Log variables of ``namespace`` to the active run: numbers as metrics, scalars as params.

    Secret-looking names, missing names and non-scalar values are skipped with one line each.
    """
    import mlflow

    metrics, params = {}, {}
    for name in names:
        if is_secret_name(name):
            notify(f"'{name}' looks like a secret; it was not logged.")
        elif name not in namespace:
            notify(f"'{name}' is not defined; nothing logged for it.")
        elif _is_number(namespace[name]):
            metrics[name] = float(namespace[name])
        elif isinstance(namespace[name], (str, bool)) or namespace[name] is None:
            params[name] = str(namespace[name])
        else:
            kind = type(namespace[name]).__name__
            notify(f"'{name}' is a {kind}, not a number or a scalar; it was not logged.")
    if metrics:
        mlflow.log_metrics(metrics)
    if params:
        mlflow.log_params(params)


def last_run() -> Run | None:
    """The run of the last tracked block, fresh from its store (MLflow's ``Run``), or None."""
    if STATE.last_run_id is None:
        return None
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=STATE.last_run_uri).get_run(STATE.last_run_id)


def run_summary(run: Run) -> Card:
    """A card for a run: name, id, status, duration, the metrics' last values, link."""
    info = run.info
    duration = info.end_time - info.start_time if info.end_time else None
    connection = STATE.connection
    url = connection.run_url(info.run_id, info.experiment_id) if connection else None
    metrics = ", ".join(f"{key}={_short(value)}" for key, value in sorted(run.data.metrics.items()))
    return card(
        f"run {info.run_name}: {info.status}",
        ("run id", info.run_id),
        ("duration", format_duration(duration)),
        ("metrics", metrics),
        ("link", url),
    )


def _end_run(run_id: str, outer_id: str | None, status: str) -> None:
    import mlflow

    while (active := mlflow.active_run()) and active.info.run_id not in (run_id, outer_id):
        mlflow.end_run(status)  # a run the block started and left open
    if (active := mlflow.active_run()) and active.info.run_id == run_id:
        mlflow.end_run(status)
    else:  # the block ended our run itself; record the real outcome
        mlflow.MlflowClient().set_terminated(run_id, status, end_time=int(time.time() * 1000))


@contextmanager
def _suppressed_run_links(suppress: bool) -> Iterator[None]:
    variable = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"
    before = os.environ.get(variable)
    if suppress:
        os.environ[variable] = "true"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = before


def _log_traceback(error: BaseException, run_id: str) -> None:
    import mlflow

    try:
        text = "".join(traceback.format_exception(error))
        mlflow.log_text(text, TRACEBACK_ARTIFACT, run_id=run_id)
    except Exception as logging_error:
        notify(f"could not log the traceback: {logging_error}")


def _source_tags(namespace: Mapping | None) -> dict[str, str]:
    path = notebook_path(namespace)
    return {"mlflow.source.name": path, "mlflow.source.type": "NOTEBOOK"} if path else {}


def _without_secrets(values: Mapping[str, object], kind: str) -> dict:
    kept = {}
    for key, value in values.items():
        if is_secret_name(key):
            notify(f"the {kind} '{key}' looks like a secret; it was not logged.")
        else:
            kept[key] = value
    return kept


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _short(value: float) -> str:
    return f"{value:.6g}"
