"""Fast, lossless logging inside a tracked block.

While a block runs, the fluent calls ``mlflow.log_metric(s)``, ``mlflow.log_param(s)`` and
``mlflow.set_tag(s)`` aimed at its run are validated at once (so a bad value still raises
in the cell) and collected in memory. A background thread writes them with ``log_batch``,
within MLflow's batch limits, every ``FLUSH_SECONDS``; the rest is written when the block
ends, before its run is closed.

MLflow's own async logging was measured first (bench/logging.py): about 4x the cost per point
of a hand-written ``log_batch``, too slow for a per-batch training loop; hence this buffer.
Calls MLflow must handle itself (another run, a logged model or dataset to link, an explicit
``synchronous=True``) go to MLflow unchanged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from mlmagic.base.display import notify
from mlmagic.base.secrets import REDACTED, is_secret_name
from mlmagic.core.session import current_session

FLUSH_SECONDS = 1.0
MAX_ENTITIES = 1000  # MLflow's log_batch limits
MAX_PARAMS_OR_TAGS = 100

WriteBatch = Callable[[list, list, list], None]


class Recorder:
    """The metrics, params and tags of one run, on their way to the store."""

    def __init__(self, run_id: str, write_batch: WriteBatch) -> None:
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.exceptions import MlflowException
        from mlflow.utils.validation import _validate_metric, _validate_param, _validate_tag

        self.run_id = run_id
        self._latest: dict[str, tuple[int, int, float]] = {}  # key: (step, timestamp, value)
        self.params: dict[str, str] = {}
        self.bypassed = False  # something logged to this run without passing through here
        self.masked_keys: set[tuple[str, str]] = set()  # secret-named keys already told of
        self._write_batch = write_batch
        self._metric, self._param, self._tag = Metric, Param, RunTag
        self._validate = (_validate_metric, _validate_param, _validate_tag)
        self._error = MlflowException
        self._pending: tuple[list, list, list] = ([], [], [])
        self._pending_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None

    def log_metric(self, key: str, value: float, step: int | None, timestamp: int | None) -> None:
        """Queue one metric point (validated now, written soon)."""
        timestamp = timestamp or int(time.time() * 1000)
        step = step or 0
        self._validate[0](key, value, timestamp, step)
        metric = self._metric(key, float(value), timestamp, step)
        with self._pending_lock:
            self._pending[0].append(metric)
        latest = (step, timestamp, metric.value)
        if latest >= self._latest.get(key, latest):
            self._latest[key] = latest

    @property
    def last_metrics(self) -> dict[str, float]:
        """Each metric's value at its highest step (then latest time), as MLflow reports it."""
        return {key: value for key, (_, _, value) in self._latest.items()}

    def log_param(self, key: str, value: Any) -> None:
        """Queue a param; changing a param's value raises, as MLflow does."""
        param = self._validate[1](key, str(value))
        if self.params.get(key, param.value) != param.value:
            from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

            raise self._error(
                f"Changing param values is not allowed. Param with key='{key}' was already "
                f"logged with value='{self.params[key]}' for run ID='{self.run_id}'. "
                f"Attempted logging new value '{param.value}'.",
                INVALID_PARAMETER_VALUE,
            )
        if key not in self.params:
            self.params[key] = param.value
            with self._pending_lock:
                self._pending[1].append(param)

    def set_tag(self, key: str, value: Any) -> None:
        """Queue a tag."""
        tag = self._validate[2](key, str(value))
        with self._pending_lock:
            self._pending[2].append(tag)

    def start(self) -> None:
        """Start writing in the background every FLUSH_SECONDS."""
        self._flusher = threading.Thread(target=self._flush_periodically, daemon=True)
        self._flusher.start()

    def close(self) -> None:
        """Stop the background writer and write everything still pending."""
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join()
        self.flush()

    def flush(self) -> None:
        """Write what is pending, in batches MLflow accepts, in the order it was logged."""
        with self._write_lock:
            with self._pending_lock:
                metrics, params, tags = self._pending
                self._pending = ([], [], [])
            for batch in _batches(metrics, params, tags):
                self._write_batch(*batch)

    def _flush_periodically(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            try:
                self.flush()
            except Exception as error:  # the writer must outlive any one failure
                notify(f"writing the run's points failed ({type(error).__name__}: {error}); "
                       "they are written when the run ends.")


def _batches(metrics: list, params: list, tags: list) -> Iterator[tuple[list, list, list]]:
    while metrics or params or tags:
        batch_params, params = params[:MAX_PARAMS_OR_TAGS], params[MAX_PARAMS_OR_TAGS:]
        batch_tags, tags = tags[:MAX_PARAMS_OR_TAGS], tags[MAX_PARAMS_OR_TAGS:]
        room = MAX_ENTITIES - len(batch_params) - len(batch_tags)
        batch_metrics, metrics = metrics[:room], metrics[room:]
        yield batch_metrics, batch_params, batch_tags


# --- routing MLflow's fluent calls to the recorder of the active tracked run -----------------

_ORIGINALS: dict[str, Callable] = {}
_ROUTED = ("log_metric", "log_metrics", "log_param", "log_params", "set_tag", "set_tags")


def _recorders() -> list[Recorder]:
    return current_session().recorders


@contextmanager
def recording(recorder: Recorder) -> Iterator[Recorder]:
    """Route the fluent logging calls aimed at ``recorder``'s run to it, for the block."""
    start_recording(recorder)
    try:
        yield recorder
    finally:
        stop_recording(recorder)


def start_recording(recorder: Recorder) -> None:
    """Route the fluent logging calls aimed at ``recorder``'s run to it."""
    import mlflow

    if not _ORIGINALS:  # MLflow's module is the process's: patched once, whatever the session
        for name in _ROUTED:
            _ORIGINALS[name] = getattr(mlflow, name)
            setattr(mlflow, name, globals()[f"_{name}"])
    _recorders().append(recorder)


def stop_recording(recorder: Recorder) -> None:
    """Stop routing calls to ``recorder`` (nothing happens if it is not routed to)."""
    import mlflow

    recorders = _recorders()
    if recorder not in recorders:
        return
    recorders.remove(recorder)
    if not recorders and _ORIGINALS:
        for name in _ROUTED:
            setattr(mlflow, name, _ORIGINALS.pop(name))


def active_recorder() -> Recorder | None:
    """The recorder of the innermost tracked block that is running, if any."""
    return _recorders()[-1] if _recorders() else None


def _recorder_for(run_id: str | None, synchronous: bool | None = None) -> Recorder | None:
    """The recorder that takes a call for ``run_id`` (None: the active run), if any."""
    if not _recorders():
        return None
    recorder = _recorders()[-1]
    from mlflow.tracking.fluent import active_run, get_active_model_id

    active = active_run()
    target = run_id or (active.info.run_id if active else None)
    if target != recorder.run_id:
        return None
    mlflow_must_handle = synchronous is True or get_active_model_id() is not None or (
        active is not None and active.outputs is not None and active.outputs.model_outputs
    )
    if mlflow_must_handle:
        recorder.bypassed = True
        return None
    return recorder


def _log_metric(key, value, step=None, synchronous=None, timestamp=None, run_id=None,
                model_id=None, dataset=None):
    recorder = None if model_id or dataset else _recorder_for(run_id, synchronous)
    if recorder is None:
        return _ORIGINALS["log_metric"](key, value, step=step, synchronous=synchronous,
                                        timestamp=timestamp, run_id=run_id,
                                        model_id=model_id, dataset=dataset)
    recorder.log_metric(key, value, step, timestamp)
    return None


def _log_metrics(metrics: Mapping, step=None, synchronous=None, run_id=None, timestamp=None,
                 model_id=None, dataset=None):
    recorder = None if model_id or dataset else _recorder_for(run_id, synchronous)
    if recorder is None:
        return _ORIGINALS["log_metrics"](metrics, step=step, synchronous=synchronous,
                                         run_id=run_id, timestamp=timestamp,
                                         model_id=model_id, dataset=dataset)
    timestamp = timestamp or int(time.time() * 1000)
    for key, value in metrics.items():
        recorder.log_metric(key, value, step, timestamp)
    return None


def masked(values: Mapping[str, Any], kind: str, said: set | None = None) -> dict[str, Any]:
    """``values`` with the value of each secret-named key replaced by ***, and one line for
    each such key (once: ``said`` holds the keys already told of)."""
    said = set() if said is None else said
    shown = {}
    for key, value in values.items():
        if is_secret_name(str(key)):
            if (kind, key) not in said:
                notify(f"the {kind} '{key}' looks like a secret; it is logged as {REDACTED}.")
                said.add((kind, key))
            value = REDACTED
        shown[key] = value
    return shown


def _masked(values: Mapping[str, Any], kind: str) -> dict[str, Any]:
    return masked(values, kind, _recorders()[-1].masked_keys if _recorders() else None)


def _log_param(key, value, synchronous=None):
    value = _masked({key: value}, "param")[key]
    recorder = _recorder_for(None, synchronous)
    if recorder is None:
        return _ORIGINALS["log_param"](key, value, synchronous=synchronous)
    recorder.log_param(key, value)
    return value


def _log_params(params: Mapping, synchronous=None, run_id=None):
    params = _masked(params, "param")
    recorder = _recorder_for(run_id, synchronous)
    if recorder is None:
        return _ORIGINALS["log_params"](params, synchronous=synchronous, run_id=run_id)
    for key, value in params.items():
        recorder.log_param(key, value)
    return None


def _set_tag(key, value, synchronous=None):
    value = _masked({key: value}, "tag")[key]
    recorder = _recorder_for(None, synchronous)
    if recorder is None:
        return _ORIGINALS["set_tag"](key, value, synchronous=synchronous)
    recorder.set_tag(key, value)
    return None


def _set_tags(tags: Mapping, synchronous=None):
    tags = _masked(tags, "tag")
    recorder = _recorder_for(None, synchronous)
    if recorder is None:
        return _ORIGINALS["set_tags"](tags, synchronous=synchronous)
    for key, value in tags.items():
        recorder.set_tag(key, value)
    return None
