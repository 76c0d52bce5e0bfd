"""The panel driven as a user drives it (values typed, boxes ticked, buttons clicked) in a
real IPython shell, checked against the real store, a real `mlflow server`, a real local
endpoint (`mlflow models serve`) and the Azure emulator; and its summary where widgets
cannot render (a terminal IPython)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request

import mlflow
import nbformat
import numpy as np
import pytest
from conftest import PRICE_CELL, latest_price_version
from mlflow import MlflowClient
from servers import clean_environment, free_port, process_alive

from mlmagic.core.session import current_session
from mlmagic.deploy import targets

SUBSCRIPTION = "6d1c3a52-0000-4b1e-9c1f-2f6f1a7e0001"
TRAIN_CELL = PRICE_CELL.replace(" --register price", "")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture
def open_panel(shell):
    """Open panels with %aml_panel (first load done); close them after the test."""
    opened = []

    def open_():
        panel = shell.run_line_magic("aml_panel", "")
        opened.append(panel)
        assert panel.wait(120)
        return panel

    yield open_
    for panel in opened:
        panel.close()


def click(panel, button, limit: float = 300) -> str:
    """Click and wait for the action to end; the status line it left."""
    button.click()
    assert panel.wait(limit)
    return panel.message


def header(panel, title: str):
    return next(h for h in panel.runs.header[1:] if h.description.split(" ")[0] == title)


def shown_names(panel) -> list[str]:
    return [re.sub("<[^>]+>", "", row.cells[1].value) for row in panel.runs.rows
            if row.run_id is not None]


def displayed(panel) -> dict:
    """What displaying the panel outside a kernel shows: its one output's bundle."""
    from IPython.display import display
    from IPython.utils.capture import capture_output

    with capture_output() as captured:
        display(panel)
    (output,) = captured.outputs
    return output.data


def row_of(panel, name: str):
    return next(row for row in panel.runs.rows if re.sub("<[^>]+>", "", row.cells[1].value)
                == name)


def test_the_connect_form_connects_and_the_picker_switches_experiment(open_panel, workdir):
    panel = open_panel()
    assert panel.tabs.titles == ("Connection", "Runs", "Models", "Deploy")
    team = f"sqlite:///{workdir / 'team.db'}"
    panel.connection.uri.value = team
    panel.connection.experiment.value = "churn"
    message = click(panel, panel.connection.connect_button)

    assert message == f"connected to {team}, experiment churn"
    assert current_session().connection.tracking_uri == team
    assert current_session().connection.experiment_name == "churn"
    assert mlflow.get_tracking_uri() == team
    assert MlflowClient(team).get_experiment_by_name("churn") is not None
    assert team in panel.connection.summary.value and "churn" in panel.connection.summary.value
    assert panel.connection.experiments.value == "churn"

    MlflowClient(team).create_experiment("pricing")
    panel.refresh()
    assert panel.wait(60)
    assert set(panel.connection.experiments.options) == {"Default", "churn", "pricing"}
    panel.connection.experiments.value = "pricing"
    assert panel.wait(60)
    assert panel.message == "experiment pricing"
    assert current_session().connection.experiment_name == "pricing"
    connection = current_session().connection
    assert mlflow.get_experiment_by_name("pricing").experiment_id == connection.experiment_id


def test_connect_errors_are_one_line_in_the_panel_and_change_nothing(open_panel, capsys):
    panel = open_panel()
    before = current_session().connection
    dead = f"http://127.0.0.1:{free_port()}"
    cases = [
        ({"uri": dead}, "ConnectionFailed: cannot reach the MLflow server"),
        ({"uri": dead, "workspace": "ws"},
         "InvalidInput: give a tracking URI or an Azure ML workspace, not both (or both with "
         "--track both)."),
        ({"workspace": "ws"}, "InvalidInput: --subscription and --resource-group missing"),
        ({"config": "/nowhere/config.json"}, "ConfigError: "),
    ]
    for form, expected in cases:
        for field in ("uri", "workspace", "subscription", "resource_group", "config"):
            getattr(panel.connection, field).value = form.get(field, "")
        message = click(panel, panel.connection.connect_button)
        assert message.startswith(expected), message
        assert "\n" not in message and panel.worker.state == "error"
        assert "✗" in panel.worker.status.value
        assert current_session().connection is before
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err


