"""The Models part of the panel: register the selected run's model as a new version, list a
model's versions and aliases, and set an alias."""

from __future__ import annotations

import html
from collections.abc import Callable

import ipywidgets as widgets

from mlmagic import core
from mlmagic.base.errors import InvalidInput
from mlmagic.base.render import html_table
from mlmagic.panel.parts import button, dropdown, set_options, text
from mlmagic.panel.worker import Worker

MAX_MODELS = 50
MAX_VERSIONS = 50  # the newest versions of a model the panel offers; %aml_models NAME lists all


class ModelsSection:
    """Registration, versions and aliases; ``versions`` maps each model to its versions."""

    def __init__(self, worker: Worker, selected_runs: Callable[[], list[str]],
                 on_change: Callable[[], None]) -> None:
        self.worker, self.selected_runs, self.on_change = worker, selected_runs, on_change
        self.versions: dict[str, list[dict]] = {}  # the newest MAX_VERSIONS of each model
        self.counts: dict[str, int] = {}  # how many versions each model has
        self.name = text("model name", "register the selected run's model under this name")
        self.register_button = button("Register", self._register, "primary")
        self.model = dropdown("model")
        self.model.observe(self._model_picked, "value")
        self.table = widgets.HTML()
        self.version = dropdown("version")
        self.alias = text("alias", "e.g. champion")
        self.alias_button = button("Set alias", self._set_alias)
        self.widget = widgets.VBox([
            widgets.HBox([self.name, self.register_button]),
            self.model, self.table,
            widgets.HBox([self.version, self.alias, self.alias_button]),
        ])

    def load(self) -> None:
        """Fetch the registered models and their versions, keeping the picked model."""
        names = list(core.models()["name"])[:MAX_MODELS]
        found = {name: core.models(name) for name in names}
        self.counts = {name: len(versions) for name, versions in found.items()}
        self.versions = {name: versions.head(MAX_VERSIONS).to_dict("records")
                         for name, versions in found.items()}
        set_options(self.model, self._model_picked, names, self.model.value)
        self._show_versions()

    def _show_versions(self) -> None:
        versions = self.versions.get(self.model.value, [])
        self.table.value = html_table(
            ["version", "aliases", "status", "run", "created"],
            [[v["version"], ", ".join(v["aliases"]), v["status"], v["run_id"],
              f"{v['created']:%Y-%m-%d %H:%M:%S}"] for v in versions],
        ) + _older_note(self.model.value, self.counts.get(self.model.value, 0)
                        ) if versions else "<i>no registered model yet</i>"
        set_options(self.version, None, [str(v["version"]) for v in versions],
                    self.version.value)

    def _model_picked(self, change) -> None:
        self._show_versions()

    def _register(self, _) -> None:
        name, runs = self.name.value.strip(), self.selected_runs()

        def register():
            if len(runs) != 1:
                raise InvalidInput(f"select one run in the Runs tab to register its model "
                                   f"({len(runs)} selected).")
            version = core.register(name, run=runs[0], path=None)
            self.on_change()
            return version

        self.worker.submit(f"registering {name}", register,
                           lambda v: f"registered {v.name} version {v.version}")

    def _set_alias(self, _) -> None:
        model, version, alias = self.model.value, self.version.value, self.alias.value

        def set_alias():
            if not model or not version:
                raise InvalidInput("pick a model and a version first.")
            found = core.set_alias(f"{model}:{version}", alias)
            self.on_change()
            return found

        self.worker.submit(f"setting the alias {alias}", set_alias,
                           lambda v: f"{v.name}@{alias.strip()} is version {v.version}")


def _older_note(model: str, count: int) -> str:
    if count <= MAX_VERSIONS:
        return ""
    return (f"<i>the newest {MAX_VERSIONS} of {count} versions; %aml_models "
            f"{html.escape(model)} lists them all</i>")
