"""Runs you can reproduce: a tracked cell keeps the notebook as saved, the cells run before
it, the git state of the notebook's repository and the installed packages; no secret is in
any of it; each part can be turned off; none of it can fail the cell; and `%aml_reproduce`
writes a notebook that, run in a fresh kernel, makes the same run again."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import nbformat
import pytest
from conftest import only_line
from kernels import Kernel
from nbclient import NotebookClient
from servers import MlflowServer, clean_environment

import mlmagic
from mlmagic.core.session import current_session

EXPLORATION = (
    "import numpy as np",
    "rng = np.random.default_rng(7)",
    "data = rng.normal(size=1000)",
    "scale = 3.0",
)
DETERMINISTIC_CELL = (
    "%%track --name det --param alpha=0.5 --capture spread\n"
    "import mlflow\n"
    "mlflow.log_metric('mean', float((data * scale).mean()))\n"
    "spread = float(data.std() * scale)\n"
)
PROVENANCE = ("cell.py", "git.diff", "history.py", "notebook.ipynb", "requirements.txt")
GIT_TAGS = ("mlflow.source.git.commit", "mlflow.source.git.branch",
            "mlflow.source.git.repoURL")


@pytest.fixture
def fresh(shell):
    """The shell with an empty history (earlier tests' cells are not this session's)."""
    shell.reset(new_session=True)
    shell.run_line_magic("aml_connect", "--experiment repro")
    return shell


def run(shell, *cells: str) -> None:
    """Run cells as a notebook does, each kept in the session's history."""
    for cell in cells:
        assert shell.run_cell(cell, store_history=True).success, cell


def git(folder: Path, *arguments: str) -> str:
    return subprocess.run(["git", "-C", str(folder), "-c", "user.name=t", "-c",
                           "user.email=t@example.com", *arguments], check=True,
                          capture_output=True, text=True).stdout.strip()


def repository(folder: Path, remote: str = "https://example.com/org/repo.git") -> None:
    """A git repository with a commit, a remote, and an uncommitted change."""
    git(folder, "init", "-q", "-b", "main")
    (folder / "features.py").write_text("SCALE = 3\n")
    git(folder, "add", "features.py")
    git(folder, "commit", "-q", "-m", "features")
    git(folder, "remote", "add", "origin", remote)
    (folder / "features.py").write_text("SCALE = 4\n")


def saved_notebook(path: Path, *sources: str, output: str = "") -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    if output:
        notebook.cells[-1].outputs = [nbformat.v4.new_output("stream", name="stdout",
                                                             text=output)]
    nbformat.write(notebook, path)
    return path


def kept(run, tracking_uri: str | None = None) -> dict[str, str]:
    """The run's artifacts, by name, as text."""
    folder = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id,
                                                      tracking_uri=tracking_uri))
    return {p.name: p.read_text() for p in folder.iterdir() if p.is_file()}


def test_a_tracked_cell_keeps_the_notebook_history_git_state_and_packages(
        fresh, workdir, monkeypatch):
    repository(workdir, remote="https://alice:ghp-remote-token-123@example.com/org/repo.git")
    notebook = saved_notebook(workdir / "analysis.ipynb", *EXPLORATION, output="done\n")
    monkeypatch.setenv("MLMAGIC_NOTEBOOK_PATH", str(notebook))
    run(fresh, *EXPLORATION, DETERMINISTIC_CELL)
    found = mlmagic.last_run()
    texts = kept(found)
    assert sorted(texts) == list(PROVENANCE)
    tags = found.data.tags
    assert tags["mlflow.source.git.commit"] == git(workdir, "rev-parse", "HEAD")
    assert tags["mlflow.source.git.branch"] == "main"
    assert tags["mlflow.source.git.repoURL"] == "https://example.com/org/repo.git"
    assert "-SCALE = 3\n+SCALE = 4" in texts["git.diff"]
    history = texts["history.py"]
    positions = [history.index(f"\n{cell}\n") for cell in EXPLORATION]
    assert positions == sorted(positions)
    assert "%%track" not in history and "spread" not in history  # not the tracked cell
    saved = json.loads(texts["notebook.ipynb"])
    assert ["".join(cell["source"]) for cell in saved["cells"]] == list(EXPLORATION)
    assert "".join(saved["cells"][-1]["outputs"][0]["text"]) == "done\n"
    packages = texts["requirements.txt"].splitlines()
    assert packages[0] == f"# Python {sys.version.split()[0]} (CPython)"
    assert f"mlflow=={mlflow.__version__}" in packages
    assert json.loads(tags["mlmagic.track.options"]) == {
        "params": ["alpha"], "capture": ["spread"], "autolog": False}