def test_a_password_in_the_uri_is_hidden_and_not_kept_in_the_form(open_panel, mlflow_server):
    panel = open_panel()
    with_password = mlflow_server.replace("http://", "http://alice:s3cret@")
    panel.connection.uri.value = with_password
    message = click(panel, panel.connection.connect_button)
    assert message.startswith(f"connected to {mlflow_server} as alice, experiment")
    assert panel.connection.uri.value == ""
    assert "s3cret" not in panel.connection.summary.value + panel.message
    assert "s3cret" not in repr(panel) and "s3cret" not in panel._repr_mimebundle_()["text/html"]


def _track_three_runs(shell) -> None:
    for i in range(3):
        cell = (
            f"%%track --name r{i} --param lr=0.{i}\n"
            "import mlflow\n"
            f"for step in range({5 + i}):\n"
            f"    mlflow.log_metric('loss', 1.0 / (step + 1 + {i}), step=step)\n"
            f"mlflow.log_metric('acc', {0.5 + i / 10})\n"
        )
        assert shell.run_cell(cell).success


def test_the_runs_table_follows_tracked_cells_sorts_and_charts_the_selected_runs(
    open_panel, shell
):
    shell.run_line_magic("aml_connect", "-e runs")
    panel = open_panel()
    assert panel.runs.page_label.value == "runs 0–0 of 0"
    _track_three_runs(shell)
    assert panel.wait(60)  # no refresh asked: each tracked cell's end reloads the table
    assert panel.runs.page_label.value == "runs 1–3 of 3"
    assert shown_names(panel) == ["r2", "r1", "r0"]  # newest first
    titles = [h.description for h in panel.runs.header[1:]]
    assert titles == ["name", "status", "start ▼", "duration", "acc", "loss", "lr"]

    header(panel, "acc").click()
    assert shown_names(panel) == ["r2", "r1", "r0"] and header(panel, "acc").description == "acc ▼"
    header(panel, "acc").click()
    assert shown_names(panel) == ["r0", "r1", "r2"] and header(panel, "acc").description == "acc ▲"
    header(panel, "name").click()
    assert shown_names(panel) == ["r0", "r1", "r2"]
    assert [c.value for c in row_of(panel, "r1").cells[2:]][-3:] == ["0.6", "0.1429", "0.1"]

    row_of(panel, "r0").tick.value = True
    row_of(panel, "r2").tick.value = True
    assert panel.wait(60)
    assert panel.runs.metric.options == ("acc", "loss")
    panel.runs.metric.value = "loss"
    assert panel.wait(60)
    chart = panel.runs.chart.value
    lines = dict(re.findall(r"data-label='([^']+)' points='([^']+)'", chart))
    runs = {run.info.run_name: run for run in mlflow.search_runs(output_format="list")}
    assert set(lines) == {f"{name} ({runs[name].info.run_id[:6]})" for name in ("r0", "r2")}
    points = {label.split(" ")[0]: len(p.split(" ")) for label, p in lines.items()}
    history = MlflowClient().get_metric_history(runs["r2"].info.run_id, "loss")
    assert points == {"r0": 5, "r2": 7} and len(history) == 7

    details = panel.runs.details.value  # the run picked last
    assert "run r2: FINISHED" in details and "cell.py" in details and "lr=0.2" in details
    assert "loss=0.111111" in details


