"""The AU heatmap widget in a real browser: JupyterLab on loopback, Debian's Chromium via Playwright.

Opens notebook 05 (a copy, so JupyterLab never writes outputs into the repository's file), runs
only its widget cell (self-contained: it loads the smoke checkpoints when present, else shows the
heatmap alone), clicks one AU checkbox and checks that the heatmap ``<img>`` changed. The
screenshot goes to ``figures/05_au_guided_fer/widget_browser.png``.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / "notebooks" / "05_au_guided_fer.ipynb"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer {url} within {timeout:.0f} s")


def _image_bytes(img) -> list[int]:
    """The bytes the page shows in an <img> (ipywidgets serves them as a blob: URL)."""
    return img.evaluate("async el => Array.from(new Uint8Array(await (await fetch(el.src)).arrayBuffer()))")


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed "
                    "(apt-get install -y chromium; .ci/run does it)")
def test_toggling_an_au_changes_the_rendered_heatmap(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright python package is missing")
    jupyter = Path(sys.executable).parent / "jupyter"
    if not jupyter.exists():
        pytest.skip(f"no jupyter next to {sys.executable}")
    work = tmp_path / "lab"
    work.mkdir()
    shutil.copy(NB, work / NB.name)
    # Render every cell (no windowing), so the widget cell is in the DOM wherever it is.
    settings = tmp_path / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    port = _free_port()
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    proc = subprocess.Popen(
        [str(jupyter), "lab", "--allow-root", "--no-browser", "--ip", "127.0.0.1", "--port", str(port),
         "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={work}",
         f"--LabApp.user_settings_dir={tmp_path / 'settings'}", f"--LabApp.workspaces_dir={tmp_path / 'ws'}"],
        stdout=open(tmp_path / "lab.log", "wb"), stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{base}/lab", 90)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = browser.new_page(viewport={"width": 1500, "height": 1100})
                page.goto(f"{base}/lab/tree/{NB.name}")
                page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
                cell = page.locator(".jp-CodeCell", has_text="AUHeatmapWidget.from_run").first
                cell.scroll_into_view_if_needed()
                cell.locator(".jp-InputArea-editor").click()
                page.keyboard.press("Shift+Enter")
                img = cell.locator(".jp-OutputArea img").first
                img.wait_for(state="visible", timeout=240_000)
                page.wait_for_function("el => el.src && el.complete && el.naturalWidth > 0",
                                       arg=img.element_handle(), timeout=60_000)
                before_src, before = img.get_attribute("src"), _image_bytes(img)
                assert before[:8] == list(b"\x89PNG\r\n\x1a\n"), "the heatmap panel is not a PNG"
                box = cell.locator(".widget-checkbox input").first
                box.scroll_into_view_if_needed()
                was = box.is_checked()
                box.click()
                page.wait_for_function("([el, src]) => el.src !== src && el.complete && el.naturalWidth > 0",
                                       arg=[img.element_handle(), before_src], timeout=60_000)
                after = _image_bytes(img)
                assert box.is_checked() != was
                assert after != before, "the heatmap image bytes did not change after toggling an AU"
                out = ROOT / "figures" / "05_au_guided_fer"
                out.mkdir(parents=True, exist_ok=True)
                cell.screenshot(path=str(out / "widget_browser.png"))
            finally:
                browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
