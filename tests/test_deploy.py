"""Local deployment: a registered model served by a real `mlflow models serve` process on
127.0.0.1, verified, scored over HTTP, replaced and stopped."""

from __future__ import annotations

import json
import socket
import subprocess

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import PRICE_CELL, error_after_progress, only_line
from servers import process_alive


@pytest.fixture
def price(shell):
    shell.run_line_magic("aml_connect", "--experiment deploy")
    assert shell.run_cell(PRICE_CELL).success
    shell.user_ns["houses"] = pd.DataFrame({"rooms": [5.0, 6.0], "age": [1.0, 2.0]})
    yield shell  # the session's end (conftest) stops its local endpoints


def test_deploy_predict_replace_undeploy(price, capsys):
    summary = price.run_line_magic("aml_deploy", "price --name svc")
    shown = repr(summary)
    assert "endpoint svc: ready" in shown and "http://127.0.0.1:" in shown

    # the card's request is the model's input example, one row, and pasted into a shell it
    # gets the model's prediction (rooms 1, age 30: 10 * 1 - 30)
    [line] = [row for label, row in summary.rows if label == "try it"]
    assert "[...]" not in line and line.count("[[") == 1 and len(line) < 200, line
    pasted = subprocess.run(line, shell=True, capture_output=True, text=True, timeout=60)
    assert pasted.returncode == 0, pasted.stderr
    assert np.allclose(json.loads(pasted.stdout)["predictions"], [-20.0]), pasted.stdout
    table = price.run_line_magic("aml_endpoints", "")
    assert list(table["name"]) == ["svc"] and list(table["state"]) == ["alive"]
    assert table["model"][0] == "price version 1"

    assert price.run_cell("preds = %aml_predict svc houses").success
    expected = mlflow.pyfunc.load_model("models:/price/1").predict(price.user_ns["houses"])
    assert np.allclose(price.user_ns["preds"], expected)
    assert np.allclose(price.user_ns["preds"], [49.0, 58.0])
    import mlmagic

    from_python = mlmagic.predict("svc", price.user_ns["houses"])  # the same, without magics
    assert isinstance(from_python, np.ndarray) and np.allclose(from_python, expected)

    from mlmagic.core.session import current_session

    first_pid = current_session().endpoints["svc"].details["pid"]
    price.run_line_magic("aml_deploy", "price:1 --name svc --check houses")
    second_pid = current_session().endpoints["svc"].details["pid"]
    assert second_pid != first_pid and not process_alive(first_pid) and process_alive(second_pid)

    done = repr(price.run_line_magic("aml_undeploy", "svc"))  # the action confirms itself
    assert "endpoint svc: stopped" in done and "price version 1" in done
    assert not process_alive(second_pid)
    assert price.run_line_magic("aml_endpoints", "").empty


def test_bad_deploys_are_one_line_and_leave_nothing_running(price, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        cases = [
            ("%aml_deploy nosuchmodel", "NotFound: no registered model named 'nosuchmodel'"),
            ("%aml_deploy price:7", "NotFound: the model 'price' has no version 7"),
            (f"%aml_deploy price --port {port}", f"InvalidInput: port {port} on 127.0.0.1"),
            ("%aml_deploy price --target moon", "UsageError: argument --target: invalid choice"),
            ("%aml_deploy price --check nothing", "InvalidInput: there is no variable 'nothing'"),
            ("%aml_predict ghost houses", "NotFound: no endpoint named 'ghost'"),
            ("%aml_undeploy ghost", "NotFound: no endpoint named 'ghost'"),
        ]
        for line, expected in cases:
            capsys.readouterr()
            assert not price.run_cell(line).success
            assert only_line(capsys).startswith(expected), line
    assert price.run_line_magic("aml_endpoints", "").empty


def test_a_model_that_cannot_be_served_is_one_line(price, capsys, tmp_path):
    import mlflow

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "MLmodel").write_text("flavors:\n  custom_only:\n    data: weights.bin\n")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(folder), "model")
    price.run_line_magic("aml_register", f"opaque --run {run.info.run_id}")
    capsys.readouterr()
    assert not price.run_cell("%aml_deploy opaque").success
    assert only_line(capsys).startswith("InvalidInput: the model opaque version 1 has no")
    assert price.run_line_magic("aml_endpoints", "").empty


