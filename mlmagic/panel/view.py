"""The panel: one ipywidgets view of connection, runs, models and deployment."""

from __future__ import annotations

import sys
from collections.abc import Mapping, MutableMapping

import ipywidgets as widgets

from mlmagic import core
from mlmagic.base.config import databricks_runtime
from mlmagic.panel.connection import ConnectionSection
from mlmagic.panel.deploy import DeploySection
from mlmagic.panel.models import ModelsSection
from mlmagic.panel.parts import button
from mlmagic.panel.runs import RunsSection
from mlmagic.panel.summary import summary_class, summary_html, summary_text
from mlmagic.panel.worker import Worker

TABS = ("Connection", "Runs", "Models", "Deploy")
LOAD_WAIT = 10.0  # seconds a display waits for the first load, for the text/HTML summary
# ipywidgets are generally available in Databricks notebooks from Databricks Runtime 13.0 (a
# preview in 11.0 to 12.2 LTS): docs.databricks.com/notebooks/ipywidgets.html
WIDGETS_FROM_RUNTIME = 13
OLD_RUNTIME_NOTE = ("mlmagic panel (a summary: widgets need Databricks Runtime "
                    f"{WIDGETS_FROM_RUNTIME} or later)")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
LIVE_NOTE = ("mlmagic panel: a live widget, where widgets render (JupyterLab, Notebook, "
             "VS Code); the summary above is what the others show")


class Panel(widgets.VBox):
    """Connection, runs, models and endpoints in tabs. Every button calls the core function
    the magics call, in the background; the status line says what happens."""

    def __init__(self, namespace: MutableMapping[str, object] | None = None) -> None:
        super().__init__()
        self.shell = _shell()
        if namespace is None:
            namespace = self.shell.user_ns if self.shell is not None else {}
        self.worker = Worker()
        self.runs = RunsSection(self.worker)
        self.models = ModelsSection(self.worker, lambda: list(self.runs.selected),
                                    self._load_models)
        self.deploy = DeploySection(self.worker, namespace)
        self.connection = ConnectionSection(self.worker, self._load_all)
        self.refresh_button = button("↻ refresh", lambda _: self.refresh())
        self.tabs = widgets.Tab(
            children=[self.connection.widget, self.runs.widget, self.models.widget,
                      self.deploy.widget],
            titles=TABS,
        )
        self.tabs.selected_index = 1
        self.children = [
            widgets.HBox([widgets.HTML("<b>mlmagic</b>"), self.refresh_button,
                          self.worker.status, self._summary_hider()],
                         layout=widgets.Layout(align_items="center")),
            self.tabs,
        ]
        self.add_class("mlmagic-panel")
        self._stop_listening = core.add_run_listener(self._tracked)
        self._listening = True
        if self.shell is not None:
            self.shell.events.register("post_run_cell", self._cell_ran)
        self.refresh()

    def refresh(self) -> None:
        """Reload everything from the store, in the background."""
        self.worker.submit("loading", self._load_all)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the panel's actions have ended; False if ``timeout`` s passed first."""
        return self.worker.wait(timeout)

    @property
    def message(self) -> str:
        """The status line's text: progress, the last outcome, or an error in one line."""
        return self.worker.message

    def close(self) -> None:
        """Stop following tracked cells and the background thread, and close the view."""
        if getattr(self, "_listening", False):
            self._listening = False
            self._stop_listening()
            if self.shell is not None:
                self.shell.events.unregister("post_run_cell", self._cell_ran)
            self.runs.close()
            self.worker.shutdown()
        super().close()

    def _repr_mimebundle_(self, **kwargs) -> dict:
        # Front ends with a widget manager render the widget; the others take the HTML or
        # the text, which need the first load.
        self.wait(LOAD_WAIT)
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        bundle["text/plain"] = summary_text(self)
        bundle["text/html"] = summary_html(self)
        return bundle

    def _ipython_display_(self) -> None:
        # nbconvert's HTML (so nbviewer) shows an output's widget view whenever it has one,
        # an empty box without the widgets' JavaScript. So in a Jupyter kernel the summary is
        # an output of its own, which the live widget's style hides where the widget renders.
        from IPython.display import display

        bundle = self._repr_mimebundle_()
        if not _summary_apart(self.shell) or WIDGET_VIEW not in bundle:
            display(bundle, raw=True)
            return
        display({"text/html": bundle["text/html"], "text/plain": bundle["text/plain"]},
                raw=True)
        display({WIDGET_VIEW: bundle[WIDGET_VIEW], "text/plain": LIVE_NOTE}, raw=True)

    def _summary_hider(self) -> widgets.HTML:
        """An invisible part of the widget whose style hides this panel's summary output:
        it is in the page only where the widget renders."""
        summary = f".{summary_class(self)}"
        style = (f"<style>{summary} {{display: none}} .jp-OutputArea-child:has({summary}),"
                 f" .output_area:has({summary}) {{display: none}}</style>")
        return widgets.HTML(style, layout=widgets.Layout(display="none"))

    def _load_all(self) -> None:
        self.connection.load()
        self.runs.load()
        self._load_models()
        self.deploy.load()

    def _load_models(self) -> None:
        self.models.load()
        self.deploy.load_models(self.models.versions)

    def _tracked(self, event: str, tracked) -> None:
        self.runs.follow(event, tracked)
        if event == "ended":
            self.worker.submit(None, self._load_models)

    def _cell_ran(self, result) -> None:
        self.deploy.load_frames()


def panel(namespace: Mapping[str, object] | None = None) -> Panel:
    """The mlmagic panel as an ipywidgets widget (display it, or end a cell with it);
    ``namespace`` holds the DataFrames offered for test requests (default: the notebook's)."""
    return Panel(namespace)


def show_panel(namespace: Mapping[str, object]) -> Panel | None:
    """What ``%aml_panel`` shows: the panel widget; in a Databricks runtime before 13, where
    widgets do not render, its HTML summary through the notebook's ``displayHTML`` instead
    (and None: no widget is left behind)."""
    shown = Panel(namespace)
    display_html = namespace.get("displayHTML")
    runtime = databricks_runtime()
    if runtime is None or runtime[0] >= WIDGETS_FROM_RUNTIME or not callable(display_html):
        return shown
    try:
        shown.wait(LOAD_WAIT)
        display_html(summary_html(shown, OLD_RUNTIME_NOTE))
    finally:
        shown.close()
    return None


def _summary_apart(shell) -> bool:
    """Whether the summary is shown as an output of its own, next to the widget: in a
    Jupyter kernel, except where each output is its own page (Colab) or in Databricks,
    where the widget's style could not hide it."""
    in_kernel = getattr(shell, "kernel", None) is not None
    return in_kernel and databricks_runtime() is None and "google.colab" not in sys.modules


def _shell():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()