def test_many_runs_are_paged_and_the_selection_survives_paging(open_panel, shell):
    shell.run_line_magic("aml_connect", "-e many")
    client = MlflowClient()
    for i in range(25):
        run = client.create_run(current_session().connection.experiment_id, run_name=f"run-{i:02d}",
                                start_time=1_700_000_000_000 + i * 1000)
        client.log_metric(run.info.run_id, "score", float(i), step=0)
        client.set_terminated(run.info.run_id, end_time=1_700_000_000_000 + i * 1000 + 500)
    panel = open_panel()
    assert panel.runs.page_label.value == "runs 1–20 of 25"
    assert shown_names(panel)[:2] == ["run-24", "run-23"]
    assert panel.runs.previous.disabled and not panel.runs.next.disabled
    panel.runs.next.click()
    assert panel.runs.page_label.value == "runs 21–25 of 25" and panel.runs.next.disabled
    assert shown_names(panel) == ["run-04", "run-03", "run-02", "run-01", "run-00"]
    assert all(cell.layout.display == "none" for row in panel.runs.rows[5:] for cell in row.cells)
    assert all(cell.layout.display == "" for row in panel.runs.rows[:5] for cell in row.cells)
    row_of(panel, "run-02").tick.value = True
    assert panel.wait(60)
    panel.runs.previous.click()
    assert len(panel.runs.selected) == 1 and not any(r.tick.value for r in panel.runs.rows)
    assert "run run-02: FINISHED" in panel.runs.details.value
    assert "500 ms" in panel.runs.details.value


def test_a_running_cell_shows_its_live_chart_in_the_panel(open_panel, shell):
    shell.run_line_magic("aml_connect", "-e live")
    panel = open_panel()
    shell.user_ns["panel"] = panel
    cell = (
        "%%track --name live\n"
        "import mlflow, time\n"
        "for step in range(4):\n"
        "    mlflow.log_metric('loss', 1.0 / (step + 1), step=step)\n"
        "deadline = time.monotonic() + 20\n"
        "while 'polyline' not in panel.runs.live.value and time.monotonic() < deadline:\n"
        "    time.sleep(0.2)\n"
        "seen = panel.runs.live.value\n"
    )
    assert shell.run_cell(cell).success
    seen = shell.user_ns["seen"]
    assert "live: run live (running), loss" in seen
    (points,) = re.findall(r"points='([^']+)'", seen)
    assert len(points.split(" ")) == 4
    assert panel.wait(60)
    assert panel.runs.live.value == ""
    assert shown_names(panel) == ["live"]


def test_register_versions_and_aliases_from_the_panel(open_panel, shell, client):
    shell.run_line_magic("aml_connect", "-e models")
    assert shell.run_cell(TRAIN_CELL).success
    run_id = current_session().last_tracked.run_id
    panel = open_panel()
    panel.models.name.value = "price"
    message = click(panel, panel.models.register_button)
    assert message == "InvalidInput: select one run in the Runs tab to register its model " \
                      "(0 selected)."
    assert client().search_registered_models() == []

    row_of(panel, "price-model").tick.value = True
    assert click(panel, panel.models.register_button) == "registered price version 1"
    assert click(panel, panel.models.register_button) == "registered price version 2"
    versions = client().search_model_versions("name = 'price'")
    assert sorted(str(v.version) for v in versions) == ["1", "2"]
    assert {v.run_id for v in versions} == {run_id}
    assert panel.models.model.value == "price"
    table = panel.models.table.value
    assert table.index("<td style='text-align:left;padding-right:1em'>2<") < table.index(
        "<td style='text-align:left;padding-right:1em'>1<")

    panel.models.version.value = "1"
    panel.models.alias.value = " "
    assert click(panel, panel.models.alias_button) == "InvalidInput: the alias is empty. " \
                                                       "Example: champion"
    panel.models.alias.value = "champion"
    assert click(panel, panel.models.alias_button) == "price@champion is version 1"
    assert str(client().get_model_version_by_alias("price", "champion").version) == "1"
    assert "champion" in panel.models.table.value
    assert ("price:1 @champion", "price:1") in [
        (label, value) for label, value in zip(panel.deploy.model._options_labels,
                                               panel.deploy.model._options_values, strict=True)]


@pytest.fixture
def price(shell):
    shell.run_line_magic("aml_connect", "--experiment deploy")
    assert shell.run_cell(PRICE_CELL).success
    yield shell  # the session's end (conftest) stops its local endpoints