def test_the_notebook_is_found_through_vs_code_and_jupyter(fresh, workdir, monkeypatch):
    saved_notebook(workdir / "vscode.ipynb", "x = 'from VS Code'")
    saved_notebook(workdir / "lab.ipynb", "x = 'from JupyterLab'")
    fresh.user_ns["__vsc_ipynb_file__"] = str(workdir / "vscode.ipynb")
    run(fresh, "%%track\npass")
    assert "from VS Code" in kept(mlmagic.last_run())["notebook.ipynb"]
    del fresh.user_ns["__vsc_ipynb_file__"]
    monkeypatch.setenv("JPY_SESSION_NAME", "projects/lab.ipynb")  # relative to the server
    run(fresh, "%%track\npass")
    assert "from JupyterLab" in kept(mlmagic.last_run())["notebook.ipynb"]


def test_no_secret_is_kept_in_the_history_the_notebook_or_the_diff(
        fresh, workdir, monkeypatch):
    secrets = {"env": "env-secret-4411", "history": "hist-secret-5522",
               "notebook": "nb-secret-6633", "diff": "diff-secret-7744",
               "notebook diff": "nbdiff-secret-8855", "remote": "remote-secret-9966",
               "magic": "magic-secret-1077", "env file": "envfile-secret-2288",
               "yaml": "yaml-secret-3399"}
    monkeypatch.setenv("MY_API_TOKEN", secrets["env"])
    monkeypatch.setenv("DEMO_PASSWORD", "")  # put back after the cell's %env sets it
    repository(workdir, remote=f"https://bob:{secrets['remote']}@example.com/org/repo.git")
    (workdir / "settings.py").write_text('password = "to be set"\n')
    (workdir / ".env").write_text("API_TOKEN=\n")
    (workdir / "config.yaml").write_text("db:\n  password:\n")
    notebook = saved_notebook(workdir / "analysis.ipynb", "x = 1")
    git(workdir, "add", "settings.py", ".env", "config.yaml", "analysis.ipynb")
    git(workdir, "commit", "-q", "-m", "notebook")
    (workdir / "settings.py").write_text(f'password = "{secrets["diff"]}"\n')
    # unquoted, as in a shell's or YAML's file
    (workdir / ".env").write_text(f"export API_TOKEN={secrets['env file']}\n")
    (workdir / "config.yaml").write_text(f"db:\n  password: {secrets['yaml']}\n")
    saved_notebook(notebook, "x = 1", f'api_key = "{secrets["notebook diff"]}"',
                   f'token = "{secrets["notebook"]}"\nprint(token, "{secrets["env"]}")',
                   output=f"{secrets['notebook']} {secrets['env']}\n")
    monkeypatch.setenv("MLMAGIC_NOTEBOOK_PATH", str(notebook))
    run(fresh, f'token = "{secrets["history"]}"',
        f"greeting = 'hello {secrets['env']}'",
        f"%env DEMO_PASSWORD={secrets['magic']}",
        "%%track --name leaky\nlength = len(token)")
    found = mlmagic.last_run()
    texts = kept(found)
    assert sorted(texts) == list(PROVENANCE)
    everything = json.dumps([texts, found.data.tags, found.data.params])
    assert [name for name, value in secrets.items() if value in everything] == []
    assert "token = '***'" in texts["history.py"] and "api_key = '***'" in texts["git.diff"]
    assert "password = '***'" in texts["git.diff"]
    assert "+export API_TOKEN=***" in texts["git.diff"]
    assert "+  password: ***" in texts["git.diff"]
    assert "greeting = 'hello ***'" in texts["history.py"]


@pytest.mark.parametrize("setting, missing", [
    ("log_notebook", {"notebook.ipynb"}),
    ("log_history", {"history.py"}),
    ("log_git", {"git.diff", *GIT_TAGS}),
    ("log_environment", {"requirements.txt"}),
])
def test_each_part_is_left_out_when_its_setting_is_off(
        fresh, workdir, monkeypatch, setting, missing):
    repository(workdir)
    monkeypatch.setenv("MLMAGIC_NOTEBOOK_PATH", str(saved_notebook(workdir / "a.ipynb", "1")))
    run(fresh, *EXPLORATION, f"%config MlMagic.{setting} = False", DETERMINISTIC_CELL)
    found = mlmagic.last_run()
    present = set(kept(found)) | set(found.data.tags)
    assert present & missing == set()
    assert {*PROVENANCE, *GIT_TAGS} - missing <= present


