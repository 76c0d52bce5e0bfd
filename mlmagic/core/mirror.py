"""--track both: each tracked run is written to the connection's store and mirrored into a
second one (the Azure ML workspace linked to a Databricks workspace, as the source documents'
linked workspaces behave).

The mirror run has the same name, start tags (the notebook's provenance included), params,
metrics, tags and artifacts. Its batches are the ones mlmagic's recorder makes for the store,
handed to a second :class:`~mlmagic.core.sink.RunSink`, so it costs a sender thread, not the
cell. Both runs carry the tag ``mlmagic.link`` (the same value) and each the other's run id,
page and experiment id. When the mirror's store is unreachable its half goes to that store's
offline journal, and %aml_sync sends it and links the pair then. Nothing here fails the cell.
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from dataclasses import dataclass

from mlmagic.base.display import notify, silenced
from mlmagic.base.env import temporary_env
from mlmagic.base.secrets import error_line
from mlmagic.core.session import Connection
from mlmagic.core.sink import SHORT_RETRIES, STORE_LOGGERS, RunSink

LINK_TAG = "mlmagic.link"  # the same on both runs of a pair
LINKED_RUN_TAG = "mlmagic.linked.run_id"
LINKED_URL_TAG = "mlmagic.linked.url"
LINKED_EXPERIMENT_TAG = "mlmagic.linked.experiment_id"
# Short retries, and none of MLflow's "View run" lines: mlmagic's card links to both runs.
QUIET = {**SHORT_RETRIES, "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}


def new_link() -> dict[str, str]:
    """The tag that makes two runs a pair."""
    return {LINK_TAG: uuid.uuid4().hex}


def linked_tags(connection: Connection, run_id: str | None, experiment_id: str) -> dict:
    """The tags that point at a run of ``connection`` (its id and page, once it has an id)."""
    tags = {LINKED_EXPERIMENT_TAG: experiment_id}
    if run_id is not None:
        tags[LINKED_RUN_TAG] = run_id
        tags[LINKED_URL_TAG] = connection.run_url(run_id, experiment_id) or ""
    return {key: value for key, value in tags.items() if value}


@dataclass
class Mirror:
    """The mirror of one tracked run: its connection, run (None while it is offline) and
    sink."""

    connection: Connection
    experiment_id: str
    run: object | None
    sink: RunSink

    @property
    def run_id(self) -> str | None:
        """The mirror run's id, once it has one."""
        return self.sink.run_id

    @property
    def url(self) -> str | None:
        """The mirror run's page."""
        return self.run_id and self.connection.run_url(self.run_id, self.experiment_id)

    def close(self, status: str, end_time: int, source_run_id: str | None,
              source_client, copied: set[str]) -> None:
        """End the mirror run once its batches are sent, after copying the artifacts the
        source run has and the mirror lacks (all but ``copied``)."""
        self.sink.drain()
        if self.run_id is not None and not self.sink.offline:
            if source_run_id is not None:
                self._copy_artifacts(source_client, source_run_id, copied)
            try:
                with temporary_env(QUIET), silenced(STORE_LOGGERS):
                    self.connection.client().set_terminated(self.run_id, status, end_time)
            except Exception as error:
                self.sink.go_offline(error)
        self.sink.end(status, end_time)
        self.sink.retry()

    def _copy_artifacts(self, source_client, source_run_id: str, copied: set[str]) -> None:
        try:
            with tempfile.TemporaryDirectory() as folder, temporary_env(QUIET):
                target = self.connection.client()
                for item in source_client.list_artifacts(source_run_id):
                    if item.path in copied:
                        continue
                    local = source_client.download_artifacts(source_run_id, item.path, folder)
                    if item.is_dir:
                        target.log_artifacts(self.run_id, local, item.path)
                    else:
                        target.log_artifact(self.run_id, local)
        except Exception as error:
            notify(f"the run's artifacts were not copied to its mirror in "
                   f"{self.connection.backend.name}: {error_line(error)}")


def start_mirror(primary: Connection, experiment_name: str | None, run_name: str,
                 start_time: int, tags: dict, source_run_id: str | None,
                 source_experiment_id: str) -> Mirror:
    """Create the mirror of a run that has started in ``primary``'s store (``tags``: its
    start tags; ``source_run_id`` None while it is offline). If the mirror's store does not
    take it, the mirror starts in that store's offline journal (one line says so)."""
    connection = primary.mirror
    tags = {**tags, **linked_tags(primary, source_run_id, source_experiment_id)}
    tags.pop("mlflow.runName", None)
    experiment_id = connection.experiment_id
    plan = {"run_name": run_name, "start_time": start_time, "tags": tags}
    try:
        with temporary_env(QUIET), silenced(STORE_LOGGERS):
            if experiment_name is not None:
                experiment_id = _experiment_id(connection, experiment_name)
            run = connection.client().create_run(experiment_id, start_time=start_time,
                                                 tags=tags, run_name=run_name)
    except Exception as error:
        sink = RunSink(connection, None, {**plan, "experiment_id": experiment_id})
        sink.go_offline(error)
        return Mirror(connection, experiment_id, None, sink)
    sink = RunSink(connection, run.info.run_id, {**plan, "experiment_id": experiment_id})
    sink.start()
    return Mirror(connection, experiment_id, run, sink)


def _experiment_id(connection: Connection, name: str) -> str:
    """The id of the mirror's experiment for ``name`` (the primary's name), created if
    missing."""
    client = connection.client()
    mirror_name = connection.backend.experiment_name_for(name)
    found = client.get_experiment_by_name(mirror_name)
    return found.experiment_id if found else client.create_experiment(mirror_name)


def link_synced(connection: Connection, run_ids: list[str], mirror_ids: list[str]) -> None:
    """After %aml_sync sent runs of a --track both connection (``run_ids`` to its store,
    ``mirror_ids`` to its mirror's): give each synced run and its pair each other's id and
    page."""
    for store, other, ids in ((connection, connection.mirror, run_ids),
                              (connection.mirror, connection, mirror_ids)):
        for run_id in ids:
            with contextlib.suppress(Exception), temporary_env(QUIET):
                _link_pair(store, other, run_id)


def _link_pair(store: Connection, other: Connection, run_id: str) -> None:
    client = store.client()
    run = client.get_run(run_id)
    link, other_experiment = (run.data.tags.get(LINK_TAG),
                              run.data.tags.get(LINKED_EXPERIMENT_TAG))
    if not link or not other_experiment:
        return
    other_client = other.client()
    found = other_client.search_runs([other_experiment], f"tags.`{LINK_TAG}` = '{link}'",
                                     max_results=1)
    if not found:
        return
    pair = found[0]
    for tag, value in linked_tags(other, pair.info.run_id, other_experiment).items():
        client.set_tag(run_id, tag, value)
    for tag, value in linked_tags(store, run_id, run.info.experiment_id).items():
        other_client.set_tag(pair.info.run_id, tag, value)
