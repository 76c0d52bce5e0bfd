"""The README is executed: every example in it that can run on this machine runs as written,
top to bottom, in a real Jupyter kernel on the embedded store, and the notebook it leaves
holds only what a careful reader would keep (no library noise, no traceback, no stray
progress lines). A README line can never again be wrong without this test failing.

The README's python blocks become cells (a block of single lines, one cell a line, so each
line's output is checked on its own). What the README leaves to the reader (its data, the
training scripts it submits, a server at the address it names) is made by ``GIVEN`` cells
and ``SUBSTITUTED`` text, each said below; what needs Azure or Databricks is listed in
``ELSEWHERE`` with the tests that run it against the emulators. A README cell in neither
list runs here, so a new example is tried the day it is written."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from servers import MlflowServer

REPO = Path(__file__).resolve().parents[1]

AZURE = "needs an Azure ML workspace: tests/test_azure*.py run it against the emulator"
DATABRICKS = "needs a Databricks workspace: tests/test_databricks*.py run it against the emulator"
LINKED = "needs Databricks and Azure ML: tests/test_linked.py, test_databricks_to_azureml.py"
ELSEWHERE = {
    "%aml_connect databricks": DATABRICKS,
    "%aml_connect --workspace ws-churn --subscription <id> --resource-group rg-ml": AZURE,
    "%aml_connect --config ~/Downloads/config.json": AZURE,
    "%aml_connect": "a bare connect finds a workspace's config.json or a Databricks runtime: "
                    "tests/test_azure.py, test_databricks.py, test_setup.py",
    "%aml_connect --from ml_client": AZURE,
    "%aml_deploy churn:3 --target online --endpoint churn-api --instance-type Standard_DS3_v2":
        AZURE,
    "%aml_deploy churn:4 --target online --endpoint churn-api": AZURE,
    "%aml_deploy churn:4 --target kubernetes --compute aks-cluster --endpoint churn-k8s": AZURE,
    "preds = %aml_predict churn-api df": AZURE,
    "%aml_undeploy churn-api --deployment blue": AZURE,
    "%aml_deploy churn:3 --target aci --name churn-aci --cpu-cores 1 --memory-gb 1 --tag "
    'method=sklearn --description "Churn model" --location eastus2':
        "needs Azure ML (SDK v1): tests/test_azure_legacy.py",
    "%aml_deploy churn:3 --target aks --compute aks-mlflow --name churn-aks --app-insights":
        "needs Azure ML (SDK v1): tests/test_azure_legacy.py",
    "preds = %aml_predict churn-aks df": "needs Azure ML (SDK v1): tests/test_azure_legacy.py",
    "%aml_connect databricks -e /Users/me@example.com/churn": DATABRICKS,
    "%aml_register main.default.churn --run last": DATABRICKS,
    "%aml_connect --workspace ws-churn --subscription <id> --resource-group rg-ml --track "
    "azureml": AZURE,
    "%aml_connect databricks -e /Users/me@example.com/churn -w ws-churn --subscription <id> -g "
    "rg-ml --track both": LINKED,
    "%aml_connect databricks -e /Users/me@example.com/churn --workspace ws-churn --subscription "
    "<id> --resource-group rg-ml --track both": LINKED,
    "%aml_register main.default.churn:3 --to azureml": LINKED,
    "%aml_deploy main.default.churn:3 --target online --endpoint churn-api": LINKED,
    "%aml_score main.default.churn --table events --where \"day = '2026-06-01'\"": DATABRICKS,
    "%aml_score main.default.churn --table events --output-table events_scored": DATABRICKS,
}

DATA = """\
import tempfile
import mlflow, mlmagic
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.metrics import root_mean_squared_error
from sklearn.model_selection import train_test_split

X, y = load_diabetes(return_X_y=True, as_frame=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
df = X_test.head(5)
model = Ridge().fit(X_train, y_train)"""
EVENTS = """\
from mlmagic.core import spark_session
spark = spark_session()
spark.createDataFrame(X_test.assign(region="west")).createOrReplaceTempView("events")"""
SCRIPTS = '''\
from pathlib import Path
Path("train.py").write_text("""import argparse, mlflow
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.01)
lr = parser.parse_args().lr
mlflow.log_param("lr", lr)
for step in range(3):
    mlflow.log_metric("loss", 1 / (1 + lr * step), step=step)