def test_deploy_locally_send_a_test_request_and_undeploy(price, open_panel):

    panel = open_panel()
    assert panel.deploy.model.value == "price:1"
    assert panel.deploy.target.options == tuple(targets())  # whatever targets mlmagic has
    assert [field.description for field in panel.deploy.options.children] == ["port"]
    panel.deploy.name.value = "svc"
    panel.deploy.deploy_button.click()
    assert panel.worker.busy  # the deploy goes on in the background, the notebook does not wait
    assert price.run_cell("houses = pd.DataFrame({'rooms': [5.0, 6.0], 'age': [1.0, 2.0]})\n"
                          "bad = pd.DataFrame({'colour': ['red']})").success
    assert panel.wait(300)
    assert panel.message.startswith("endpoint svc is ready: http://127.0.0.1:")
    endpoint = current_session().endpoints["svc"]
    assert "alive" in panel.deploy.table.value and endpoint.url in panel.deploy.table.value
    body = json.dumps({"dataframe_split": {"columns": ["rooms", "age"], "data": [[5.0, 1.0]]}})
    request = urllib.request.Request(endpoint.url, body.encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert np.allclose(json.loads(response.read())["predictions"], [49.0])

    assert set(panel.deploy.data.options) == {"X", "bad", "houses"}  # the notebook's frames
    panel.deploy.data.value = "houses"
    assert click(panel, panel.deploy.predict_button) == "svc answered 2 predictions"
    assert "svc on houses (2 rows): [49, 58]" in panel.deploy.predictions.value
    panel.deploy.data.value = "bad"
    message = click(panel, panel.deploy.predict_button)
    assert message.startswith("InvalidInput: the endpoint svc refused the data")
    assert "\n" not in message

    pid = endpoint.details["pid"]
    assert click(panel, panel.deploy.undeploy_button) == "endpoint svc is stopped"
    assert not process_alive(pid)
    assert "no endpoint yet" in panel.deploy.table.value
    assert price.run_line_magic("aml_endpoints", "").empty


def test_a_deploy_that_cannot_happen_is_one_line_and_starts_nothing(price, open_panel):
    panel = open_panel()
    panel.deploy.target.value = "online"
    message = click(panel, panel.deploy.deploy_button)
    assert message.startswith("InvalidInput: the online target deploys to an Azure ML "
                              "workspace; connect to one first")
    panel.deploy.target.value = "local"
    panel.deploy.model.options = [("price:1", "price:1"), ("price:9", "price:9")]
    panel.deploy.model.value = "price:9"
    assert click(panel, panel.deploy.deploy_button) == "NotFound: the model 'price' has no " \
                                                       "version 9; it has [1]."
    assert price.run_line_magic("aml_endpoints", "").empty
    assert "no endpoint yet" in panel.deploy.table.value


def test_a_target_s_own_options_are_asked_for_and_passed(priced, azure, open_panel):
    panel = open_panel()
    panel.deploy.model.value = f"price:{latest_price_version(azure)}"
    panel.deploy.target.value = "kubernetes"
    shown = [field.description for field in panel.deploy.options.children]
    assert shown == ["instance type", "instance count", "compute"]
    panel.deploy.name.value = "price-k8s-panel"
    assert click(panel, panel.deploy.deploy_button).startswith(
        "InvalidInput: the kubernetes target needs compute NAME")
    fields = {field.description: field for field in panel.deploy.options.children}
    fields["instance count"].value = "two"
    assert click(panel, panel.deploy.deploy_button) == (
        "InvalidInput: instance count expects a whole number, got 'two'.")
    assert "price-k8s-panel" not in azure.online.endpoints
    fields["instance count"].value, fields["compute"].value = "2", "k8s-cluster"
    assert click(panel, panel.deploy.deploy_button).startswith("endpoint price-k8s-panel is ready")
    deployment = azure.online.deployments[("price-k8s-panel", "blue")]
    assert deployment["properties"]["endpointComputeType"] == "Kubernetes"
    assert deployment["sku"]["capacity"] == 2


def test_the_azure_form_connects_to_a_workspace(open_panel, azure):
    panel = open_panel()
    form = panel.connection
    form.workspace.value, form.subscription.value = "ws-churn", SUBSCRIPTION
    form.resource_group.value, form.experiment.value = "rg-notebooks", "panel"
    assert click(panel, form.connect_button).endswith("experiment panel")
    assert current_session().connection.backend.name == "azure ml"
    assert "ws-churn" in form.summary.value and "https://ml.azure.emulator.test/" in \
        form.summary.value
    assert MlflowClient(tracking_uri=azure.mlflow_url).get_experiment_by_name("panel")


def test_where_widgets_cannot_render_the_panel_is_a_summary_with_links(
    open_panel, shell, mlflow_server
):
    shell.run_line_magic("aml_connect", f"{mlflow_server} -e summary")
    _track_three_runs(shell)
    panel = open_panel()
    bundle = displayed(panel)
    assert WIDGET_VIEW in bundle
    run_id = current_session().last_tracked.run_id
    experiment_id = current_session().connection.experiment_id
    link = f"{mlflow_server}/#/experiments/{experiment_id}/runs/{run_id}"
    assert f"<a href='{link}'" in bundle["text/html"]
    text = bundle["text/plain"]
    assert text.startswith("mlmagic panel (a summary: this front end does not show widgets)")
    assert "experiment    summary" in text and "r2  FINISHED" in text and link in text


# Databricks cuts a cell's output at 10 MB by default in DBR 17, settable down to 1 MB, and a
# text result at 50,000 characters up to DBR 16.4
# (docs.databricks.com/en/notebooks/notebook-limitations.html): the panel stays under both.
OUTPUT_LIMIT = 1_000_000
TEXT_LIMIT = 50_000


def _fill_big_store(client, experiment_id: str) -> tuple[str, str]:
    """500 runs with long names, 40 metrics and three 6,000-character params each (MLflow's
    longest), one of them with 300 params and a 20,000-point history; a model of 60 versions.
    The busy run's id, and the model's name."""
    from mlflow.entities import Metric, Param, RunTag

    start, long = 1_700_000_000_000, "v" * 5990
    for i in range(500):
        run_id = client.create_run(experiment_id, run_name=f"run-{i:03d}-" + "n" * 200,
                                   start_time=start + i).info.run_id
        client.log_batch(run_id, metrics=[Metric(f"metric_{k:02d}", i * k, start, 0)
                                          for k in range(40)],
                         params=[Param(f"p{k}", f"{i}{long}") for k in range(3)],
                         tags=[RunTag("note", long)])
        client.set_terminated(run_id, end_time=start + 1000 + i)
    busy = client.create_run(experiment_id, run_name="busy", start_time=start + 600).info.run_id
    for first in range(0, 300, 100):
        client.log_batch(busy, params=[Param(f"q{k:03d}", "w" * 1000)
                                       for k in range(first, first + 100)])
    for first in range(0, 20_000, 1000):
        client.log_batch(busy, metrics=[Metric("metric_00", float(step), start, step)
                                        for step in range(first, first + 1000)])
    client.set_terminated(busy, end_time=start + 5000)
    client.create_registered_model("many-versions")
    for _ in range(60):
        client.create_model_version("many-versions", f"runs:/{busy}/model", run_id=busy)
    return busy, "many-versions"


def _widget_state_size(created) -> int:
    """Bytes of the state of the widgets in ``created`` (what a front end receives)."""
    import ipywidgets

    return sum(len(json.dumps(widget.get_state(), default=str))
               for widget in created if isinstance(widget, ipywidgets.Widget))


def test_a_panel_over_many_big_runs_stays_under_databricks_output_limits(open_panel, shell):
    from ipywidgets.widgets.widget import _instances

    shell.run_line_magic("aml_connect", "-e big")
    client = MlflowClient()
    busy, model = _fill_big_store(client, current_session().connection.experiment_id)
    before = set(_instances)
    panel = open_panel()
    assert panel.runs.page_label.value == "runs 1–20 of 501"
    panel.runs.select([busy])
    assert panel.wait(120)
    panel.models.model.value = model
    assert panel.wait(60)
    bundle = displayed(panel)
    created = [_instances[key] for key in set(_instances) - before]
    sizes = {"text": len(bundle["text/plain"]), "html": len(bundle["text/html"]),
             "widgets": _widget_state_size(created)}
    assert sizes["text"] < TEXT_LIMIT, sizes
    assert sum(sizes.values()) < OUTPUT_LIMIT, sizes
    assert "polyline" in panel.runs.chart.value and "busy" in panel.runs.details.value
    assert "the newest 50 of 60 versions" in panel.models.table.value
    standing = len(_instances)
    for _ in range(3):  # a sort rebuilds the header: the old one is closed, not kept
        header(panel, "name").click()
    panel.refresh()
    assert panel.wait(120)
    assert len(_instances) == standing


def test_a_terminal_ipython_prints_the_summary(workdir):
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    experiment_id = client.create_experiment("terminal")
    run = client.create_run(experiment_id, run_name="from-terminal")
    client.log_metric(run.info.run_id, "rmse", 0.25)
    client.set_terminated(run.info.run_id)
    result = subprocess.run(
        [sys.executable, "-m", "IPython", "--no-banner", "--colors=NoColor", "-c",
         "%load_ext mlmagic\n%aml_connect -e terminal\n%aml_panel"],
        cwd=workdir, capture_output=True, text=True, timeout=180, env=clean_environment(),
    )
    assert result.returncode == 0, result.stderr
    assert "mlmagic panel (a summary: this front end does not show widgets)" in result.stdout
    assert "from-terminal  FINISHED" in result.stdout and "rmse=0.25" in result.stdout
    assert "VBox(" not in result.stdout and "Traceback" not in result.stdout + result.stderr


def test_the_panel_tour_notebook_runs_in_a_real_kernel(workdir):
    from nbclient import NotebookClient
    from test_notebooks import REPO

    nb = nbformat.read(REPO / "notebooks" / "panel_tour.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, resources={"metadata": {"path": str(workdir)}}).execute()
    outputs = {cell.source.splitlines()[0]: cell.get("outputs", []) for cell in nb.cells
               if cell.cell_type == "code"}
    summary, view = outputs["panel = mlmagic.panel()  # the same as %aml_panel, kept in a variable"]
    assert WIDGET_VIEW in view["data"] and "a live widget" in view["data"]["text/plain"]
    assert "mlmagic panel (a summary" in summary["data"]["text/html"]
    assert "ridge-light" in summary["data"]["text/plain"]
    printed = "".join(o.get("text", "") for o in outputs["panel.wait()"])
    assert printed.strip() == "runs 1–3 of 3 | registered tour-model version 1"
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    (version,) = client.search_model_versions("name = 'tour-model'")
    assert client.get_run(version.run_id).info.run_name == "ridge-none"


STATIC_CELLS = ["%load_ext mlmagic\n%aml_connect -e static",
                "%%track --name static-ridge\nimport mlflow\nmlflow.log_metric('rmse', 0.25)",
                "%aml_panel"]


def _static_html(nb) -> str:
    """The panel cell as `jupyter nbconvert --to html` shows it with JavaScript off: the
    page's scripts (the widget manager, the widget views and state) removed."""
    from nbconvert import HTMLExporter

    only_panel = nbformat.v4.new_notebook(metadata=nb.metadata, cells=[nb.cells[-1]])
    page, _ = HTMLExporter().from_notebook_node(only_panel)
    return re.sub(r"<script\b.*?</script>", "", page, flags=re.S)


def test_a_saved_notebook_shows_the_panel_s_summary_where_widgets_cannot_render(workdir):
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in STATIC_CELLS])
    NotebookClient(nb, timeout=300, resources={"metadata": {"path": str(workdir)}}).execute()
    outputs = nb.cells[-1].outputs
    assert [o for o in outputs if WIDGET_VIEW in o.get("data", {})], outputs  # the live panel
    summaries = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert len(summaries) == 1 and "static-ridge" in summaries[0], outputs
    with_state = _static_html(nb)  # as nbclient saves it: the widgets' state in the metadata
    del nb.metadata["widgets"]  # as JupyterLab saves it by default
    for page in (with_state, _static_html(nb)):
        assert "static-ridge" in page and "rmse=0.25" in page
        assert "mlmagic panel (a summary" in page
