"""`%aml_show`, `%aml_compare` and `%aml_workspace` on real runs in a real store."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import pytest
from conftest import only_line

LOSS_CELL = (
    "%%track --name {name} --param lr={lr} --param layers=2 --tag team=risk\n"
    "import mlflow\n"
    "for step in range(4):\n"
    "    mlflow.log_metric('loss', {lr} / (step + 1), step=step)\n"
    "mlflow.log_text('notes', 'notes/readme.txt')\n"
)


@pytest.fixture
def two_runs(shell, capsys):
    shell.run_line_magic("aml_connect", "--experiment inspect")
    for name, lr in (("slow", 0.1), ("fast", 0.8)):
        assert shell.run_cell(LOSS_CELL.format(name=name, lr=lr)).success
    capsys.readouterr()
    return shell


def test_show_gives_params_metrics_tags_artifacts_and_link(two_runs):
    details = two_runs.run_line_magic("aml_show", "")  # the last run: fast
    text = repr(details)
    assert text.startswith("run fast: FINISHED")
    assert "lr=0.8" in text and "layers=2" in text
    assert "loss=0.2" in text  # the latest value, 0.8 / 4
    assert "team=risk" in text
    assert "cell.py" in text and "notes/readme.txt" in text
    assert "mlflow.source" not in text  # MLflow's own tags are left out
    by_name = repr(two_runs.run_line_magic("aml_show", "slow"))
    assert by_name.startswith("run slow: FINISHED") and "lr=0.1" in by_name
    run_id = re.search(r"run id\s+(\w+)", by_name)[1]
    assert repr(two_runs.run_line_magic("aml_show", run_id)) == by_name
    assert "<table" in details._repr_html_() and "<th style" in details._repr_html_()


def test_show_download_fetches_an_artifact(two_runs, workdir):
    shown = two_runs.run_line_magic("aml_show", "slow --download notes/readme.txt --to got")
    assert repr(shown).splitlines()[0] == "downloaded notes/readme.txt of run slow"
    assert str(workdir / "got" / "readme.txt") in shown._repr_html_()
    path = Path(shown)  # the card is the path too
    assert path == workdir / "got" / "readme.txt"
    assert path.read_text() == "notes"


MODEL_CELL = (
    "%%track --name ridge\n"
    "import mlflow\n"
    "import pandas as pd\n"
    "from sklearn.linear_model import Ridge\n"
    "X = pd.DataFrame({'rooms': [1.0, 2.0, 3.0], 'age': [30.0, 20.0, 10.0]})\n"
    "mlflow.sklearn.log_model(Ridge().fit(X, [1.0, 2.0, 3.0]), name='model',\n"
    "                         input_example=X.head(1), pip_requirements=['scikit-learn'])\n"
    "mlflow.log_text('notes', 'notes/readme.txt')\n"
)


def logged_model_id(shell) -> str:
    from mlflow import MlflowClient

    from mlmagic.core.session import current_session

    run_id = current_session().last_tracked.run_id
    run = MlflowClient().get_run(run_id)
    [model] = MlflowClient().search_logged_models([run.info.experiment_id],
                                                  filter_string=f"source_run_id = '{run_id}'")
    return model.model_id


def test_show_lists_the_runs_logged_models_and_download_reaches_their_files(shell, workdir,
                                                                            capsys):
    """MLflow 3 keeps a logged model outside the run's artifacts; the card lists it and the
    README's --download model/MLmodel reaches it."""
    shell.run_line_magic("aml_connect", "--experiment models")
    assert shell.run_cell(MODEL_CELL).success
    model_id = logged_model_id(shell)
    details = shell.run_line_magic("aml_show", "ridge")
    text = repr(details)
    assert re.search(rf"logged models\s+model\s+sklearn, python_function\s+{model_id}", text)
    assert "notes/readme.txt" in text  # the run's own artifacts are still listed
    assert f"<td style='text-align:left;padding-right:1em'>{model_id}</td>" in \
        details._repr_html_()

    path = Path(shell.run_line_magic("aml_show", "ridge --download model/MLmodel --to got"))
    assert path == workdir / "got" / "MLmodel"
    assert "sklearn:" in path.read_text() and f"model_id: {model_id}" in path.read_text()
    whole = Path(shell.run_line_magic("aml_show", "ridge --download model --to all"))
    assert whole == workdir / "all" / "model"
    assert {"MLmodel", "serving_input_example.json"} <= {p.name for p in whole.iterdir()}
    assert Path(shell.run_line_magic("aml_show", "ridge --download notes --to n")) == \
        workdir / "n" / "notes"

    capsys.readouterr()
    assert not shell.run_cell("%aml_show ridge --download model/weights.bin").success
    line = only_line(capsys)
    assert line.startswith("NotFound: the run ridge has no artifact or logged model file "
                           "'model/weights.bin'. It has: "), line
    assert "model/MLmodel" in line and "notes/readme.txt" in line and "cell.py" in line
    assert not (workdir / "weights.bin").exists()