print("trained with lr", lr)
""")
Path("sweep.py").write_text("import mlflow\\nmlflow.log_metric('best_loss', 0.5)\\n")'''
SGD = """\
%%track --name sgd
from sklearn.linear_model import SGDRegressor
sgd = SGDRegressor(random_state=0)
for epoch in range(5):
    sgd.partial_fit(X_train, y_train)
    mlflow.log_metric("loss", root_mean_squared_error(y_train, sgd.predict(X_train)), step=epoch)"""
GIVEN = {  # run before the first README cell that starts with the key
    "%%track": DATA,  # the reader's data, imports and model
    "%aml_score churn --table events": EVENTS,  # the reader's Spark table 'events'
    "%aml_submit train.py": SCRIPTS,  # the reader's training scripts
    "%aml_jobs 5f2c": 'job = mlmagic.jobs()["job"].iloc[0]',  # the id the README elides
    "%aml_show": SGD,  # the run 'sgd' the README compares with
}
TRAINING = ('model = Ridge().fit(X_train, y_train)\n'
            'info = mlflow.sklearn.log_model(model, name="model", input_example=X_train.head(3))')
NOISE = re.compile(r"Traceback|WARNING|Warning:|warn\(|log4j|\[Stage \d|🏃|🧪|View run|"
                   r"View experiment|Downloading artifacts|it/s\]|\d+%\|| at 0x[0-9a-f]+>")


def readme_cells() -> list[str]:
    """The README's python blocks as cells: a block of single lines gives a cell a line
    (comments dropped), any other block (a cell magic, an indented line) one cell."""
    blocks = re.findall(r"^```python\n(.*?)^```", (REPO / "README.md").read_text(),
                        flags=re.S | re.M)
    cells = []
    for block in blocks:
        lines = [line for line in block.splitlines() if line.strip()]
        if block.startswith("%%") or any(line[0].isspace() for line in lines):
            cells.append(block.rstrip())
        else:
            cells += [line for line in lines if not line.lstrip().startswith("#")]
    return cells


def key(cell: str) -> str:
    """A cell's first line without its trailing comment: how the lists above name it."""
    return re.sub(r"\s+#.*$", "", cell.splitlines()[0]).strip()


def substituted(cell: str, server: MlflowServer) -> str:
    """The cell with what the README elides made concrete."""
    cell = cell.replace("http://127.0.0.1:5000", server.url)  # a real server, on a free port
    cell = cell.replace("<id>", "6d1c3a52-aaaa")  # a subscription id
    cell = cell.replace("5f2c…", "$job")  # the job's id, from the job list
    return re.sub(r"^\.\.\.$", TRAINING, cell, flags=re.M)  # "..." is the reader's training


def readme_notebook(server: MlflowServer):
    """The notebook the README makes, and which of its cells are the README's own."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    given, ours = set(), []
    for cell in readme_cells():
        if key(cell) in ELSEWHERE:
            continue
        for start, code in GIVEN.items():
            if key(cell).startswith(start) and start not in given:
                given.add(start)
                nb.cells.append(nbformat.v4.new_code_cell(code))
        ours.append(len(nb.cells))
        nb.cells.append(nbformat.v4.new_code_cell(substituted(cell, server)))
    return nb, ours


def untidy(cell) -> list[str]:
    """What in a cell's outputs a careful reader would delete: errors, noise, and stderr
    lines that are not mlmagic's own one-line notices."""
    found = []
    for output in cell.outputs:
        if output.output_type == "error":
            found.append(f"{output.ename}: {output.evalue}")
        elif output.output_type == "stream":
            found += [line for line in output.text.splitlines() if NOISE.search(line)]
            if output.name == "stderr":
                found += [line for line in output.text.splitlines()
                          if line.strip() and not line.startswith("mlmagic: ")]
        else:
            text = output.get("data", {}).get("text/plain", "")
            found += [line for line in text.splitlines() if NOISE.search(line)]
    return found


def test_every_readme_example_runs_and_leaves_a_tidy_notebook(workdir, server):
    nb, ours = readme_notebook(server)
    NotebookClient(nb, timeout=600, allow_errors=True,
                   resources={"metadata": {"path": str(workdir)}}).execute()
    nbformat.write(nb, workdir / "readme.out.ipynb")
    problems = {nb.cells[index].source: untidy(nb.cells[index]) for index in ours}
    problems = {source: found for source, found in problems.items() if found}
    assert not problems, "\n\n".join(f"{source}\n  -> " + "\n  -> ".join(found[:5])
                                     for source, found in problems.items())
    assert all(cell.outputs for cell in nb.cells if cell.source.startswith("%aml_deploy"))


def test_every_readme_cell_is_run_here_or_said_where_it_runs():
    mixed = [cell for cell in readme_cells() if cell.startswith("%%")
             and re.search(r"^%[a-z]", cell, flags=re.M)]
    assert not mixed, f"a README block holds a cell magic and line magics: split it: {mixed}"
    keys = {key(cell) for cell in readme_cells()}
    assert not set(ELSEWHERE) - keys, "ELSEWHERE names lines the README no longer has"
    assert not set(GIVEN) - {k for k in GIVEN if any(c.startswith(k) for c in keys)}
