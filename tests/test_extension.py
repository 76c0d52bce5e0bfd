"""`%load_ext mlmagic`: every magic registered, nothing heavy imported, safe to repeat."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import only_line

import mlmagic

LINE_MAGICS = {
    "aml_connect", "aml_experiment", "aml_status", "aml_runs", "aml_sync", "aml_register",
    "aml_models", "aml_deploy", "aml_endpoints", "aml_predict", "aml_undeploy", "aml_score",
    "aml_submit", "aml_jobs", "aml_show", "aml_compare", "aml_workspace", "aml_init_script",
    "aml_panel", "aml_reproduce",
}
CELL_MAGICS = {"track"}
DATABRICKS_MAGICS = {"sql", "md", "sh", "fs", "run", "pip", "python", "scala", "r"}


def _fresh_process(code: str) -> dict:
    script = (
        "import json, sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "ip = InteractiveShell.instance()\n" + code
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_load_ext_imports_no_heavy_package_and_registers_every_magic():
    found = _fresh_process(
        "ip.run_line_magic('load_ext', 'mlmagic')\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'mlflow', 'azureml', 'azure', 'pyspark', 'pandas', 'sklearn', 'ipywidgets'})\n"
        "magics = ip.magics_manager.lsmagic()\n"
        "print(json.dumps({'heavy': heavy, 'line': sorted(magics['line']), "
        "'cell': sorted(magics['cell'])}))"
    )
    assert found["heavy"] == []
    assert set(found["line"]) >= LINE_MAGICS
    assert set(found["cell"]) >= CELL_MAGICS


def test_magic_names_do_not_clash_with_databricks():
    from mlmagic.magics import MlMagic

    names = set(MlMagic.magics["line"]) | set(MlMagic.magics["cell"])
    assert names == LINE_MAGICS | CELL_MAGICS
    assert not names & DATABRICKS_MAGICS
    assert all(name.startswith("aml_") for name in MlMagic.magics["line"])


def test_loading_twice_is_harmless_and_unload_removes_the_magics(shell, capsys):
    import mlmagic

    mlmagic.load_ipython_extension(shell)
    mlmagic.load_ipython_extension(shell)
    configurables = [c for c in shell.configurables if type(c).__name__ == "MlMagic"]
    assert len(configurables) == 1
    assert shell.run_cell("%aml_status").success

    shell.run_line_magic("unload_ext", "mlmagic")
    assert "aml_connect" not in shell.magics_manager.magics["line"]
    assert "track" not in shell.magics_manager.magics["cell"]
    assert not [c for c in shell.configurables if type(c).__name__ == "MlMagic"]
    shell.run_line_magic("load_ext", "mlmagic")
    assert "aml_connect" in shell.magics_manager.magics["line"]


def test_broken_config_warns_but_the_magics_load(workdir):
    (workdir / "pyproject.toml").write_text("[tool.mlmagic\ntracking_uri = ")
    result = subprocess.run(
        [sys.executable, "-c",
         "from IPython.core.interactiveshell import InteractiveShell\n"
         "ip = InteractiveShell.instance()\n"
         "ip.run_line_magic('load_ext', 'mlmagic')\n"
         "print('aml_connect' in ip.magics_manager.magics['line'])"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.stdout.strip() == "True"
    assert "pyproject.toml" in result.stderr and "cannot read" in result.stderr


def test_settings_are_traitlets_that_config_changes(shell):
    shell.run_line_magic("config", "MlMagic.max_runs = 7")
    shell.run_line_magic("config", "MlMagic.default_experiment = 'from-config'")
    magics = next(c for c in shell.configurables if type(c).__name__ == "MlMagic")
    assert magics.max_runs == 7
    assert magics.default_experiment == "from-config"
    connection = shell.run_line_magic("aml_connect", "")
    assert connection.experiment_name == "from-config"


def test_config_file_experiment_wins_over_the_session_default(shell, workdir):
    (workdir / "pyproject.toml").write_text('[tool.mlmagic]\nexperiment = "project"\n')
    shell.run_line_magic("config", "MlMagic.default_experiment = 'fallback'")
    assert shell.run_line_magic("aml_connect", "").experiment_name == "project"
    assert shell.run_line_magic("aml_connect", "-e given").experiment_name == "given"


def test_the_config_file_sets_the_settings_and_says_what_it_cannot(shell, workdir, capfd):
    (workdir / "pyproject.toml").write_text(
        '[tool.mlmagic]\nmax_runs = 7\nlog_source = false\nlive_interval = "often"\n'
        'show_sumary = false\nexperiment = "project"\n')
    shell.run_line_magic("reload_ext", "mlmagic")
    magics = next(c for c in shell.configurables if type(c).__name__ == "MlMagic")
    assert (magics.max_runs, magics.log_source, magics.show_summary) == (7, False, True)
    assert magics.live_interval == 0.5  # the bad value is refused, the default kept
    said = capfd.readouterr().err
    assert "live_interval = 'often'" in said and "a float" in said and "Traceback" not in said
    assert "unknown setting 'show_sumary', ignored. Did you mean 'show_summary'?" in said
    assert "experiment" not in said  # a connection key, not a setting: no complaint
    shell.run_line_magic("config", "MlMagic.max_runs = 9")  # %config still wins
    assert magics.max_runs == 9


def test_magic_help_shows_the_options(shell, capsys):
    shell.run_cell("%%track?")
    # `?` on a cell magic prints its docstring and argument help through the pager
    text = capsys.readouterr().out
    assert "--capture" in text and "--param" in text


def test_deploy_help_shows_every_target_and_its_options(shell, capsys):
    # %aml_deploy's target options are added when first needed, not at %load_ext
    shell.run_cell("%aml_deploy?")
    text = capsys.readouterr().out
    assert "{local,kubernetes,online,aci,aks}" in text
    assert "--instance-type" in text and "kubernetes, online: the VM" in text


@pytest.mark.parametrize(("line", "expected"), [
    ("%%track --nmae ridge\nx = 1", "Did you mean --name?"),
    ("%aml_runs --experimnet churn", "Did you mean --experiment?"),
    ("%aml_connect --workspce ws --subscription s -g rg", "Did you mean --workspace?"),
])
def test_an_option_typo_suggests_the_close_match_in_one_line(shell, capsys, line, expected):
    assert not shell.run_cell(line).success
    said = only_line(capsys)
    assert said.startswith("UsageError: unrecognized arguments") and expected in said


def test_an_option_far_from_every_other_gets_no_suggestion(shell, capsys):
    assert not shell.run_cell("%aml_runs --colour red").success
    assert "Did you mean" not in only_line(capsys)


def test_a_comment_after_a_magic_line_is_a_comment_as_in_python(shell):
    connection = shell.run_line_magic("aml_experiment", "pricing   # switch experiment (new)")
    assert connection.experiment_name == "pricing"
    assert shell.run_line_magic("aml_connect", "-e churn  # the embedded store"
                                ).experiment_name == "churn"
    assert shell.run_cell("%%track --name c1   # one run\nx = 1").success
    assert mlmagic.last_run().info.run_name == "c1"
    # a '#' inside quotes or inside a word is the value's own
    assert shell.run_line_magic("aml_experiment", "'team #1'").experiment_name == "team #1"
    assert shell.run_line_magic("aml_experiment", "a#b").experiment_name == "a#b"