def test_a_logged_models_link_goes_to_its_page_in_the_mlflow_ui(shell, mlflow_server, workdir):

    import mlflow

    shell.run_line_magic("aml_connect", f"{mlflow_server} --experiment models")
    assert shell.run_cell(MODEL_CELL).success
    model_id = logged_model_id(shell)
    details = shell.run_line_magic("aml_show", "ridge")
    experiment_id = details.run.info.experiment_id
    link = f"{mlflow_server}/#/experiments/{experiment_id}/models/{model_id}"
    assert link in repr(details) and f"href='{link}'" in details._repr_html_()
    ui = Path(mlflow.__file__).parent / "server" / "js" / "build" / "static" / "js"
    assert any("/experiments/:experimentId/models/:loggedModelId" in script.read_text()
               for script in ui.glob("*.js"))  # the route exists in this MLflow's own UI
    path = Path(shell.run_line_magic("aml_show", "ridge --download model/MLmodel --to got"))
    assert f"model_id: {model_id}" in path.read_text()  # through the server's artifact proxy


def test_a_model_saved_as_run_artifacts_is_downloaded_from_the_run(shell, workdir):
    """MLflow 2's way (and the workaround where a store has no logged-models API)."""
    shell.run_line_magic("aml_connect", "--experiment models")
    assert shell.run_cell(
        "%%track --name saved\n"
        "import mlflow\n"
        "from sklearn.linear_model import Ridge\n"
        "mlflow.sklearn.save_model(Ridge().fit([[1.0], [2.0]], [1.0, 2.0]), 'saved')\n"
        "mlflow.log_artifacts('saved', 'model')\n").success
    details = repr(shell.run_line_magic("aml_show", "saved"))
    assert "model/MLmodel" in details and "logged models" not in details
    path = Path(shell.run_line_magic("aml_show", "saved --download model/MLmodel --to got"))
    assert path == workdir / "got" / "MLmodel" and "sklearn:" in path.read_text()


def test_compare_puts_runs_side_by_side_marks_differences_and_charts_a_metric(two_runs):
    comparison = two_runs.run_line_magic("aml_compare", "slow fast --metric loss")
    assert list(comparison.table.columns) == ["slow", "fast"]
    assert comparison.table.loc["params.lr"].tolist() == ["0.1", "0.8"]
    assert comparison.differing == ["metrics.loss", "params.lr"]  # layers is the same
    text = repr(comparison)
    assert "* params.lr" in text and "  params.layers" in text
    assert comparison.history["fast"].tolist() == [0.8, 0.4, 0.8 / 3, 0.2]
    assert comparison.history.index.tolist() == [0, 1, 2, 3]
    html = comparison._repr_html_()
    assert html.count("background:#fff3b0") == 2
    image = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)[1]
    from matplotlib.image import imread

    pixels = imread(io.BytesIO(base64.b64decode(image)), format="png")
    assert pixels.shape[0] > 200 and pixels.shape[1] > 400  # a real chart, 6 x 3.2 in at 90 dpi


