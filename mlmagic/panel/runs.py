"""The Runs part of the panel: the experiment's runs in a sortable, paged table; the metric
histories of the selected runs as a chart (fetched on selection, never up front); one run's
params, tags and artifacts; and the live chart of a tracked cell while it runs."""

from __future__ import annotations

import html
import threading
from typing import TYPE_CHECKING

import ipywidgets as widgets

from mlmagic import core
from mlmagic.base.config import DEFAULT_MAX_RUNS
from mlmagic.base.display import format_duration
from mlmagic.base.render import chart, link, shortened
from mlmagic.panel.parts import discard, dropdown, set_options
from mlmagic.panel.worker import Worker

if TYPE_CHECKING:
    import pandas as pd

    from mlmagic.core.session import TrackedRun

PAGE_SIZE = 20
MAIN_METRICS = 3
MAIN_PARAMS = 3
MAX_LINES = 10
SHOWN_CHARACTERS = 60  # of a name or value in a table cell
LIVE_SECONDS = 1.0
FIXED_COLUMNS = (("name", "name"), ("status", "status"), ("start", "start"),
                 ("duration", "duration"))


class RunsSection:
    """The runs table, the chart of the selected runs and the details of one run."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.table = _run_table(None)
        self.columns: list[tuple[str, str]] = list(FIXED_COLUMNS)
        self.sort_key, self.ascending = "start", False
        self.page = 0
        self.selected: list[str] = []  # run ids, in the order they were picked
        self._histories: dict[tuple[str, str], pd.DataFrame] = {}
        self._live: _LiveChart | None = None
        self.live = widgets.HTML()
        self.grid = widgets.GridBox()
        self.rows = [_Row(self._toggled) for _ in range(PAGE_SIZE)]
        self.previous = widgets.Button(description="◀ previous", disabled=True)
        self.next = widgets.Button(description="next ▶", disabled=True)
        self.previous.on_click(lambda _: self.show_page(self.page - 1))
        self.next.on_click(lambda _: self.show_page(self.page + 1))
        self.page_label = widgets.Label()
        self.metric = dropdown("metric")
        self.metric.observe(self._metric_picked, "value")
        self.chart = widgets.HTML()
        self.details = widgets.HTML()
        self.widget = widgets.VBox([
            self.live, self.grid, widgets.HBox([self.previous, self.page_label, self.next]),
            self.metric, self.chart, self.details,
        ])
        self._build_grid()

    def load(self) -> None:
        """Fetch the current experiment's runs (their last metric values only) and show the
        first page; the selection is kept where its runs still exist."""
        self.table = _run_table(core.runs(max_results=DEFAULT_MAX_RUNS))
        columns = list(FIXED_COLUMNS) + _main_columns(self.table)
        if columns != self.columns:
            self.columns = columns
            self._build_grid()
        self._histories.clear()
        self.selected = [run_id for run_id in self.selected if run_id in self.table.index]
        self._sort()
        self.show_page(0)
        self._selection_changed()

    def sort_by(self, key: str) -> None:
        """Sort the table by a column; the same column again reverses the order."""
        self.ascending = not self.ascending if key == self.sort_key else key in ("name",)
        self.sort_key = key
        self._sort()
        self._build_header()
        self.show_page(0)

    def show_page(self, page: int) -> None:
        """Show the runs of page ``page`` (from 0) of the sorted table."""
        count = len(self.table)
        last_page = max(0, (count - 1) // PAGE_SIZE)
        self.page = min(max(page, 0), last_page)
        shown = self.table.iloc[self.page * PAGE_SIZE:(self.page + 1) * PAGE_SIZE]
        keys = [key for key, _ in self.columns]
        records = shown.reset_index().to_dict("records")
        for index, row in enumerate(self.rows):
            row.show(records[index] if index < len(records) else None, keys, self.selected)
        first = self.page * PAGE_SIZE + 1 if count else 0
        self.page_label.value = f"runs {first}–{self.page * PAGE_SIZE + len(records)} of {count}"
        self.previous.disabled = self.page == 0
        self.next.disabled = self.page >= last_page

    def select(self, run_ids: list[str]) -> None:
        """Select these runs (chart and details follow), as ticking their boxes does."""
        self.selected = [run_id for run_id in run_ids if run_id in self.table.index]
        self.show_page(self.page)
        self._selection_changed()

    def follow(self, event: str, tracked: TrackedRun) -> None:
        """A tracked cell started or ended: chart it live while it runs, then reload."""
        if self._live is not None:
            self._live.stop()
            self._live = None
        if event == "started" and tracked.run_id is not None:
            self._live = _LiveChart(tracked, self.live, lambda: self.metric.value)
        elif event == "ended":
            self.live.value = ""
            self.worker.submit(None, self.load)

    def close(self) -> None:
        """Stop the live chart, if one runs."""
        if self._live is not None:
            self._live.stop()

    # --- inside -----------------------------------------------------------------------------

    def _build_grid(self) -> None:
        for row in self.rows:
            row.build(len(self.columns))
        self._build_header()

    def _build_header(self) -> None:
        discard(*getattr(self, "header", []))
        self.header = [widgets.HTML("")] + [
            widgets.Button(description=_arrowed(title, key, self.sort_key, self.ascending),
                           tooltip=f"sort by {title}", layout=widgets.Layout(width="auto"))
            for key, title in self.columns
        ]
        for header, (key, _) in zip(self.header[1:], self.columns, strict=True):
            header.on_click(lambda _, key=key: self.sort_by(key))
        cells = [cell for row in self.rows for cell in row.cells]
        self.grid.children = [*self.header, *cells]
        layout = self.grid.layout  # changed in place: a new one would leave the old behind
        layout.grid_template_columns = f"2.5em repeat({len(self.columns)}, auto)"
        layout.grid_gap, layout.align_items = "0 0.8em", "center"

    def _sort(self) -> None:
        key = "start_time" if self.sort_key == "start" else self.sort_key
        key = "duration_ms" if key == "duration" else key
        self.table = self.table.sort_values(key, ascending=self.ascending, kind="stable",
                                            na_position="last")

    def _toggled(self, run_id: str, ticked: bool) -> None:
        if ticked and run_id not in self.selected:
            self.selected.append(run_id)
        elif not ticked and run_id in self.selected:
            self.selected.remove(run_id)
        self._selection_changed()

    def _selection_changed(self) -> None:
        keys = sorted({
            column[len("metrics."):] for column in self.table.columns
            if column.startswith("metrics.") and self.table.loc[self.selected, column].notna().any()
        }) if self.selected else []
        main = [key[len("metrics."):] for key, _ in self.columns if key.startswith("metrics.")]
        preferred = self.metric.value if self.metric.value in keys else next(
            (key for key in main if key in keys), None)
        set_options(self.metric, self._metric_picked, keys, preferred)
        selected = list(self.selected)
        self.worker.submit(None, lambda: self._draw(selected))

    def _metric_picked(self, change) -> None:
        selected = list(self.selected)
        self.worker.submit(None, lambda: self._draw(selected, details=False))

    def _draw(self, selected: list[str], details: bool = True) -> None:
        key = self.metric.value
        series = {}
        for run_id in selected[:MAX_LINES]:
            if key is None:
                break
            points = self._history(run_id, key)
            series[_label(self.table, run_id)] = (list(points["step"]), list(points["value"]))
        self.chart.value = chart(key, series, live=True) if series else ""
        if details:
            self.details.value = core.show(selected[-1])._repr_html_() if selected else ""

    def _history(self, run_id: str, key: str) -> pd.DataFrame:
        if (run_id, key) not in self._histories:
            self._histories[(run_id, key)] = core.metric_history([run_id], key)
        return self._histories[(run_id, key)]


class _Row:
    """One line of the table: a tick box and a cell per column, reused from page to page."""

    def __init__(self, toggled) -> None:
        self.run_id: str | None = None
        self.tick = widgets.Checkbox(indent=False, layout=widgets.Layout(width="2em"))
        self.tick.observe(self._ticked, "value")
        self._toggled = toggled
        self.cells: list[widgets.Widget] = [self.tick]

    def build(self, columns: int) -> None:
        discard(*self.cells[1:])
        self.cells = [self.tick] + [widgets.HTML(layout=widgets.Layout())
                                    for _ in range(columns)]

    def show(self, record, keys: list[str], selected: list[str]) -> None:
        self.run_id = record["run_id"] if record is not None else None
        self.tick.unobserve(self._ticked, "value")
        self.tick.value = self.run_id in selected
        self.tick.observe(self._ticked, "value")
        for cell, key in zip(self.cells[1:], keys, strict=True):
            cell.value = _cell(record, key) if record is not None else ""
        for cell in self.cells:  # a row past the last run takes no room
            cell.layout.display = "" if record is not None else "none"

    def _ticked(self, change) -> None:
        if self.run_id is not None:
            self._toggled(self.run_id, change.new)


class _LiveChart:
    """Redraws a running run's metric from its store every LIVE_SECONDS until stopped."""

    def __init__(self, tracked: TrackedRun, output: widgets.HTML, preferred) -> None:
        self.tracked, self.output, self.preferred = tracked, output, preferred
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self.output.value = f"<i>live: run {html.escape(tracked.run_name)} is running…</i>"
        threading.Thread(target=self._follow, daemon=True, name="mlmagic-live").start()

    def stop(self) -> None:
        with self._lock:
            self._stopped.set()

    def _follow(self) -> None:
        while not self._stopped.wait(LIVE_SECONDS):
            try:
                points = core.metric_history([self.tracked.run_id])
            except Exception:
                continue  # the next tick tries again; the run's own cell reports real trouble
            if points.empty:
                continue
            key = self.preferred() if self.preferred() in set(points["key"]) else points["key"][0]
            mine = points[points["key"] == key]
            drawn = chart(f"live: run {self.tracked.run_name} (running), {key}",
                          {key: (list(mine["step"]), list(mine["value"]))}, live=True)
            with self._lock:
                if not self._stopped.is_set():
                    self.output.value = drawn


