"""The Deploy part of the panel: deploy a model version to a target (with the options that
target takes) with progress, the endpoints and their state, a test request from a DataFrame
of the notebook, undeploy."""

from __future__ import annotations

import html
from collections.abc import Mapping

import ipywidgets as widgets

from mlmagic import core
from mlmagic.base.errors import InvalidInput
from mlmagic.base.render import html_table
from mlmagic.base.secrets import is_secret_name
from mlmagic.deploy import option_specs, option_value, targets
from mlmagic.panel.parts import button, dropdown, set_options, text
from mlmagic.panel.worker import Worker

SHOWN_PREDICTIONS = 20


class DeploySection:
    """Deploy, list, try and stop endpoints."""

    def __init__(self, worker: Worker, namespace: Mapping[str, object]) -> None:
        self.worker, self.namespace = worker, namespace
        self.found = None  # the endpoints, as core.endpoints() gave them last
        self.model = dropdown("model version")
        self.target = dropdown("target")
        set_options(self.target, None, list(targets()), "local")
        self.target.observe(self._show_options, "value")
        self.option_fields = {spec.name: (spec, text(spec.name.replace("_", " "), spec.help))
                              for spec in option_specs()}
        self.options = widgets.VBox()
        self._show_options()
        self.name = text("endpoint name", "default: the model's name")
        self.deploy_button = button("Deploy", self._deploy, "primary")
        self.table = widgets.HTML()
        self.endpoint = dropdown("endpoint")
        self.data = dropdown("DataFrame")
        self.predict_button = button("Send test request", self._predict)
        self.undeploy_button = button("Undeploy", self._undeploy, "danger")
        self.predictions = widgets.HTML()
        self.widget = widgets.VBox([
            self.model, self.target, self.options,
            widgets.HBox([self.name, self.deploy_button]),
            self.table, self.endpoint,
            widgets.HBox([self.data, self.predict_button, self.undeploy_button]),
            self.predictions,
        ])

    def load_models(self, versions: Mapping[str, list[dict]]) -> None:
        """Offer every version of every registered model, newest first."""
        choices = [(f"{name}:{v['version']}" + "".join(f" @{a}" for a in v["aliases"]),
                    f"{name}:{v['version']}") for name, listed in versions.items() for v in listed]
        set_options(self.model, None, choices, self.model.value)

    def load(self) -> None:
        """Fetch the endpoints with their state, and list the notebook's DataFrames."""
        found = self.found = core.endpoints()
        self.table.value = html_table(
            list(found.columns), found.itertuples(index=False)
        ) if not found.empty else "<i>no endpoint yet</i>"
        set_options(self.endpoint, None, list(found["name"]), self.endpoint.value)
        self.load_frames()

    def load_frames(self) -> None:
        """Offer the notebook's pandas DataFrames for a test request."""
        import pandas as pd

        frames = sorted(name for name, value in dict(self.namespace).items()
                        if isinstance(value, pd.DataFrame) and not name.startswith("_")
                        and not is_secret_name(name))
        set_options(self.data, None, frames, self.data.value)

    def _show_options(self, _=None) -> None:
        """Show the option fields of the chosen target only."""
        self.options.children = [field for spec, field in self.option_fields.values()
                                 if self.target.value in spec.targets]

    def _deploy(self, _) -> None:
        model, target, name = self.model.value, self.target.value, self.name.value.strip()
        given = {name: (spec, field.value) for name, (spec, field) in self.option_fields.items()
                 if target in spec.targets and field.value.strip()}

        def deploy():
            if not model:
                raise InvalidInput("pick a model version (register one in the Models tab).")
            options = {name: option_value(spec, value) for name, (spec, value) in given.items()}
            endpoint = core.deploy(model, target_name=target, name=name or None, **options)
            self.load()
            set_options(self.endpoint, None, self.endpoint.options, endpoint.name)
            return endpoint

        self.worker.submit(f"deploying {model} to {target}", deploy,
                           lambda e: f"endpoint {e.name} is ready: {e.url}")

    def _predict(self, _) -> None:
        endpoint, variable = self.endpoint.value, self.data.value

        def predict():
            if not endpoint or not variable:
                raise InvalidInput("pick an endpoint and a DataFrame of the notebook.")
            if variable not in self.namespace:
                raise InvalidInput(f"there is no variable '{variable}' in the notebook.")
            predictions = core.predict(endpoint, self.namespace[variable])
            shown = ", ".join(f"{p:.6g}" if isinstance(p, float) else str(p)
                              for p in predictions[:SHOWN_PREDICTIONS])
            more = " …" if len(predictions) > SHOWN_PREDICTIONS else ""
            self.predictions.value = html.escape(
                f"{endpoint} on {variable} ({len(predictions)} rows): [{shown}{more}]")
            return predictions

        self.worker.submit(f"sending {variable} to {endpoint}", predict,
                           lambda p: f"{endpoint} answered {len(p)} predictions")

    def _undeploy(self, _) -> None:
        endpoint = self.endpoint.value

        def undeploy():
            if not endpoint:
                raise InvalidInput("pick an endpoint to undeploy.")
            core.undeploy(endpoint)
            self.predictions.value = ""
            self.load()

        self.worker.submit(f"undeploying {endpoint}", undeploy,
                           lambda _: f"endpoint {endpoint} is stopped")
