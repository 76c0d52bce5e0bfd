"""Tracking: a block of code (a notebook cell) becomes one MLflow run."""

from __future__ import annotations

import contextlib
import numbers
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from mlmagic.base.checks import checked_model_name, checked_params
from mlmagic.base.display import Card, card, format_duration, notify, silenced
from mlmagic.base.errors import InvalidInput, NotFound
from mlmagic.base.failures import (
    LOGGED_MODELS_ADVICE,
    explain,
    logged_models_missing,
    network_failure,
)
from mlmagic.base.library_log import NO_RUN_LINKS
from mlmagic.base.secrets import (
    error_line,
    is_secret_name,
    mask_secret_literals,
    scrub,
    secret_literals,
)
from mlmagic.core.connection import ensure_connected, experiment_id_of
from mlmagic.core.interactive import interactive
from mlmagic.core.interrupts import deferred_interrupts, run_to_end
from mlmagic.core.mirror import Mirror, linked_tags, new_link, start_mirror
from mlmagic.core.notebook import notebook_path
from mlmagic.core.provenance import ARTIFACTS as PROVENANCE_ARTIFACTS
from mlmagic.core.provenance import checked_parts, keep_provenance, options_tag
from mlmagic.core.recorder import (
    Recorder,
    active_recorder,
    masked,
    start_recording,
    stop_recording,
)
from mlmagic.core.registry import checked_registry_name
from mlmagic.core.session import RunListener, TrackedRun, current_session
from mlmagic.core.sink import (
    SHORT_RETRIES,
    STORE_LOGGERS,
    RunSink,
    temporary_env,
)

if TYPE_CHECKING:
    from mlflow import ActiveRun
    from mlflow.entities import Run


SOURCE_ARTIFACT = "cell.py"
# Closing a run whose store already failed: one quick try (it pops MLflow's active run).
OFFLINE_LIMITS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "2"}
TRACEBACK_ARTIFACT = "traceback.txt"



def add_run_listener(listener: RunListener) -> Callable[[], None]:
    """Call ``listener(event, run)`` when a tracked block has started its run (event
    "started") and when the run is closed (event "ended"); ``run`` is the session's
    TrackedRun. Returns the function that removes the listener. A failing listener is one
    line and never fails the block."""
    listeners = current_session().listeners
    listeners.append(listener)

    def remove() -> None:
        if listener in listeners:
            listeners.remove(listener)

    return remove


