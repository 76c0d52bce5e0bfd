"""Listing experiments and runs, and the metric histories of runs."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mlmagic.base.config import DEFAULT_MAX_RUNS
from mlmagic.base.errors import InvalidInput, NotFound
from mlmagic.base.failures import explain, logged_models_missing
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
    return artifact_files(run.info.artifact_uri, tracking_uri, folder)


def artifact_files(location: str, tracking_uri: str, folder: str | None = None) -> list[str]:
    """Every file under the artifact ``location`` (a run's, or a logged model's), under
    ``folder``, as paths relative to ``location``."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repository = get_artifact_repository(location, tracking_uri=tracking_uri)

    def files(under: str | None) -> list[str]:
        found = []
        for item in repository.list_artifacts(under):
            found += files(item.path) if item.is_dir else [item.path]
        return found

    return files(folder)


def logged_models(client, run, name: str | None = None) -> list:
    """MLflow 3's logged models of the run (named ``name``, if given), oldest first; none
    where the store has no logged-models API (a model can still be saved among the run's
    artifacts)."""
    from mlflow.exceptions import MlflowException

    named = " AND name = '{}'".format(name.replace("'", "\\'")) if name else ""
    try:
        found = client.search_logged_models(
            [run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'{named}")
    except MlflowException as error:
        if logged_models_missing(error):
            return []
        raise
    return sorted(found, key=lambda model: (model.creation_timestamp or 0, model.name))


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
    from mlflow.exceptions import MlflowException

    if max_results < 1:
        raise InvalidInput(f"--max must be at least 1, got {max_results}.")
    connection = ensure_connected()
    experiment_id = experiment_id_of(experiment) if experiment else connection.experiment_id
    try:
        return _search(experiment_id, filter_string, order_by, max_results)
    except MlflowException as error:
        if explain(error, connection.tracking_uri) is not None:
            raise
        raise InvalidInput(_refused_search(error, experiment_id, filter_string,
                                           order_by)) from None


def _search(experiment_id: str, filter_string: str | None, order_by: Sequence[str] | None,
            max_results: int) -> pd.DataFrame:
    import mlflow

    return mlflow.search_runs(experiment_ids=[experiment_id], filter_string=filter_string or "",
                              order_by=list(order_by) if order_by else None,
                              max_results=max_results)


FILTER_EXAMPLE = '--filter "metrics.accuracy > 0.9" or "params.alpha = \'0.5\'"'
_ATTRIBUTE_KEY = re.compile(r"Invalid attribute key '([^']+)' specified")
_ENTITY_TYPE = re.compile(r"Invalid entity type '([^']+)'")


def _refused_search(error, experiment_id: str, filter_string: str | None,
                    order_by: Sequence[str] | None) -> str:
    """One line for a search MLflow refused: whose fault (the filter or the order), the
    useful part of MLflow's reason, a close match of the experiment's keys, and an example."""
    from mlflow.exceptions import MlflowException

    if filter_string and order_by:
        try:
            _search(experiment_id, filter_string, None, 1)
        except MlflowException as alone:
            error = alone
        else:
            filter_string = None
    reason = _short_reason(error_line(error))
    if not filter_string:
        shown = ", ".join(order_by or ())
        return (f'--order-by "{shown}" is not an order MLflow understands: {reason}. Write e.g. '
                '--order-by "metrics.accuracy DESC" or "attributes.start_time ASC".')
    line = f'--filter "{filter_string}" is not a filter MLflow understands: {reason}.'
    meant = _meant_filter(error_line(error), filter_string, experiment_id)
    if meant:
        return line + f' Did you mean --filter "{meant}"?'
    return line + f" Write e.g. {FILTER_EXAMPLE} (clauses joined by AND)."


def _short_reason(message: str) -> str:
    """MLflow's reason without its list of attribute names (what mlmagic's example says)."""
    key = _ATTRIBUTE_KEY.search(message)
    if key:
        return (f"'{key[1]}' is not a run attribute (metrics, params and tags need their "
                "prefix)")
    return message.split(" Valid keys are")[0].rstrip(". ")


def _meant_filter(message: str, filter_string: str, experiment_id: str) -> str | None:
    """The filter with its unknown key replaced by the closest metric, param or tag name of
    the experiment's recent runs, if one is close."""
    written = _written_key(message, filter_string)
    if written is None:
        return None
    leaf = written.split(".", 1)[-1].strip("`\"")
    match = difflib.get_close_matches(leaf, list(known := _known_keys(experiment_id)), n=1)
    if not match:
        return None
    return re.sub(rf"(?<![\w.`]){re.escape(written)}(?![\w`])", lambda _: known[match[0]],
                  filter_string, count=1)


def _written_key(message: str, filter_string: str) -> str | None:
    """The key of the filter MLflow did not know, as the user wrote it."""
    key = _ATTRIBUTE_KEY.search(message)
    if key:
        return key[1] if re.search(rf"(?<![\w.]){re.escape(key[1])}(?!\w)",
                                   filter_string) else None
    entity = _ENTITY_TYPE.search(message)
    if entity:
        found = re.search(rf"(?<![\w.]){re.escape(entity[1])}\.[\w`\"-]+", filter_string)
        return found[0] if found else None
    return None


def _known_keys(experiment_id: str) -> dict[str, str]:
    """The metric, param and user tag names of the experiment's recent runs: name -> the
    filter's spelling of it (metrics first, then params, then tags)."""
    try:
        found = ensure_connected().client().search_runs([experiment_id], max_results=100)
    except Exception:  # only a suggestion; the search's own error is what matters
        return {}
    known: dict[str, str] = {}
    for kind, attribute in (("metrics", "metrics"), ("params", "params"), ("tags", "tags")):
        for run in found:
            for name in getattr(run.data, attribute):
                if not name.startswith("mlflow."):
                    spelled = name if re.fullmatch(r"[\w.]+", name) else f"`{name}`"
                    known.setdefault(name, f"{kind}.{spelled}")
    return known
