"""The panel in a real browser: JupyterLab on 127.0.0.1 (token auth, a temporary root), a
notebook that shows the panel, driven headless in Debian's Chromium through Playwright. A
screenshot is kept in the test's folder and in tests/artifacts/."""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from conftest import ENV_TO_CLEAR
from mlflow import MlflowClient
from servers import clean_environment, free_port, stop_process_group

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's chromium is not installed (apt-get install chromium; .ci/run does it)",
)


def _store_with_runs(root: Path) -> None:
    """The embedded store of the notebook's folder, with three runs in 'tour'."""
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment_id = client.create_experiment("tour")
    for i, name in enumerate(("slow", "steady", "quick")):
        run = client.create_run(experiment_id, run_name=name)
        for step in range(6):
            client.log_metric(run.info.run_id, "loss", (3 - i) / (step + 1), step=step)
        client.log_param(run.info.run_id, "lr", f"{0.1 * (i + 1):.1f}")
        client.set_terminated(run.info.run_id)


def _start_lab(root: Path, token: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    settings = root.parent / "lab-settings"
    news = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text('{"fetchNews": "false"}')  # no "get Jupyter news?" toast over the panel
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        f"--LabApp.user_settings_dir={settings}",
        "--allow-root",  # CI runs as root; the server still listens on 127.0.0.1 only
    ]
    with (root.parent / "lab.log").open("w") as log:
        lab = subprocess.Popen(command, cwd=root, stdout=log, stderr=subprocess.STDOUT,
                               env=clean_environment(*ENV_TO_CLEAR), start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and lab.poll() is None:
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                return lab, base
        except OSError:
            time.sleep(0.3)
    stop_process_group(lab)
    raise AssertionError(f"JupyterLab did not start:\n{(root.parent / 'lab.log').read_text()}")


def test_the_panel_renders_and_is_driven_in_jupyterlab(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    root = tmp_path / "lab"
    root.mkdir()
    _store_with_runs(root)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%load_ext mlmagic"),
                nbformat.v4.new_code_cell("%aml_panel")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(nb, root / "panel.ipynb")
    token = secrets.token_hex(16)
    lab, base = _start_lab(root, token)
    shot = tmp_path / "panel-jupyterlab.png"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                 args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1300, "height": 1500})
            page.set_default_timeout(45_000)
            page.goto(f"{base}/lab/tree/panel.ipynb?token={token}")
            page.wait_for_function(
                "window.jupyterapp && window.jupyterapp.shell.currentWidget"
                " && window.jupyterapp.shell.currentWidget.sessionContext"
                " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel")
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            panel = page.locator(".mlmagic-panel")
            expect(panel).to_be_visible(timeout=60_000)  # a kernel starting on a busy machine
            # the summary kept in the notebook for static viewers is hidden where it renders
            summary = page.locator(".jp-OutputArea-child:has(.mlmagic-panel-summary)")
            expect(summary).to_have_count(1)
            expect(summary).to_be_hidden()
            # opened on the embedded store's Default experiment: no runs there
            expect(panel.get_by_text("runs 0–0 of 0")).to_be_visible()

            panel.locator(".lm-TabBar-tab", has_text="Connection").click()
            experiment = panel.locator(".widget-text:has(label:text-is('experiment')) input")
            experiment.fill("tour")
            panel.get_by_role("button", name="Connect").click()
            expect(panel.locator(".mlmagic-status")).to_contain_text(
                f"connected to sqlite:///{root / 'mlflow.db'}, experiment tour")

            panel.locator(".lm-TabBar-tab", has_text="Runs").click()
            expect(panel.get_by_text("runs 1–3 of 3")).to_be_visible()
            panel.get_by_role("button", name="loss").click()  # sort: highest loss first
            expect(panel.get_by_role("button", name="loss ▼")).to_be_visible()
            grid = panel.locator(".widget-gridbox")
            deadline = time.monotonic() + 30  # the header turns before all rows are redrawn
            while True:
                names = [re.sub(r"\s+", "", text) for text in
                         grid.locator(".widget-html").all_inner_texts()
                         if text.strip() in ("slow", "steady", "quick")]
                if names == ["slow", "steady", "quick"] or time.monotonic() > deadline:
                    break
                page.wait_for_timeout(200)
            assert names == ["slow", "steady", "quick"]
            panel.locator(".widget-checkbox input").nth(0).check()
            panel.locator(".widget-checkbox input").nth(2).check()
            chart = panel.locator("svg.mlmagic-chart")
            expect(chart.locator("polyline")).to_have_count(2)
            expect(panel.get_by_text("run quick: FINISHED")).to_be_visible()
            panel.screenshot(path=str(shot))
            browser.close()
    finally:
        stop_process_group(lab)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / shot.name)
