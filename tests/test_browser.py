"""The Lab in a real browser, as a user sees it: JupyterLab, Chromium, Run All, Train.

Starts ``jupyter lab`` on a free loopback port with a random token, drives Debian's Chromium
(``/usr/bin/chromium``) through Playwright, runs every cell of
``notebooks/02_compare_backends.ipynb`` (two epochs), clicks Train in the Lab, waits for the
progress bar to fill and the leaderboard to gain a row, and saves screenshots under
``test-artifacts/browser/``. Skipped when Chromium or Playwright is missing, except under CI
(``CI=true``), where ``.ci/run`` installs them and the test fails instead.

Run it alone with ``pytest -m browser``; leave it out with ``-m "not browser"``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import skip_or_fail

import binomlab as bl

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "02_compare_backends.ipynb"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# JupyterLab settings for a quiet, deterministic page: every cell kept in the DOM (no
# windowing), no news or update checks.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prepare(workdir: Path) -> tuple[Path, Path]:
    """A copy of notebook 02 with EPOCHS = 2 injected, and a JupyterLab settings folder."""
    import nbformat

    notebooks = workdir / "notebooks"
    notebooks.mkdir()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell("EPOCHS = 2\nQUICK = True"))
    nbformat.write(nb, notebooks / NOTEBOOK.name)
    settings = workdir / "lab-settings"
    for name, values in LAB_SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    return notebooks, settings


@pytest.fixture
def jupyter_lab(tmp_path: Path) -> Iterator[str]:
    """URL (with token) of a JupyterLab serving a copy of notebook 02; shut down afterwards."""
    if not CHROMIUM.exists():
        skip_or_fail(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    for module in ("playwright", "jupyterlab", "nbformat"):
        if importlib.util.find_spec(module) is None:
            skip_or_fail(f"{module} is not installed: pip install {module}")
    notebooks, settings = _prepare(tmp_path)
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
    }
    env.pop("MPLBACKEND", None)  # the kernel draws with its inline backend
    log = (tmp_path / "jupyter.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
         f"--port={port}", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={notebooks}", "--allow-root",
         "--LabApp.extension_manager=readonly"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"jupyter lab did not start:\n{(tmp_path / 'jupyter.log').read_text()}"
                    )
                time.sleep(0.5)
        yield f"{base}/lab/tree/{NOTEBOOK.name}?token={token}"
    finally:
        try:
            request = urllib.request.Request(f"{base}/api/shutdown?token={token}", method="POST")
            urllib.request.urlopen(request, timeout=10)
            server.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        log.close()


def test_lab_trains_in_jupyterlab(jupyter_lab: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh user-data-dir
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            page = context.new_page()
            page.goto(jupyter_lab)
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=90_000)
            page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "01-notebook-open.png"))

            # Run → Run All Cells, as a user would
            page.locator("#jp-MainMenu .lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator("li.lm-Menu-item[data-command='runmenu:run-all']").click()
            lab = page.locator(".binomlab-lab")
            lab.wait_for(timeout=120_000)
            lab.scroll_into_view_if_needed()
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=60_000)
            leaderboard_rows = lab.locator(".binomlab-leaderboard-table tbody tr")
            expect(leaderboard_rows).not_to_have_count(0)
            before = leaderboard_rows.count()
            # the notebook trained a logistic model and an MLP on every plugin backend
            plugins = [b for b in bl.backends.available() if b != "reference"]
            assert before == 2 * len(plugins), before
            lab.screenshot(path=str(ARTIFACTS / "02-lab-before-training.png"))

            lab.locator("button", has_text="Train").click()
            bar = lab.locator(".binomlab-progress .progress-bar")
            expect(bar).to_have_class("progress-bar progress-bar-success", timeout=120_000)
            expect(bar).to_have_attribute("style", re.compile(r"width: 100%"), timeout=10_000)
            expect(leaderboard_rows).to_have_count(before + 1, timeout=30_000)
            expect(lab.locator(".binomlab-status")).to_contain_text("stopped: completed")
            expect(lab.locator(".binomlab-curve polyline")).to_have_count(2)
            lab.screenshot(path=str(ARTIFACTS / "03-lab-trained.png"))

            lab.locator(".lm-TabBar-tab", has_text="Compare").click()
            expect(lab.locator(".binomlab-leaderboard-table")).to_be_visible()
            expect(lab.locator(".binomlab-leaderboard-table")).to_contain_text("#2")
            lab.screenshot(path=str(ARTIFACTS / "04-compare.png"))

            lab.locator(".lm-TabBar-tab", has_text="Calibration").click()
            expect(lab.locator(".jp-OutputArea-output img").first).to_be_visible()
            lab.screenshot(path=str(ARTIFACTS / "05-calibration.png"))

            lab.locator(".lm-TabBar-tab", has_text="Data").click()
            expect(lab.locator(".binomlab-features")).to_contain_text("carrier")
            lab.screenshot(path=str(ARTIFACTS / "06-data.png"))
            lab.locator(".lm-TabBar-tab", has_text="Export").click()
            expect(lab.get_by_role("button", name="Export")).to_be_visible()
            lab.screenshot(path=str(ARTIFACTS / "07-export.png"))
        finally:
            context.close()

    shots = sorted(p.name for p in ARTIFACTS.glob("*.png"))
    assert shots == [
        "01-notebook-open.png",
        "02-lab-before-training.png",
        "03-lab-trained.png",
        "04-compare.png",
        "05-calibration.png",
        "06-data.png",
        "07-export.png",
    ]
