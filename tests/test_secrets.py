"""The secrets sweep: plant a URI password, a secret environment variable, secret-named
variables, params, tags and literals; run every magic with the server up and down, the
panel's text fallback, a submitted script and the offline journal; then grep every output,
every returned object's repr, the store (database and artifacts), ~/.mlmagic, the temporary
folders and every file name. No secret may appear; the non-secrets must still be logged."""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
from conftest import PRICE_CELL

import mlmagic
from mlmagic.core.journal import store_key

SECRETS = {
    "URI password": "uri-pass-7f3a9",
    "secret environment variable": "env-token-91bc2",
    "literal given to a secret variable": "cell-literal-44d2",
    "literal under a secret dict key": "dict-literal-55e1",
    "literal given to a secret keyword": "kw-literal-66f0",
    "mlflow.log_param value": "param-secret-77a2",
    "mlflow.set_tag value": "tag-secret-88b3",
    "mlflow.log_params value": "params-secret-99c4",
    "--param value": "magic-param-10d5",
}
CELL = f"""\
%%track --name planted --param storage_token={SECRETS['--param value']} --capture key_size,pass_rate
import mlflow
db_password = "{SECRETS['literal given to a secret variable']}"
settings = {{"api_key": "{SECRETS['literal under a secret dict key']}", "region": "eu"}}
def connect(host, password):
    return host
connect("db.local", password="{SECRETS['literal given to a secret keyword']}")
mlflow.log_param("api_key", "{SECRETS['mlflow.log_param value']}")
mlflow.set_tag("db_password", "{SECRETS['mlflow.set_tag value']}")
mlflow.log_params({{"client_secret": "{SECRETS['mlflow.log_params value']}", "sort_key": "rooms"}})
mlflow.set_tag("tokenizer", "bpe")
key_size, pass_rate = 256, 0.93
for step in range(3):
    mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
"""
FAILING_CELL = f"""\
%%track --name planted-failure
api_token = "{SECRETS['literal given to a secret variable']}"
raise ValueError("could not sign in with " + api_token)
"""
SCRIPT = """\
import os, mlflow
print("token:", os.environ["MY_API_TOKEN"])
print("password:", os.environ.get("MLFLOW_TRACKING_PASSWORD"))
print("tracking at:", mlflow.get_tracking_uri())
mlflow.log_metric("done", 1)
"""


def test_no_secret_appears_anywhere_and_the_non_secrets_are_logged(
    shell, server, workdir, capsys, monkeypatch
):
    monkeypatch.setenv("MY_API_TOKEN", SECRETS["secret environment variable"])
    secret_uri = server.url.replace("http://", f"http://alice:{SECRETS['URI password']}@")
    shown: list[str] = []

    def run(line: str):
        result = shell.run_cell(line, store_history=True)  # each tracked cell keeps history.py
        shown.append(repr(result.result))
        html = getattr(result.result, "_repr_html_", None)
        shown.append(html() if callable(html) else "")
        return result

    run(f"%aml_connect {secret_uri} --experiment secrets")
    for line in ("%aml_status", "%aml_workspace", "%aml_experiment secrets",
                 f"%aml_connect {secret_uri} --experiment secrets"):
        assert run(line).success, line
    assert run(CELL).success
    planted = mlmagic.last_run()
    shown += capsys.readouterr()
    assert not run(FAILING_CELL).success
    capsys.readouterr()  # the user's own traceback quotes their own cell: not mlmagic's output
    assert run(PRICE_CELL).success
    (workdir / "leaky.py").write_text(SCRIPT)
    for line in ("%aml_runs", "%aml_show planted", "%aml_compare planted price-model",
                 "%aml_models price", "%aml_register price --run last --alias champion",
                 "%aml_deploy price --name svc", "import pandas as pd",
                 "houses = pd.DataFrame({'rooms': [1.0], 'age': [2.0]})",
                 "%aml_predict svc houses", "%aml_endpoints", "%aml_undeploy svc",
                 "%aml_submit leaky.py", "%aml_jobs"):
        assert run(line).success, line
    panel = mlmagic.panel(shell.user_ns)
    shown += [repr(panel), str(panel._repr_mimebundle_())]
    panel.close()

    server.stop()
    for line in ("%aml_runs", "%aml_show planted", "%aml_workspace", "%aml_models",
                 "%aml_experiment elsewhere", "%aml_register price --run last",
                 "%aml_deploy price --name svc2"):
        assert not run(line).success, line
    assert run("%aml_status").success and run("%aml_sync").success  # nothing needs the server
    assert run(CELL.replace("--name planted", "--name planted-offline")).success
    server.start()
    assert run("%aml_sync").success
    captured = capsys.readouterr()
    shown += [captured.out, captured.err]

    found = _leaks("\n".join(shown), "the notebook's output and the objects' reprs")
    for folder, what in ((server.root, "the store"), (Path.home() / ".mlmagic", "~/.mlmagic"),
                         (Path(tempfile.gettempdir()) / "mlmagic", "the temporary folder"),
                         (workdir, "the working folder")):
        found += _leaks_in_folder(folder, what)
    assert not found, "\n".join(found)

    run_data = mlflow.MlflowClient(server.url).get_run(planted.info.run_id).data
    assert run_data.params["api_key"] == run_data.params["client_secret"] == "***"
    assert run_data.params["storage_token"] == run_data.tags["db_password"] == "***"
    assert run_data.params["sort_key"] == "rooms" and run_data.tags["tokenizer"] == "bpe"
    assert run_data.metrics["key_size"] == 256 and run_data.metrics["pass_rate"] == 0.93


def _leaks(text: str, where: str) -> list[str]:
    return [f"{kind} ({value}) in {where}" for kind, value in SECRETS.items() if value in text]


def _leaks_in_folder(folder: Path, what: str) -> list[str]:
    found = []
    for path in folder.rglob("*") if folder.exists() else ():
        found += _leaks(str(path.relative_to(folder)), f"a file name in {what}")
        if path.is_file():
            data = path.read_bytes()
            found += [f"{kind} ({value}) in {what}: {path}" for kind, value in SECRETS.items()
                      if value.encode() in data]
    return found


def test_the_journal_folder_name_reveals_nothing_of_the_credentials():
    with_one = store_key("http://alice:first-password@mlflow.internal:5000")
    with_other = store_key("http://alice:other-password@mlflow.internal:5000")
    assert with_one == with_other
    assert store_key("http://mlflow.internal:5000") != store_key("http://other:5000")