def test_all_of_it_is_off_from_the_project_file(fresh, workdir, monkeypatch):
    repository(workdir)
    monkeypatch.setenv("MLMAGIC_NOTEBOOK_PATH", str(saved_notebook(workdir / "a.ipynb", "1")))
    (workdir / "pyproject.toml").write_text(
        "[tool.mlmagic]\nlog_notebook = false\nlog_history = false\nlog_git = false\n"
        "log_environment = false\n")
    fresh.run_line_magic("reload_ext", "mlmagic")
    run(fresh, *EXPLORATION, DETERMINISTIC_CELL)
    found = mlmagic.last_run()
    assert set(kept(found)) == {"cell.py"}
    assert not [tag for tag in found.data.tags if tag.startswith(("mlflow.source.git",
                                                                 "mlmagic."))]


def test_what_cannot_be_kept_is_one_line_and_the_run_goes_on(fresh, workdir, monkeypatch,
                                                             capsys):
    broken = workdir / "broken.ipynb"
    broken.write_text("{ not json")
    monkeypatch.setenv("MLMAGIC_NOTEBOOK_PATH", str(broken))
    huge = "x = 1  # " + "y" * 3_000_000  # over history's 2 MB
    run(fresh, huge, "a = 1", "%%track --name goes-on\nb = a + 1")
    assert fresh.user_ns["b"] == 2
    found = mlmagic.last_run()
    assert found.info.status == "FINISHED"
    said = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(said) == 1 and "notebook: broken.ipynb could not be read as a notebook" in said[0]
    texts = kept(found)
    assert "notebook.ipynb" not in texts and "git.diff" not in texts  # no repository here
    assert "The first 1 cell(s) are left out" in texts["history.py"]
    assert "a = 1" in texts["history.py"] and "yyyy" not in texts["history.py"]


def test_a_replay_runs_tracked_cells_as_code_and_leaves_deploys_out(fresh):
    run(fresh, "%%track --name earlier --param storage_token=abcd1234\nbase = 10",
        "%aml_endpoints")
    assert not fresh.run_cell("scored = %aml_predict nowhere base", store_history=True).success
    run(fresh, "%%track --name later\npass")
    history = kept(mlmagic.last_run())["history.py"]
    assert "# %%track --name earlier --param storage_token=***  (tracked; replayed as " \
           "plain code)\nbase = 10" in history
    assert "abcd1234" not in history
    assert "\n%aml_endpoints\n" in history
    assert "# scored = %aml_predict nowhere base  # left out of a replay" in history


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = MlflowServer(tmp_path_factory.mktemp("reproduce-server")).start()
    yield server
    server.stop()


def test_an_offline_run_keeps_them_in_its_journal_and_sync_sends_them(
        shell, server, workdir, capsys):
    if not server.answers():
        server.start()
    shell.reset(new_session=True)
    shell.run_line_magic("aml_connect", f"{server.url} --experiment repro-offline")
    server.stop()
    run(shell, *EXPLORATION, DETERMINISTIC_CELL)
    assert "cannot be reached" in capsys.readouterr().err
    server.start()
    assert shell.run_line_magic("aml_sync", "").runs == 1
    texts = kept(mlmagic.last_run())
    assert {"cell.py", "history.py", "requirements.txt"} <= set(texts)
    assert "rng = np.random.default_rng(7)" in texts["history.py"]


def test_reproduce_refuses_what_it_cannot_write_and_writes_nothing(fresh, workdir, capsys):
    run(fresh, "%%track --name sourceless --no-source\npass")
    capsys.readouterr()
    assert not fresh.run_cell("%aml_reproduce sourceless").success
    assert "kept no cell.py" in only_line(capsys)
    run(fresh, "%%track --name kept\npass")
    capsys.readouterr()
    (workdir / "taken.ipynb").write_text("{}")
    for line, said in (("%aml_reproduce no-such-run", "no run 'no-such-run'"),
                       ("%aml_reproduce kept --path taken.ipynb", "exists already"),
                       ("%aml_reproduce kept --path notes.txt", "not a notebook file name"),
                       ("%aml_reproduce kept --path nowhere/x.ipynb", "no folder nowhere")):
        assert not fresh.run_cell(line).success, line
        assert said in only_line(capsys), line
    assert sorted(p.name for p in workdir.iterdir() if p.suffix in (".ipynb", ".txt")) == [
        "taken.ipynb"]
    assert (workdir / "taken.ipynb").read_text() == "{}"