def _announce(event: str, tracked: TrackedRun) -> None:
    for listener in list(current_session().listeners):
        try:
            listener(event, tracked)
        except Exception as error:
            notify(f"a run listener failed on '{event}': {type(error).__name__}: {error}")


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
    register: str | None = None,
    provenance: Iterable[str] = (),
) -> Iterator[ActiveRun]:
    """Run the block inside a new MLflow run and record its outcome.

    Plain ``mlflow.log_*`` calls in the block write to this run, buffered and batched (see
    :mod:`mlmagic.core.recorder`); all of it is in the store, or in the offline journal,
    before the run is closed. ``source`` is logged as the artifact ``cell.py`` (string
    literals given to secret-named variables masked); ``capture`` names variables of
    ``namespace`` to log after the block (numbers as metrics, other scalars as params;
    secret-looking names never). Params and tags with secret-looking names are logged as ***.
    The run ends FINISHED, FAILED (traceback logged, exception re-raised unchanged) or KILLED
    (on KeyboardInterrupt); closing it runs to its end whatever interrupts or store errors
    come, so no run the block started is left active. ``register`` names a registered model:
    after a FINISHED run, the model it logged becomes a new version (``last_registered()``).
    ``quiet`` leaves out MLflow's own "View run" lines, for callers that show
    ``last_run_summary()`` instead, or nothing (``%%track`` always). ``provenance`` names
    what else to keep so that the run can be made again (:mod:`mlmagic.core.provenance`):
    "notebook", "history", "git", "environment". Everything named is checked before the run
    starts.
    """
    import mlflow

    outer = mlflow.active_run()
    if outer is not None and not nested:
        raise InvalidInput(
            f"the run {outer.info.run_id} is still active. End it with mlflow.end_run(), "
            "or use --nested (nested=True) to track this cell inside it."
        )
    said: set = set()
    params = checked_params(masked(params or {}, "param", said), "param")
    tags = checked_params(masked(tags or {}, "tag", said), "tag")
    capture = _checked_variable_names(capture)
    provenance = checked_parts(provenance)
    register = checked_model_name(register) if register is not None else None
    connection = ensure_connected()
    if register is not None:  # the registry's own rules (Unity Catalog's) need the connection
        register = checked_registry_name(register)
    experiment_id = (
        experiment_id_of(experiment, create=True) if experiment else connection.experiment_id
    )
    tags = {**_source_tags(namespace), **tags, **(new_link() if connection.mirror else {}),
            **(options_tag(params, capture, autolog) if provenance else {})}
    with deferred_interrupts() as start_interrupted:
        run, sink = _start_run(connection, name, experiment_id, nested, tags, autolog)
        tracked = current_session().last_tracked = TrackedRun(
            sink.run_id, run.info.run_name if run else name or "(unnamed)", experiment_id,
            connection.tracking_uri, run.info.start_time if run else int(time.time() * 1000),
        )
        mirror = connection.mirror and _start_mirror(connection, experiment, run, sink, tags,
                                                     tracked)
        recorder = Recorder(sink.run_id, _writer(sink, mirror))
        recorder.masked_keys |= said
        start_recording(recorder)
        recorder.start()
    uploads: list[threading.Thread | None] = []
    status, advice = "FAILED", None
    try:
        if start_interrupted.seen:
            raise KeyboardInterrupt
        if source:
            uploads += _keep_texts(sink, run, mirror, mask_secret_literals(source),
                                   SOURCE_ARTIFACT)
        if provenance:
            provenance = keep_provenance(provenance, namespace, source, connection.tracking_uri,
                                         partial(_keep_texts, sink, run, mirror,
                                                 background=False), recorder.set_tag)
        _announce("started", tracked)
        for key, value in params.items():
            recorder.log_param(key, value)
        yield run
        if capture:
            log_variables(capture, namespace or {})
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except BaseException as error:
        text = scrub("".join(traceback.format_exception(error)), connection.tracking_uri,
                     secret_literals(source or ""))
        uploads += _keep_texts(sink, run, mirror, text, TRACEBACK_ARTIFACT)
        advice = LOGGED_MODELS_ADVICE if logged_models_missing(error) else None
        raise
    finally:
        closing = partial(_close, tracked, recorder, sink, outer, status, quiet, uploads,
                          autolog, mirror, provenance)
        if run_to_end(closing) and status == "FINISHED":
            notify("the interrupt came while the finished cell's run was being closed; the run "
                   "is complete (FINISHED).")
        if advice:
            notify(advice)
    if register is not None:
        tracked.registered = _register_logged_model(register, tracked)


def last_registered():
    """The model version that the last tracked block registered (``register=``), or None."""
    tracked = current_session().last_tracked
    return tracked.registered if tracked is not None else None


def _register_logged_model(name: str, tracked: TrackedRun):
    """Register the model the finished run logged; a registration that cannot be made is
    one line that says the run is kept."""
    from mlmagic.core.registry import register

    if tracked.run_id is None:
        raise InvalidInput(f"the run is in the offline journal, so '{name}' was not "
                           "registered. After %aml_sync: %aml_register " + name)
    try:
        return register(name, run=tracked.run_id, path=None)
    except (InvalidInput, NotFound) as error:
        kept = f"The run {tracked.run_name} is kept ({tracked.status})."
        raise type(error)(f"{error} {kept}") from None


def _close(tracked, recorder, sink, outer, status, quiet, uploads, autolog, mirror,
           provenance) -> None:
    """Close a tracked run (and its mirror): every step is tried, whatever the ones before
    did."""
    import mlflow

    if isinstance(provenance, threading.Thread):  # its tags go in the recorder's last batch
        provenance.join()
    stop_recording(recorder)
    if autolog:
        _try(lambda: mlflow.autolog(disable=True), "turning autolog off")
    recorder.close()
    sink.drain()
    _close_run(sink, outer.info.run_id if outer else None, status, quiet)
    for upload in uploads:
        if upload is not None:
            upload.join()
    tracked.status, tracked.end_time = status, int(time.time() * 1000)
    sink.end(status, tracked.end_time)
    sink.retry()
    if mirror:
        mirror.close(status, tracked.end_time, None if sink.offline else sink.run_id,
                     sink.connection.client(),
                     {SOURCE_ARTIFACT, TRACEBACK_ARTIFACT, *PROVENANCE_ARTIFACTS})
        tracked.linked_url = mirror.url
    for each in filter(None, (sink, mirror and mirror.sink)):
        if not each.saved:
            _hold(each, tracked)
    tracked.metrics = recorder.last_metrics
    tracked.complete = not (recorder.bypassed or autolog)
    tracked.journal = sink.journal.path if sink.offline and sink.journal else None
    _announce("ended", tracked)


