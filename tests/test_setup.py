"""Hands-free setup: autoload into an IPython profile (a temporary IPYTHONDIR, never the real
~/.ipython), auto-connect on load from a config file, and the Databricks init script run by
bash in a sandbox root."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import only_line
from servers import clean_environment, free_port

from mlmagic.azure.workspace import workspace_of_uri
from mlmagic.base.config import find_workspace_config
from mlmagic.core.session import current_session

HAS_MAGICS = "print('aml_connect' in get_ipython().magics_manager.magics['line'])"


@pytest.fixture
def ipython_dir(tmp_path, monkeypatch):
    """A temporary IPYTHONDIR for this test and the processes it starts."""
    folder = tmp_path / "ipython"
    monkeypatch.setenv("IPYTHONDIR", str(folder))
    return folder


def ipython_says(code: str, workdir) -> str:
    """What a fresh terminal IPython (the profile of IPYTHONDIR) prints for ``code``."""
    result = subprocess.run([sys.executable, "-m", "IPython", "--no-banner", "-c", code],
                            cwd=workdir, env=clean_environment(), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_autoload_gives_every_kernel_the_magics_and_off_removes_them(ipython_dir, workdir):
    profile = ipython_dir / "profile_default" / "ipython_config.py"
    profile.parent.mkdir(parents=True)
    profile.write_text("c.InteractiveShell.autocall = 0\n")  # the user's own settings stay
    assert ipython_says(HAS_MAGICS, workdir) == "False"

    command = [sys.executable, "-m", "mlmagic", "autoload"]
    shown = subprocess.run(command, env=clean_environment(), capture_output=True, text=True,
                           timeout=60, check=True).stdout
    assert str(profile) in shown
    subprocess.run(command, env=clean_environment(), check=True, timeout=60)  # idempotent
    text = profile.read_text()
    assert text.startswith("c.InteractiveShell.autocall = 0\n")
    assert text.count("extensions.append('mlmagic')") == 1

    assert ipython_says(HAS_MAGICS, workdir) == "True"
    assert _kernel_says(HAS_MAGICS, workdir) == "True"

    subprocess.run([*command, "off"], env=clean_environment(), check=True, timeout=60)
    assert profile.read_text() == "c.InteractiveShell.autocall = 0\n"
    assert ipython_says(HAS_MAGICS, workdir) == "False"


def _kernel_says(code: str, workdir) -> str:
    """What a real Jupyter kernel started with this IPYTHONDIR prints for ``code``."""
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name="python3", cwd=str(workdir),
                                       env=clean_environment())
    try:
        output = []
        reply = client.execute_interactive(
            code, timeout=60, output_hook=lambda m: output.append(m["content"].get("text", "")))
        assert reply["content"]["status"] == "ok"
        return "".join(output).strip()
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def test_autoload_function_writes_the_given_profile(ipython_dir):
    import mlmagic

    path = mlmagic.autoload(profile="work")
    assert path == ipython_dir / "profile_work" / "ipython_config.py"
    assert "mlmagic" in path.read_text()
    mlmagic.autoload(False, profile="work")
    assert "mlmagic" not in path.read_text()
    assert not (ipython_dir / "profile_default").exists()


def test_load_connects_when_the_config_file_names_the_backend(shell, workdir, capsys):
    store = f"sqlite:///{workdir / 'team.db'}"
    (workdir / "pyproject.toml").write_text(
        f'[tool.mlmagic]\ntracking_uri = "{store}"\nexperiment = "churn"\n')
    shell.run_line_magic("reload_ext", "mlmagic")
    assert current_session().connection.tracking_uri == store
    assert current_session().connection.experiment_name == "churn"
    assert "connected to local (pyproject.toml), experiment 'churn'" in capsys.readouterr().err


def test_load_warns_in_one_line_when_the_configured_server_is_down(shell, workdir, capsys):
    (workdir / "pyproject.toml").write_text(
        f'[tool.mlmagic]\ntracking_uri = "http://127.0.0.1:{free_port()}"\n')
    capsys.readouterr()
    shell.run_line_magic("reload_ext", "mlmagic")
    line = only_line(capsys)
    assert line.startswith("mlmagic: could not connect as ")
    assert "connection refused" in line and "%aml_connect" in line
    assert current_session().connection is None
    assert "aml_connect" in shell.magics_manager.magics["line"]


def test_autoconnect_false_and_an_experiment_alone_do_not_connect(shell, workdir, capsys):
    (workdir / "pyproject.toml").write_text(
        f'[tool.mlmagic]\ntracking_uri = "sqlite:///{workdir / "x.db"}"\nautoconnect = false\n')
    shell.run_line_magic("reload_ext", "mlmagic")
    assert current_session().connection is None
    (workdir / "pyproject.toml").write_text('[tool.mlmagic]\nexperiment = "churn"\n')
    shell.run_line_magic("reload_ext", "mlmagic")
    assert current_session().connection is None
    assert not (workdir / "x.db").exists()


NAMES = "--workspace ws-churn --subscription 6d1c3a52-aaaa --resource-group rg-ml"


def run_script(script, root) -> None:
    subprocess.run(["bash", str(script)], env={**os.environ, "MLMAGIC_INIT_ROOT": str(root)},
                   check=True, timeout=60)


def exported_uri(root) -> str:
    spark_env = root / "databricks" / "spark" / "conf" / "spark-env.sh"
    return subprocess.run(["bash", "-c", f"source {spark_env}; echo $MLFLOW_TRACKING_URI"],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_init_script_drops_the_config_and_exports_the_tracking_uri(shell, workdir, tmp_path):
    script = shell.run_line_magic("aml_init_script", NAMES + " --region westeurope -o init.sh")
    assert script.path == workdir / "init.sh" and os.access(script, os.X_OK)
    assert repr(script).splitlines()[0] == f"init script written: {workdir / 'init.sh'}"
    assert "Init scripts" in repr(script) and "ws-churn" in script._repr_html_()
    root = tmp_path / "cluster"
    run_script(script, root)
    run_script(script, root)  # a cluster restart runs it again
    driver = root / "databricks" / "driver"
    config = json.loads((driver / ".azureml" / "config.json").read_text())
    assert config == {"subscription_id": "6d1c3a52-aaaa", "resource_group": "rg-ml",
                      "workspace_name": "ws-churn"}
    assert find_workspace_config(driver) == (driver / ".azureml" / "config.json", config)
    uri = exported_uri(root)
    assert uri == ("azureml://westeurope.api.azureml.ms/mlflow/v1.0/subscriptions/6d1c3a52-aaaa"
                   "/resourceGroups/rg-ml/providers/Microsoft.MachineLearningServices"
                   "/workspaces/ws-churn")
    assert workspace_of_uri(uri) == config
    spark_env = (root / "databricks" / "spark" / "conf" / "spark-env.sh").read_text()
    assert spark_env.count("MLFLOW_TRACKING_URI") == 1


def test_init_script_for_the_connected_workspace_holds_no_secret(shell, azure, workdir,
                                                                 tmp_path):
    from test_azure import WORKSPACE_FLAGS

    shell.run_line_magic("aml_connect", WORKSPACE_FLAGS)
    script = shell.run_line_magic("aml_init_script", "")
    text = script.path.read_text()
    assert not any(token in repr(script) + script._repr_html_() for token in azure.identity.tokens)
    assert "ws-churn" in text and "westeurope" in text
    tokens = azure.identity.tokens
    assert tokens and not any(token in text for token in tokens)
    assert not any(word in text.lower() for word in ("client_secret", "password", "bearer"))
    run_script(script, tmp_path / "root")
    assert "/workspaces/ws-churn" in exported_uri(tmp_path / "root")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (NAMES, "InvalidInput: --region is missing"),
        ("--workspace ws --region westeurope", "InvalidInput: --subscription and "
         "--resource-group missing"),
        (NAMES + " --colour red", "UsageError: unrecognized arguments: --colour"),
    ],
)
def test_init_script_bad_input_is_one_line_and_writes_nothing(shell, workdir, capsys, line,
                                                              expected):
    shell.run_cell(f"%aml_init_script {line}")
    assert only_line(capsys).startswith(expected)
    assert not (workdir / "mlmagic-init.sh").exists()
