"""The Connection part of the panel: where tracking goes now, a form to connect (the same
call as %aml_connect) and an experiment picker."""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as widgets

from mlmagic import core
from mlmagic.base.secrets import redact_uri
from mlmagic.panel.parts import button, dropdown, set_options, text
from mlmagic.panel.worker import Worker


class ConnectionSection:
    """The current connection, the connect form and the experiment picker."""

    def __init__(self, worker: Worker, on_connected: Callable[[], None]) -> None:
        self.worker, self.on_connected = worker, on_connected
        self.summary = widgets.HTML()
        self.uri = text("tracking URI", "http://…, sqlite:///…, databricks; empty: the default")
        self.experiment = text("experiment", "default: the configured one, or Default")
        self.workspace = text("workspace", "Azure ML: workspace name")
        self.subscription = text("subscription", "Azure ML: subscription id")
        self.resource_group = text("resource group", "Azure ML: resource group")
        self.config = text("config file", "Azure ML: path of the workspace's config.json")
        self.connect_button = button("Connect", self._connect, "primary")
        self.experiments = dropdown("experiment")
        self.experiments.observe(self._experiment_picked, "value")
        azure = widgets.VBox([self.workspace, self.subscription, self.resource_group,
                              self.config])
        self.widget = widgets.VBox([
            self.summary, self.experiments, widgets.HTML("<b>connect</b>"), self.uri,
            widgets.HTML("<i>or an Azure ML workspace:</i>"), azure,
            self.experiment, self.connect_button,
        ])

    def load(self) -> None:
        """Show the current connection and offer its store's experiments."""
        self.summary.value = core.status()._repr_html_()
        connection = core.current_connection()
        names = core.experiments() if connection else []
        set_options(self.experiments, self._experiment_picked, names,
                    connection.experiment_name if connection else None)

    def _connect(self, _) -> None:
        uri = self.uri.value.strip() or None
        form = {name: getattr(self, name).value.strip() or None for name in
                ("experiment", "workspace", "subscription", "resource_group", "config")}

        def connect():
            connection = core.connect(uri, **form)
            if uri and redact_uri(uri) != uri:
                self.uri.value = ""  # it holds a password: do not keep it in the page
            self.on_connected()
            return connection

        self.worker.submit("connecting", connect, lambda c: (
            f"connected to {redact_uri(c.tracking_uri)}{f' as {c.user}' if c.user else ''}, "
            f"experiment {c.experiment_name}"))

    def _experiment_picked(self, change) -> None:
        name = change.new
        if not name:
            return

        def switch():
            connection = core.set_experiment(name)
            self.on_connected()
            return connection

        self.worker.submit(f"switching to {name}", switch,
                           lambda c: f"experiment {c.experiment_name}")