def _hold(sink: RunSink, tracked: TrackedRun) -> None:
    """Keep in memory what neither the sink's store nor the journal took, and say so."""
    current_session().held.append(sink)
    notify(f"{sink.unsaved_points()} point(s) of the run {tracked.run_name} are not saved "
           f"yet: {sink.unsaved_reason()}. They are kept in memory while this kernel "
           "runs; %aml_sync tries again.")


def _start_mirror(connection, experiment, run, sink, tags, tracked) -> Mirror | None:
    """Start the run's mirror (--track both); the run gets the tags that point at it. A
    mirror that cannot start at all (its store's failures only send it to the journal) is
    one line, and the run goes on unmirrored: the mirror never fails the cell."""
    from mlflow.entities import RunTag
    from mlflow.tracking.context.registry import resolve_tags

    start_tags = run.data.tags if run else resolve_tags(tags)
    try:
        mirror = start_mirror(connection, experiment, tracked.run_name, tracked.start_time,
                              start_tags, sink.run_id, tracked.experiment_id)
    except Exception as error:
        notify(f"the run {tracked.run_name} is not mirrored into "
               f"{connection.mirror.backend.name}: {error_line(error)}")
        return None
    pointers = linked_tags(mirror.connection, mirror.run_id, mirror.experiment_id)
    sink.write_batch([], [], [RunTag(key, value) for key, value in pointers.items()])
    return mirror


def _writer(sink: RunSink, mirror: Mirror | None):
    """Where the recorder's batches go: the run's sink, and its mirror's."""
    if not mirror:
        return sink.write_batch

    def write_both(metrics: list, params: list, tags: list) -> None:
        sink.write_batch(metrics, params, tags)
        mirror.sink.write_batch(metrics, params, tags)

    return write_both


def _try(step: Callable[[], object], doing: str) -> None:
    try:
        step()
    except Exception as error:
        notify(f"{doing} failed: {type(error).__name__}: {error_line(error)}")


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


@interactive
def last_run() -> Run | None:
    """The run of the last tracked block, fresh from its store (MLflow's ``Run``), or None."""
    tracked = current_session().last_tracked
    if tracked is None or tracked.run_id is None:
        return None
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracked.tracking_uri).get_run(tracked.run_id)


def last_run_summary() -> Card | None:
    """A card for the last tracked run, from what the session saw (the store is asked only
    when something was logged around mlmagic, e.g. by autolog)."""
    tracked = current_session().last_tracked
    if tracked is None:
        return None
    if not tracked.complete and tracked.journal is None:
        return run_summary(last_run())
    duration = tracked.end_time - tracked.start_time if tracked.end_time else None
    return _summary_card(
        tracked.run_name, tracked.run_id, tracked.experiment_id, tracked.status, duration,
        tracked.metrics, tracked.journal, tracked.linked_url,
    )


def running_summary() -> Card | None:
    """A card for the tracked run in progress: its metrics so far and the time it has taken."""
    recorder, tracked = active_recorder(), current_session().last_tracked
    if recorder is None or tracked is None or tracked.end_time is not None:
        return None
    return _summary_card(
        tracked.run_name, tracked.run_id, tracked.experiment_id, "RUNNING",
        int(time.time() * 1000) - tracked.start_time, recorder.last_metrics,
    )


def run_summary(run: Run) -> Card:
    """A card for a run: name, id, status, duration, the metrics' last values, link."""
    info = run.info
    duration = info.end_time - info.start_time if info.end_time else None
    return _summary_card(
        info.run_name, info.run_id, info.experiment_id, info.status, duration, run.data.metrics
    )


def _summary_card(name, run_id, experiment_id, status, duration, metrics, journal=None,
                  linked_url=None):
    connection = current_session().connection
    url = connection.run_url(run_id, experiment_id) if connection and run_id else None
    shown = ", ".join(f"{key}={value:.6g}" for key, value in sorted(metrics.items()))
    return card(
        f"run {name}: {status}" + (" (offline)" if journal else ""),
        ("run id", run_id),
        ("duration", format_duration(duration)),
        ("metrics", shown),
        ("link", url),
        ("linked run", linked_url),
        ("journal", f"{journal} (%aml_sync sends it)" if journal else None),
    )