def test_reproduce_writes_the_notebook_and_its_packages_and_returns_a_card(fresh, workdir):
    run(fresh, *EXPLORATION, DETERMINISTIC_CELL)
    original = mlmagic.last_run()
    shown = fresh.run_cell("%aml_reproduce det").result
    assert "wrote reproduce-det.ipynb: run det again" in repr(shown)
    assert original.info.run_id in repr(shown) and "4 from the session's history" in repr(shown)
    written = nbformat.read(workdir / "reproduce-det.ipynb", as_version=4)
    nbformat.validate(written)
    sources = [cell.source for cell in written.cells]
    assert "%pip install -r reproduce-det-requirements.txt" in sources[1]
    assert sources[2] == "%load_ext mlmagic"
    assert sources[3:7] == list(EXPLORATION)
    assert sources[7].splitlines()[0] == (
        "%%track --name det --experiment repro --param alpha=0.5 --capture spread "
        f"--tag mlmagic.reproduces={original.info.run_id}")
    assert (workdir / "reproduce-det-requirements.txt").read_text() == \
        kept(original)["requirements.txt"]
    card = mlmagic.reproduce(original.info.run_id, path=workdir / "again.ipynb")
    assert "again.ipynb" in repr(card)


def test_a_reproduced_notebook_makes_the_same_run_in_a_fresh_kernel(workdir):
    """The round trip in real kernels: exploration, a tracked cell, %aml_reproduce; the
    written notebook, executed by nbclient in a fresh kernel against the same store, tracks
    a new run with the same params and metrics."""
    home = workdir.parent / "home"
    environment = {**clean_environment(), "HOME": str(home),
                   "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
                   "MLMAGIC_NOTEBOOK_PATH": str(workdir / "analysis.ipynb")}
    saved_notebook(workdir / "analysis.ipynb", *EXPLORATION, 'token = "kernel-secret-3141"')
    kernel = Kernel(workdir, environment).start()
    try:
        for cell in ("%load_ext mlmagic", "%aml_connect --experiment repro", *EXPLORATION,
                     'token = "kernel-secret-3141"', DETERMINISTIC_CELL,
                     "%aml_reproduce det --path again.ipynb"):
            done = kernel.run(cell)
            assert done.status == "ok", done.text
        assert "wrote again.ipynb: run det again" in done.text
    finally:
        kernel.stop()
    notebook = nbformat.read(workdir / "again.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, resources={"metadata": {"path": str(workdir)}}
                   ).execute(env=environment)
    store = f"sqlite:///{workdir / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("repro").experiment_id
    first, again = sorted(client.search_runs([experiment]), key=lambda r: r.info.start_time)
    assert again.data.tags["mlmagic.reproduces"] == first.info.run_id
    assert again.info.status == first.info.status == "FINISHED"
    assert again.data.params == first.data.params == {"alpha": "0.5"}
    assert set(first.data.metrics) == {"mean", "spread"}
    assert again.data.metrics == first.data.metrics
    original = kept(first, store)
    assert "kernel-secret-3141" not in json.dumps(original)
    snapshot = nbformat.reads(original["notebook.ipynb"], as_version=4)
    assert snapshot.cells[-1].source == "token = '***'"


def test_the_plain_python_api_keeps_only_what_it_is_asked_for(fresh, workdir):
    with mlmagic.track("plain", source="x = 1"):
        pass
    assert set(kept(mlmagic.last_run())) == {"cell.py"}
    with mlmagic.track("asked", source="x = 1", provenance=["environment"]):
        pass
    assert set(kept(mlmagic.last_run())) == {"cell.py", "requirements.txt"}
    with pytest.raises(mlmagic.MlmagicError, match="provenance takes notebook"), \
            mlmagic.track("refused", provenance=["everything"]):
        pass
    assert current_session().last_tracked.run_name == "asked"


def test_git_state_is_read_in_a_worktree_with_packed_refs_and_on_a_detached_head(
        fresh, workdir, monkeypatch):
    main = workdir / "main"
    main.mkdir()
    repository(main)
    git(main, "pack-refs", "--all")  # the commit is in packed-refs, not a loose ref file
    git(main, "worktree", "add", "-q", "-b", "feature", str(workdir / "feature"))
    notebook = saved_notebook(workdir / "feature" / "analysis.ipynb", "x = 1")
    monkeypatch.setenv("MLMAGIC_NOTEBOOK_PATH", str(notebook))
    run(fresh, "%%track --name in-worktree\npass")
    tags = mlmagic.last_run().data.tags
    assert tags["mlflow.source.git.commit"] == git(main, "rev-parse", "HEAD")
    assert tags["mlflow.source.git.branch"] == "feature"
    assert tags["mlflow.source.git.repoURL"] == "https://example.com/org/repo.git"
    git(workdir / "feature", "checkout", "-q", "--detach")
    run(fresh, "%%track --name detached\npass")
    tags = mlmagic.last_run().data.tags
    assert tags["mlflow.source.git.commit"] == git(main, "rev-parse", "HEAD")
    assert "mlflow.source.git.branch" not in tags