def test_compare_without_a_chart_library_draws_the_history_as_svg(two_runs, monkeypatch):
    import sys

    comparison = two_runs.run_line_magic("aml_compare", "slow last --metric loss")
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # as if not installed
    html = comparison._repr_html_()
    assert "data:image/png" not in html
    svg = re.search(r"<svg .*</svg>", html)[0]
    assert "loss by step" in svg
    lines = re.findall(r"<polyline data-label='([^']+)' points='([^']+)'", svg)
    assert [label for label, _ in lines] == ["slow", "fast"]
    assert all(len(points.split()) == 4 for _, points in lines)  # four steps each
    assert "0.266667" in repr(comparison)  # the text form keeps the numbers


def test_workspace_of_the_embedded_store(two_runs, workdir):
    text = repr(two_runs.run_line_magic("aml_workspace", ""))
    assert text.startswith("local tracking store")
    assert f"sqlite:///{workdir / 'mlflow.db'}" in text
    assert "inspect (id" in text and "mlflow ui --backend-store-uri" in text
    assert str(workdir / "mlruns") in text


def test_workspace_of_a_server_hides_its_password(shell, mlflow_server):
    password_uri = mlflow_server.replace("http://", "http://ada:hunter2@")
    shell.run_line_magic("aml_connect", f"{password_uri} --experiment inspect")
    text = repr(shell.run_line_magic("aml_workspace", ""))
    assert "mlflow server tracking store" in text
    assert "hunter2" not in text and "user               ada" in text


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("%aml_show nobody", "NotFound: no run 'nobody' (id or name) in the experiment"),
        ("%aml_show slow --download nothing.txt", "NotFound: the run slow has no artifact or "
         "logged model file 'nothing.txt'. It has: cell.py, notes/readme.txt"),  # and more
        ("%aml_compare slow", "InvalidInput: compare needs two runs or more"),
        ("%aml_compare slow fast --metric accuracy", "NotFound: none of these runs has the "
         "metric 'accuracy'"),
        ("%aml_compare slow ghost", "NotFound: no run 'ghost'"),
        ("%aml_compare", "UsageError: the following arguments are required: runs"),
        ("%aml_show slow --colour red", "UsageError: unrecognized arguments: --colour"),
    ],
)
def test_bad_input_is_one_line(two_runs, capsys, workdir, line, expected):
    result = two_runs.run_cell(line)
    assert not result.success
    assert only_line(capsys).startswith(expected)
    assert not (workdir / "nothing.txt").exists()


def test_show_last_before_any_run_is_one_line(shell, capsys):
    shell.run_line_magic("aml_connect", "--experiment inspect")
    capsys.readouterr()
    shell.run_cell("%aml_show")
    assert only_line(capsys).startswith("InvalidInput: no run yet in this session")


def test_show_and_compare_of_huge_runs_stay_small_enough_for_a_notebook(shell):
    """A run card lists 50 entries and a comparison a screenful of rows, whatever the runs
    hold: Databricks cuts a text result at 50,000 characters (DBR 16.4 and before) and any cell
    output at 10 MB by default (DBR 17), 1 MB at its smallest."""
    import sys

    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    connection = shell.run_line_magic("aml_connect", "--experiment huge")
    client = MlflowClient()
    for name in ("wide", "long"):
        run_id = client.create_run(connection.experiment_id, run_name=name).info.run_id
        for first in range(0, 1000, 100):
            client.log_batch(run_id, params=[Param(f"p{k:04d}", f"{name}-" + "v" * 500)
                                             for k in range(first, first + 100)])
        for first in range(0, 20_000, 1000):
            client.log_batch(run_id, metrics=[Metric("loss", 1 / (s + 1), 0, s)
                                              for s in range(first, first + 1000)])
        client.set_terminated(run_id)
    details = shell.run_line_magic("aml_show", "long")
    assert "… and 950 more" in repr(details) and len(details._repr_html_()) < 50_000
    comparison = shell.run_line_magic("aml_compare", "wide long --metric loss")
    assert len(comparison.table) == 1001 and len(comparison.history) == 20_000  # all kept
    assert "… and 941 more rows" in repr(comparison)
    assert len(repr(comparison)) < 50_000 and len(comparison._repr_html_()) < 1_000_000
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "matplotlib.figure", None)  # the SVG chart
        assert len(comparison._repr_html_()) < 1_000_000