def _start_run(connection, name, experiment_id, nested, tags, autolog: bool
               ) -> tuple[ActiveRun | None, RunSink]:
    """Start the run; if its store cannot be reached, plan to create it from the journal.
    A refusal (401, 403) is one line, and no run is started. ``autolog`` turns on
    ``mlflow.autolog()`` before any of the run's threads starts: it imports MLflow's
    integrations under the lock of MLflow's import hooks, and a thread importing meanwhile
    would take that lock and an import lock in the other order (see
    :func:`mlmagic.core.sink.prepare_writer_threads`)."""
    import mlflow

    try:
        with temporary_env(SHORT_RETRIES):
            run = mlflow.start_run(
                run_name=name, experiment_id=experiment_id, nested=nested, tags=tags
            )
    except Exception as error:
        if network_failure(error) is None:
            raise explain(error, connection.tracking_uri) or error from None
        from mlflow.tracking.context.registry import resolve_tags

        plan = {
            "experiment_id": experiment_id, "run_name": name,
            "start_time": int(time.time() * 1000), "tags": resolve_tags(tags),
        }
        sink = RunSink(connection, None, plan)
        sink.go_offline(error)
        return None, sink
    sink = RunSink(connection, run.info.run_id, {"experiment_id": experiment_id,
                                                 "run_name": run.info.run_name,
                                                 "start_time": run.info.start_time})
    try:
        if autolog:
            mlflow.autolog(silent=True)
        sink.start()
    except BaseException:
        with contextlib.suppress(Exception):
            mlflow.end_run("FAILED")  # no run is left RUNNING
        raise
    return run, sink


def _close_run(sink: RunSink, outer_id: str | None, status: str, quiet: bool) -> None:
    """End the runs the block left open, then its own. If the store does not take the end
    (or already failed during the run), the end goes to the journal with the rest."""
    if sink.run_id is None:
        return
    quiet_links = NO_RUN_LINKS if quiet else {}
    limits = OFFLINE_LIMITS if sink.offline else SHORT_RETRIES
    try:
        with temporary_env({**limits, **quiet_links}), silenced(STORE_LOGGERS):
            failure = _end_runs(sink.run_id, outer_id, status)
    except Exception as error:
        failure = error
    if failure is not None:
        sink.go_offline(failure)


def _end_runs(run_id: str, outer_id: str | None, status: str) -> Exception | None:
    """End the runs the block left open and its own; the first failure, if any (returned,
    not raised: raised here, it would lose the network error it wraps to the exception the
    block is failing with)."""
    import mlflow

    failures = []
    while (active := mlflow.active_run()) and active.info.run_id != outer_id:
        ours = active.info.run_id == run_id
        try:
            mlflow.end_run(status)  # pops the run first, so none is left active on failure
        except Exception as error:
            failures.append(error)
        if ours:
            break
    else:  # the block ended its run itself: record the real outcome
        try:
            mlflow.MlflowClient().set_terminated(run_id, status, int(time.time() * 1000))
        except Exception as error:
            failures.append(error)
    return failures[0] if failures else None


def _keep_texts(sink: RunSink, run, mirror: Mirror | None, text: str, name: str,
                background: bool = True) -> list[threading.Thread | None]:
    """Keep ``text`` as the artifact ``name`` of the run, and of its mirror (uploaded in
    threads of their own, or, not ``background``, in this one)."""
    kept = [_keep_text(sink, run, text, name, background)]
    if mirror:
        kept.append(_keep_text(mirror.sink, mirror.run, text, name, background))
    return kept


def _keep_text(sink: RunSink, run, text: str, name: str, background: bool = True
               ) -> threading.Thread | None:
    """Keep ``text`` as the artifact ``name``: uploaded, or journaled."""
    if sink.offline:
        sink.keep_artifact(name, text)
        return None
    if not background:
        _upload(sink, run, text, name)
        return None
    thread = threading.Thread(target=_upload, args=(sink, run, text, name), daemon=True)
    thread.start()
    return thread


def _upload(sink: RunSink, run: ActiveRun, text: str, name: str) -> None:
    """Log ``text`` as the artifact ``name``, straight to the run's artifact store (no lookup
    of the run first), so that it costs the cell no round trip; journaled if it fails."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    try:
        repository = get_artifact_repository(run.info.artifact_uri, sink.connection.tracking_uri)
        if isinstance(repository, LocalArtifactRepository):  # a folder: write in place
            folder = Path(repository.artifact_dir)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text, encoding="utf-8")
            return
        with tempfile.TemporaryDirectory() as folder, temporary_env(SHORT_RETRIES):
            path = Path(folder) / name
            path.write_text(text, encoding="utf-8")
            repository.log_artifact(str(path))
    except Exception as error:
        sink.keep_artifact(name, text, error)


def _source_tags(namespace: Mapping | None) -> dict[str, str]:
    path = notebook_path(namespace)
    return {"mlflow.source.name": path, "mlflow.source.type": "NOTEBOOK"} if path else {}


def _checked_variable_names(names: Iterable[str]) -> list[str]:
    names = list(names)
    bad = [name for name in names if not str(name).isidentifier()]
    if bad:
        raise InvalidInput(f"capture expects variable names, got {bad}. Example: acc, loss")
    return names


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


