"""Looking into runs and the workspace: one run's details, several runs side by side with a
chart of a metric's history, and the facts of the store or Azure ML workspace in use."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from mlmagic.base.display import Card, ShownAsCardPath, card, format_duration, with_progress
from mlmagic.base.env import temporary_env
from mlmagic.base.errors import InvalidInput, NotFound
from mlmagic.base.failures import explain
from mlmagic.base.library_log import NO_PROGRESS_BARS
from mlmagic.base.render import chart, html_table, shortened
from mlmagic.base.secrets import error_line, redact_uri
from mlmagic.core.connection import ensure_connected
from mlmagic.core.interactive import interactive
from mlmagic.core.search import artifact_files, logged_models, run_artifact_paths
from mlmagic.core.session import last_run_id

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.entities import Run

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
SHOWN_ENTRIES = 50  # params, metrics, tags or artifacts a run's card lists; the link has all
SHOWN_MODELS = 10  # logged models a run's card lists (each costs a read of its MLmodel)
SHOWN_VALUE = 200  # characters of a value a card shows
SHOWN_ROWS = 60  # rows of a comparison's table or history shown (pandas' own default)
SHOWN_CELL = 60  # characters of a compared value shown


def find_run(reference: str) -> Run:
    """A run of the current store: ``last`` (the session's last run), a run id, or a run name
    (the newest run of that name in the current experiment)."""
    from mlflow.exceptions import MlflowException

    reference = reference.strip()
    if not reference:
        raise InvalidInput("no run given. Name one: last, a run id, or a run name.")
    connection = ensure_connected()
    client = connection.client()
    if reference == "last":
        reference = last_run_id("Give a run id or a run name.")
    if _RUN_ID.match(reference):
        try:
            return client.get_run(reference)
        except MlflowException as error:
            if explain(error, connection.tracking_uri) is not None:
                raise
    escaped = reference.replace("'", "\\'")
    found = client.search_runs([connection.experiment_id], f"attributes.run_name = '{escaped}'",
                               order_by=["attributes.start_time DESC"], max_results=1)
    if not found:
        raise NotFound(f"no run '{reference}' (id or name) in the experiment "
                       f"'{connection.experiment_name}'. List the runs with %aml_runs.")
    return found[0]


@dataclass(frozen=True)
class LoggedModelEntry:
    """One of MLflow 3's logged models of a run: its name, flavors, id and UI page."""

    name: str
    flavors: str
    model_id: str
    link: str | None

    def cells(self) -> tuple[str, str, str, str]:
        """The entry as the cells of a row: name, flavors, model id, link."""
        return self.name, self.flavors, self.model_id, self.link or ""


@dataclass(frozen=True)
class RunDetails:
    """A run's params, latest metrics, tags, artifacts, logged models and link, as one card."""

    run: Run
    artifacts: tuple[str, ...]
    link: str | None
    models: tuple[LoggedModelEntry, ...] = ()
    more_models: int = 0  # logged models beyond SHOWN_MODELS, not listed

    def _card(self, *, with_models: bool = True) -> Card:
        info, data = self.run.info, self.run.data
        duration = info.end_time - info.start_time if info.end_time else None
        tags = {k: v for k, v in data.tags.items() if not k.startswith("mlflow.")}
        models = [("logged models" if index == 0 else "", "  ".join(filter(None, entry.cells())))
                  for index, entry in enumerate(self.models)] if with_models else []
        return card(
            f"run {info.run_name}: {info.status}",
            ("run id", info.run_id),
            ("experiment id", info.experiment_id),
            ("duration", format_duration(duration)),
            ("params", _pairs(data.params)),
            ("metrics", _pairs({k: f"{v:.6g}" for k, v in data.metrics.items()})),
            ("tags", _pairs(tags)),
            ("artifacts", _listed(self.artifacts)),
            *models,
            ("", self._more_models() if with_models else None),
            ("link", self.link),
        )

    def _more_models(self) -> str | None:
        return (f"… and {self.more_models} more logged models (the run's link shows all)"
                if self.more_models else None)

    def _repr_html_(self) -> str:
        shown = self._card(with_models=False)._repr_html_()
        if not self.models:
            return shown
        table = html_table(["logged model", "flavors", "model id", "link"],
                           [entry.cells() for entry in self.models])
        more = f"<p><i>{html.escape(self._more_models())}</i></p>" if self.more_models else ""
        return f"<div>{shown}{table}{more}</div>"

    def __repr__(self) -> str:
        return repr(self._card())


@interactive
def show(run: str = "last") -> RunDetails:
    """The details of a run (``last``, an id or a name): params, latest metrics, tags,
    artifacts, the models it logged (MLflow 3's logged models: name, flavors, id, page) and
    its link."""

    found = find_run(run)
    connection = ensure_connected()
    models = logged_models(connection.client(), found)
    return RunDetails(
        found, tuple(run_artifact_paths(found, connection.tracking_uri)),
        connection.run_url(found.info.run_id, found.info.experiment_id),
        tuple(_entry(model, connection) for model in models[:SHOWN_MODELS]),
        max(len(models) - SHOWN_MODELS, 0))


def _entry(model, connection) -> LoggedModelEntry:
    status = str(getattr(model.status, "name", model.status) or "")
    flavors = _flavors(model.artifact_location, connection.tracking_uri)
    if status and status != "READY":
        flavors = f"{flavors} ({status})"
    return LoggedModelEntry(model.name, flavors, model.model_id,
                            connection.backend.logged_model_url(model.experiment_id,
                                                                model.model_id))


def _flavors(location: str, tracking_uri: str) -> str:
    """The flavors a logged model's MLmodel names, or why there are none to show."""
    import tempfile

    import yaml
    from mlflow.exceptions import MlflowException

    repository = _repository(location, tracking_uri)
    with tempfile.TemporaryDirectory() as folder, \
            temporary_env(NO_PROGRESS_BARS):
        try:
            text = Path(repository.download_artifacts("MLmodel", folder)).read_text()
        except (MlflowException, OSError):
            return "no MLmodel file"
    flavors = (yaml.safe_load(text) or {}).get("flavors") or {}
    return ", ".join(sorted(flavors, key=lambda f: f == "python_function")) or "no flavor"


@interactive
def download_artifact(run: str, path: str, destination: str | Path = ".") -> Path:
    """Download ``path`` of a run into ``destination``; return the local path. ``path`` is
    one of the run's artifacts or a file of a model it logged (MLflow 3 keeps those apart):
    ``model/MLmodel`` is the MLmodel file of the logged model named ``model``."""
    import mlflow
    from mlflow.exceptions import MlflowException

    wanted = (path or "").strip().strip("/")
    if not wanted or ".." in Path(wanted).parts:
        raise InvalidInput(f"'{path}' is not an artifact path of a run. Example: model/MLmodel")
    destination = Path(destination).expanduser()
    if destination.exists() and not destination.is_dir():
        raise InvalidInput(f"{destination} is a file; give a folder to download into.")
    found = find_run(run)
    tracking_uri = ensure_connected().tracking_uri
    try:
        with temporary_env(NO_PROGRESS_BARS):
            if _holds(run_artifact_paths(found, tracking_uri), wanted):
                destination.mkdir(parents=True, exist_ok=True)
                return Path(with_progress(f"downloading {wanted}", partial(
                    mlflow.artifacts.download_artifacts, run_id=found.info.run_id,
                    artifact_path=wanted, dst_path=str(destination), tracking_uri=tracking_uri)))
            location, inside, into = _in_logged_model(found, wanted, destination, path)
            into.mkdir(parents=True, exist_ok=True)
            return Path(with_progress(f"downloading {wanted}", partial(
                _repository(location, tracking_uri).download_artifacts, inside, str(into))))
    except MlflowException as error:
        raise NotFound(f"could not download '{path}': {error_line(error)}") from None


@dataclass(frozen=True, repr=False)
class Downloaded(ShownAsCardPath):
    """What ``%aml_show --download`` fetched: where it is now, and from which run."""

    path: Path
    what: str
    run: str

    def _card(self) -> Card:
        return card(f"downloaded {self.what} of run {self.run}", ("to", self.path))


def _holds(files: list[str], wanted: str) -> bool:
    return any(file == wanted or file.startswith(wanted + "/") for file in files)


def _repository(location: str, tracking_uri: str):
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    return get_artifact_repository(location, tracking_uri=tracking_uri)


def _in_logged_model(found: Run, wanted: str, destination: Path, path: str):
    """Where ``wanted`` (NAME or NAME/FILE) is among the run's logged models: the model's
    artifact location, the path inside it, and the folder to download into. NotFound (one
    line listing what the run has) if it is nowhere."""
    connection = ensure_connected()
    newest = {model.name: model for model in logged_models(connection.client(), found)}
    name, _, inside = wanted.partition("/")
    if name in newest:
        location = newest[name].artifact_location
        if not inside:
            return location, "", destination / name
        if _holds(artifact_files(location, connection.tracking_uri), inside):
            return location, inside, destination
    held = run_artifact_paths(found, connection.tracking_uri)
    for model in list(newest.values())[:SHOWN_MODELS]:
        held += [f"{model.name}/{file}"
                 for file in artifact_files(model.artifact_location, connection.tracking_uri)]
    raise NotFound(f"the run {found.info.run_name} has no artifact or logged model file "
                   f"'{path}'. It has: {_listed(held) or 'none'}.")


def _pairs(values: dict) -> str:
    return _listed([f"{key}={value}" for key, value in sorted(values.items())])


def _listed(items) -> str:
    """The first SHOWN_ENTRIES items, each shortened, and how many more there are."""
    items = list(items)
    shown = ", ".join(shortened(str(item), SHOWN_VALUE) for item in items[:SHOWN_ENTRIES])
    more = len(items) - SHOWN_ENTRIES
    return shown + (f" … and {more} more (the run's link shows all)" if more > 0 else "")


@dataclass(frozen=True)
class Comparison:
    """Runs side by side (params and final metrics; rows that differ are marked) and the
    history of one metric for each run."""

    table: pd.DataFrame
    metric: str | None
    history: pd.DataFrame | None  # step x run -> value

    @property
    def differing(self) -> list[str]:
        """The rows (params.X, metrics.X) whose values are not the same in every run."""
        return [row for row, values in self.table.iterrows()
                if values.astype(str).nunique(dropna=False) > 1]

    def _repr_html_(self) -> str:
        differing = set(self.differing)
        shown = self._shown_table(differing)
        table = html_table(
            ["", *map(str, shown.columns)],
            [(row, *map(_shown, values)) for row, values in shown.iterrows()],
            row_headers=True,
            marked={i for i, row in enumerate(shown.index) if row in differing})
        parts = [f"<div><b>{len(self.table.columns)} runs compared</b> (differences "
                 f"highlighted){table}"]
        if self._left_out(shown):
            parts.append(f"<p><i>{html.escape(self._left_out(shown))}</i></p>")
        if self.history is not None and not self.history.empty:
            series = {str(column): (list(found.index), list(found.values))
                      for column in self.history.columns
                      if not (found := self.history[column].dropna()).empty}
            parts.append(chart(f"{self.metric} by step", series))
        elif self.history is not None:
            parts.append(f"<pre>{html.escape(self._history_text())}</pre>")
        return "".join(parts) + "</div>"

    def __repr__(self) -> str:
        differing = set(self.differing)
        shown = self._shown_table(differing).map(_shown)
        shown.index = [f"* {row}" if row in differing else f"  {row}" for row in shown.index]
        text = f"{len(self.table.columns)} runs compared (* differs)\n{shown.to_string()}"
        if self._left_out(shown):
            text += "\n" + self._left_out(shown)
        if self.history is not None:
            text += "\n\n" + self._history_text()
        return text

    def _shown_table(self, differing: set[str]) -> pd.DataFrame:
        """The rows shown: all of them, or SHOWN_ROWS, those that differ first."""
        if len(self.table) <= SHOWN_ROWS:
            return self.table
        rows = [r for r in self.table.index if r in differing]
        rows += [r for r in self.table.index if r not in differing]
        kept = set(rows[:SHOWN_ROWS])
        return self.table.loc[[r for r in self.table.index if r in kept]]

    def _left_out(self, shown: pd.DataFrame) -> str:
        more = len(self.table) - len(shown)
        return f"… and {more} more rows (the .table attribute has them all)" if more else ""

    def _history_text(self) -> str:
        if self.history is None or self.history.empty:
            return f"no history of '{self.metric}' in these runs"
        return f"{self.metric} by step\n{self.history.to_string(max_rows=SHOWN_ROWS)}"


@interactive
def compare(runs: Sequence[str], metric: str | None = None) -> Comparison:
    """Compare runs (each ``last``, an id or a name): a table of params and final metrics,
    and, with ``metric``, that metric's history for each run."""
    import pandas as pd

    if len(runs) < 2:
        raise InvalidInput("compare needs two runs or more, e.g. %aml_compare last baseline.")
    found = [find_run(reference) for reference in runs]
    labels = _labels(found)
    table = pd.DataFrame({
        label: {**{f"params.{k}": v for k, v in run.data.params.items()},
                **{f"metrics.{k}": v for k, v in run.data.metrics.items()}}
        for label, run in zip(labels, found, strict=True)
    })
    table = table.sort_index()
    history = None
    if metric:
        if not any(metric in run.data.metrics for run in found):
            raise NotFound(f"none of these runs has the metric '{metric}'. They have: "
                           f"{', '.join(sorted({m for r in found for m in r.data.metrics}))}.")
        client = ensure_connected().client()
        history = pd.DataFrame({
            label: pd.Series({point.step: point.value
                              for point in client.get_metric_history(run.info.run_id, metric)},
                             dtype=float)
            for label, run in zip(labels, found, strict=True)
        }).sort_index()
        history.index.name = "step"
    return Comparison(table, metric, history)


def _labels(found: list[Run]) -> list[str]:
    names = [run.info.run_name or run.info.run_id[:8] for run in found]
    return [name if names.count(name) == 1 else f"{name} ({run.info.run_id[:8]})"
            for name, run in zip(names, found, strict=True)]


def _shown(value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return f"{value:.6g}" if isinstance(value, float) else shortened(str(value), SHOWN_CELL)


@interactive
def workspace() -> Card:
    """The facts of the store in use: for an Azure ML workspace its name, region, resource
    group, tracking URI (redacted) and studio link; for other backends the equivalents."""
    import mlflow

    connection = ensure_connected()
    backend = connection.backend
    client = connection.client()
    experiment = client.get_experiment(connection.experiment_id)
    title = ("Azure ML workspace " + dict(backend.facts)["workspace"]
             if backend.workspace is not None else f"{backend.name} tracking store")
    return card(
        title,
        ("backend", backend.name),
        *backend.facts,
        ("tracking URI", redact_uri(connection.tracking_uri)),
        ("user", connection.user),
        ("experiment", f"{connection.experiment_name} (id {connection.experiment_id})"),
        ("artifact location", redact_uri(experiment.artifact_location)),
        ("studio" if backend.workspace is not None else "UI", backend.link(backend.home_path)
         or backend.ui_url),
        ("UI command", backend.ui_hint),
        ("MLflow", mlflow.__version__),
    )
