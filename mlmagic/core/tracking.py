"""Tracking: a block of code (a notebook cell) becomes one MLflow run."""

from __future__ import annotations

import numbers
import os
import tempfile
import threading
import time
import traceback
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from mlmagic.core.connection import ensure_connected, experiment_id_of
from mlmagic.core.display import Card, card, format_duration, notify
from mlmagic.core.notebook import notebook_path
from mlmagic.core.recorder import Recorder, recording
from mlmagic.core.secrets import error_line, is_secret_name
from mlmagic.core.state import STATE, TrackedRun
from mlmagic.errors import InvalidInput

if TYPE_CHECKING:
    from mlflow import ActiveRun
    from mlflow.entities import Run


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

    Plain ``mlflow.log_*`` calls in the block write to this run, buffered and batched (see
    :mod:`mlmagic.core.recorder`); all of it is in the store before the run is closed.
    ``source`` is logged as the artifact ``cell.py``; ``capture`` names variables of
    ``namespace`` to log after the block (numbers as metrics, other scalars as params;
    secret-looking names never). The run ends FINISHED, FAILED (traceback logged, exception
    re-raised unchanged) or KILLED (on KeyboardInterrupt), and no run that the block started
    is left active. ``quiet`` leaves out MLflow's own "View run" lines, for callers that show
    ``last_run_summary()`` instead.
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
    tracked = STATE.last_tracked = TrackedRun(
        run.info.run_id, run.info.run_name, run.info.experiment_id,
        connection.tracking_uri, run.info.start_time,
    )
    client = mlflow.MlflowClient(connection.tracking_uri)
    recorder = Recorder(tracked.run_id, partial(client.log_batch, tracked.run_id))
    uploads = [_upload_text(run, tracked.tracking_uri, source, SOURCE_ARTIFACT)] if source else []
    status = "FAILED"
    try:
        with recording(recorder):
            recorder.start()
            for key, value in params.items():
                recorder.log_param(key, value)
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
        text = "".join(traceback.format_exception(error))
        uploads.append(_upload_text(run, tracked.tracking_uri, text, TRACEBACK_ARTIFACT))
        raise
    finally:
        if autolog:
            mlflow.autolog(disable=True)
        recorder.close()
        with _suppressed_run_links(quiet):
            _end_run(tracked.run_id, outer.info.run_id if outer else None, status)
        for upload in uploads:
            upload.join()
        tracked.status, tracked.end_time = status, int(time.time() * 1000)
        tracked.metrics = recorder.last_metrics
        tracked.complete = not (recorder.bypassed or autolog)


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
    tracked = STATE.last_tracked
    if tracked is None:
        return None
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracked.tracking_uri).get_run(tracked.run_id)


def last_run_summary() -> Card | None:
    """A card for the last tracked run, from what the session saw (the store is asked only
    when something was logged around mlmagic, e.g. by autolog)."""
    tracked = STATE.last_tracked
    if tracked is None:
        return None
    if not tracked.complete:
        return run_summary(last_run())
    duration = tracked.end_time - tracked.start_time if tracked.end_time else None
    return _summary_card(
        tracked.run_name, tracked.run_id, tracked.experiment_id, tracked.status, duration,
        tracked.metrics,
    )


def run_summary(run: Run) -> Card:
    """A card for a run: name, id, status, duration, the metrics' last values, link."""
    info = run.info
    duration = info.end_time - info.start_time if info.end_time else None
    return _summary_card(
        info.run_name, info.run_id, info.experiment_id, info.status, duration, run.data.metrics
    )


def _summary_card(name, run_id, experiment_id, status, duration, metrics) -> Card:
    connection = STATE.connection
    url = connection.run_url(run_id, experiment_id) if connection else None
    shown = ", ".join(f"{key}={value:.6g}" for key, value in sorted(metrics.items()))
    return card(
        f"run {name}: {status}",
        ("run id", run_id),
        ("duration", format_duration(duration)),
        ("metrics", shown),
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


def _upload_text(run: ActiveRun, tracking_uri: str, text: str, name: str) -> threading.Thread:
    """Log ``text`` as the artifact ``name`` in the background, straight to the run's artifact
    store (no lookup of the run first), so that it costs the cell no round trip."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    def upload() -> None:
        try:
            repository = get_artifact_repository(run.info.artifact_uri, tracking_uri)
            if isinstance(repository, LocalArtifactRepository):  # a folder: write in place
                folder = Path(repository.artifact_dir)
                folder.mkdir(parents=True, exist_ok=True)
                (folder / name).write_text(text, encoding="utf-8")
                return
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / name
                path.write_text(text, encoding="utf-8")
                repository.log_artifact(str(path))
        except Exception as error:
            notify(f"could not log {name}: {error_line(error, tracking_uri)}")

    thread = threading.Thread(target=upload, daemon=True)
    thread.start()
    return thread


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