WHERE_AM_I = """\
import os
import mlflow
import pandas as pd

KERNEL = os.getpid()


class WhereAmI(mlflow.pyfunc.PythonModel):
    '''Answers 'kernel' in the process that logged it and 'server' anywhere else: a model
    that really serves differently from how it predicts here.'''

    def predict(self, context, model_input):
        here = "kernel" if os.getpid() == KERNEL else "server"
        return [f"{here}-{row}" for row in model_input["n"]]


class Labels(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input):
        if (model_input["n"] < 0).any():
            raise ValueError("n must not be negative")
        return ["even" if n % 2 == 0 else "odd" for n in model_input["n"]]


example = pd.DataFrame({"n": [1, 2]})
for name, model in (("where", WhereAmI()), ("labels", Labels())):
    with mlflow.start_run():
        mlflow.pyfunc.log_model(name="model", python_model=model, input_example=example,
                                registered_model_name=name)
"""


def test_labels_are_checked_exactly_and_a_model_that_serves_differently_is_one_line(
    price, capsys
):
    assert price.run_cell(WHERE_AM_I).success
    summary = price.run_line_magic("aml_deploy", "labels")  # string labels: no crash
    assert "endpoint labels: ready" in repr(summary)
    capsys.readouterr()
    # the model's own exception is its reason: its last line, not the server's stack trace
    price.run_cell("import pandas as pd\nnegative = pd.DataFrame({'n': [-1]})")
    assert not price.run_cell("%aml_predict labels negative").success
    assert only_line(capsys) == ("InvalidInput: the endpoint labels refused the data: the "
                                 "model raised ValueError: n must not be negative")

    assert not price.run_cell("%aml_deploy where").success
    line = error_after_progress(capsys)
    assert line.startswith("MlmagicError: the endpoint where answers differently from the "
                           "model itself on the check input (2 of 2 differ; the first: served "
                           "'server-1', expected 'kernel-1')"), line
    table = price.run_line_magic("aml_endpoints", "").set_index("name")
    assert table.loc["where", "state"] == "alive (unverified)"  # left up, for inspection
    assert table.loc["labels", "state"] == "alive"


def test_a_refused_request_shows_mlflows_reason(price, capsys):
    price.run_line_magic("aml_deploy", "price --name svc")
    price.run_cell("import pandas as pd\nwrong = pd.DataFrame({'colour': ['red']})")
    capsys.readouterr()
    assert not price.run_cell("preds = %aml_predict svc wrong").success
    line = only_line(capsys)
    assert line.startswith("InvalidInput: the endpoint svc refused the data: Model is missing "
                           "inputs ['rooms', 'age']"), line  # MLflow quotes the data: left out
    assert "colour" in line and "red" not in line and "HTTP" not in line, line


def test_a_request_is_built_from_the_signature_when_the_model_has_no_example(price):
    """No input example: one row of typical values from the signature, which the model
    takes; neither: a placeholder that says what goes where."""
    from mlmagic.core.examples import PLACEHOLDER, curl_line, sample_request

    assert price.run_cell(
        "from mlflow.models import infer_signature\n"
        "with mlflow.start_run():\n"
        "    signed = mlflow.sklearn.log_model(reg, name='model', pip_requirements=[],\n"
        "                                      signature=infer_signature(X, y))\n"
        "    bare = mlflow.sklearn.log_model(reg, name='bare', pip_requirements=[])\n").success
    body = sample_request(price.user_ns["signed"].model_uri)
    assert json.loads(body) == {"dataframe_split": {"columns": ["rooms", "age"],
                                                    "data": [[0.0, 0.0]]}}
    model = mlflow.pyfunc.load_model(price.user_ns["signed"].model_uri)
    assert model.predict(pd.DataFrame(**json.loads(body)["dataframe_split"])).shape == (1,)
    assert sample_request(price.user_ns["bare"].model_uri) is None
    assert curl_line("http://127.0.0.1:1/invocations", None).endswith(f"-d '{PLACEHOLDER}'")


def test_the_server_starts_whatever_the_kernels_path(price, monkeypatch):
    # a kernelspec pointing at an environment's python, never activated: its bin folder
    # (where uvicorn, which `mlflow models serve` runs, lives) is not on the PATH
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    summary = price.run_line_magic("aml_deploy", "price --name bare")
    assert "endpoint bare: ready" in repr(summary)


def test_a_target_whose_extra_is_missing_names_the_install(price, capsys):
    price.run_cell("import sys\nkept = sys.modules.get('azure.ai.ml')\n"
                   "sys.modules['azure.ai.ml'] = None  # as if azure-ai-ml were not installed")
    capsys.readouterr()
    try:
        assert not price.run_cell("%aml_deploy price --target online").success
        assert only_line(capsys) == ("MissingExtra: the online target needs azure: "
                                     'pip install "mlmagic[azure]"')
    finally:
        price.run_cell("sys.modules.pop('azure.ai.ml')\n"
                       "if kept is not None: sys.modules['azure.ai.ml'] = kept")
    assert price.run_line_magic("aml_endpoints", "").empty