def _run_table(found: pd.DataFrame | None) -> pd.DataFrame:
    """The runs as the table shows them, indexed by run id."""
    import pandas as pd

    if found is None or found.empty:
        return pd.DataFrame(columns=["name", "status", "start_time", "duration_ms"],
                            index=pd.Index([], name="run_id"))
    table = found.set_index("run_id")
    name = table.get("tags.mlflow.runName", pd.Series("", index=table.index))
    table = table.assign(name=name.fillna(""),
                         duration_ms=(table["end_time"] - table["start_time"]).dt.total_seconds()
                         * 1000)
    keep = ["name", "status", "start_time", "duration_ms"] + [
        column for column in table.columns if column.startswith(("metrics.", "params."))]
    return table[keep]


def _main_columns(table: pd.DataFrame) -> list[tuple[str, str]]:
    """The metrics and params most runs have (a few of each), as (column, title)."""
    def most_common(prefix: str, count: int) -> list[tuple[str, str]]:
        columns = [c for c in table.columns if c.startswith(prefix)]
        ranked = sorted(columns, key=lambda c: (-table[c].notna().sum(), c))[:count]
        return [(column, column[len(prefix):]) for column in ranked]

    return most_common("metrics.", MAIN_METRICS) + most_common("params.", MAIN_PARAMS)


def _cell(record: dict, key: str) -> str:
    if key == "name":
        connection = core.current_connection()
        url = connection.run_url(record["run_id"]) if connection else None
        return link(shortened(record["name"] or record["run_id"][:8], SHOWN_CHARACTERS), url)
    if key == "start":
        return html.escape(f"{record['start_time']:%Y-%m-%d %H:%M:%S}")
    if key == "duration":
        ms = record["duration_ms"]
        return format_duration(None if ms != ms else int(ms))  # NaN: still running
    value = record.get(key)
    if value is None or value != value:  # NaN: this run has no such metric
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(shortened(str(value), SHOWN_CHARACTERS))


def _arrowed(title: str, key: str, sort_key: str, ascending: bool) -> str:
    return f"{title} {'▲' if ascending else '▼'}" if key == sort_key else title


def _label(table: pd.DataFrame, run_id: str) -> str:
    name = table.at[run_id, "name"] or run_id[:8]
    return f"{name} ({run_id[:6]})"
