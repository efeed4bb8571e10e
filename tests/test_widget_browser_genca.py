"""Notebook 07's generative avatar editor in a real browser (JupyterLab + Debian's Chromium).

The same recipe and helpers as ``test_widget_browser.py`` (fresh Jupyter/Chromium dirs, the
kernel's idle state from both the page and the REST API, ``notebook:run-cell``). The notebook is
written here, one cell: :class:`facelab.widgets.avatar_editor.GenerativeAvatarEditorWidget` on a
small stand-in avatar whose colour follows the description (the notebook's own avatar needs
its trained models, minutes of CPU). In the page we type a description and click *generate*:
the ``<img>`` must change and the status label must say so; an empty description must show its
error in the label; a click on *inpaint region* must change the image again. The screenshot goes
to ``figures/07_genca/widget_browser.png``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_widget_browser import (ARGS, CHROMIUM, ROOT, _JS_KERNEL_IDLE, _JS_PANEL, _JS_RUN_CELL, _dismiss_dialogs,
                                 _free_port, _fresh_dirs, _get_json, _image_bytes, _keep_failure, _wait_http,
                                 _wait_kernel_idle, _write_lab_settings)

pytestmark = pytest.mark.browser
NB_NAME = "genca_editor.ipynb"
WIDGET_CELL = "GenerativeAvatarEditorWidget(FlatAvatar()"
CELL_SOURCE = '''import numpy as np
import torch
from facelab.widgets import avatar_editor as AE


class FlatAvatar:
    """A stand-in: the description picks the colour, the AUs the brightness, inpainting adds a band."""
    uv_res = 16

    def __init__(self):
        self.rgb, self.band = np.array([0.5, 0.5, 0.5]), None

    def generate(self, text):
        if not text.strip():
            raise ValueError("description: the description is empty")
        h = sum(map(ord, text))
        self.rgb, self.band = np.array([(h % 7) / 7, (h % 11) / 11, (h % 13) / 13]), None

    def inpaint(self, mask, text):
        if mask.shape != (self.uv_res, self.uv_res):
            raise ValueError("inpaint mask: wrong size")
        self.band = mask

    def codes(self, aus, identity, colour):
        return None, float(np.sum(aus)), colour

    def texture(self, colour):
        t = torch.as_tensor(np.broadcast_to(self.rgb[:, None, None], (3, 16, 16)).copy(), dtype=torch.float32)
        return t if self.band is None else t * (1 - torch.as_tensor(self.band)) + torch.as_tensor(self.band)

    def render(self, zg, ze, tex, yaw, res):
        img = torch.nn.functional.interpolate(tex[None], size=(res, res))[0].permute(1, 2, 0).numpy()
        return np.clip(img * (1 + 0.02 * ze), 0, 1)


EDITOR = AE.GenerativeAvatarEditorWidget(FlatAvatar(), size=32, display=128, description="a young face")
EDITOR'''


def _write_notebook(path: Path) -> None:
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": "genca-editor", "metadata": {},
                     "outputs": [], "source": CELL_SOURCE}],
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "facelab"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed "
                    "(apt-get install -y chromium; .ci/run does it)")
def test_typing_a_description_and_generating_changes_the_avatar(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright python package is missing")
    pytest.importorskip("jupyterlab", reason="jupyterlab is not installed in this environment")
    t0 = time.time()
    fresh = _fresh_dirs(tmp_path)
    work = fresh / "lab"
    work.mkdir()
    _write_notebook(work / NB_NAME)
    jcfg = fresh / "jupyter-config"
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(jcfg), JUPYTER_DATA_DIR=str(fresh / "jupyter-data"),
               JUPYTER_RUNTIME_DIR=str(fresh / "jupyter-runtime"), IPYTHONDIR=str(fresh / "ipython"))
    _write_lab_settings(jcfg / "lab" / "user-settings")
    port = _free_port()
    lab_log = fresh / "lab.log"
    notes: list[str] = [f"fresh dirs under {fresh}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--allow-root", "--no-browser", "--ip", "127.0.0.1",
         "--port", str(port), "--IdentityProvider.token=", "--ServerApp.password=",
         f"--ServerApp.root_dir={work}", f"--LabApp.user_settings_dir={jcfg / 'lab' / 'user-settings'}",
         f"--LabApp.workspaces_dir={jcfg / 'lab' / 'workspaces'}", "--LabApp.expose_app_in_browser=True",
         "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        stdout=open(lab_log, "wb"), stderr=subprocess.STDOUT, env=env, cwd=work)
    base = f"http://127.0.0.1:{port}"
    page = kept = None
    try:
        _wait_http(f"{base}/api/status", 120, proc)
        specs = _get_json(f"{base}/api/kernelspecs")["kernelspecs"]
        assert "facelab" in specs, f"the facelab kernel is not installed (found {sorted(specs)}); run `python -m facelab kernel`"
        with sync_api.sync_playwright() as p:
            browser_env = dict(os.environ, HOME=str(fresh / "home"), XDG_CONFIG_HOME=str(fresh / "xdg-config"),
                               XDG_CACHE_HOME=str(fresh / "xdg-cache"))
            ctx = p.chromium.launch_persistent_context(
                str(fresh / "chromium-profile"), executable_path=CHROMIUM, args=ARGS, headless=True,
                env=browser_env, viewport={"width": 1500, "height": 1100})
            try:
                page = ctx.pages[0] if ctx.pages else ctx.new_page()
                page.on("console", lambda m: notes.append(f"console {m.type}: {m.text}"[:500]))
                page.on("pageerror", lambda e: notes.append(f"page error: {e}"[:500]))
                page.goto(f"{base}/lab/tree/{NB_NAME}")
                page.wait_for_function("() => window.jupyterapp !== undefined", timeout=120_000)
                page.evaluate("() => window.jupyterapp.restored")
                _dismiss_dialogs(page, notes)
                page.wait_for_function(f"name => !!({_JS_PANEL})(name)", arg=NB_NAME, timeout=120_000)
                page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
                _dismiss_dialogs(page, notes)
                page.wait_for_function(_JS_KERNEL_IDLE, arg=NB_NAME, timeout=240_000)
                _wait_kernel_idle(base, NB_NAME, 60)
                cell = page.locator(".jp-CodeCell", has_text=WIDGET_CELL).first
                img = cell.locator(".jp-OutputArea img").first
                for attempt in range(3):
                    _dismiss_dialogs(page, notes)
                    page.evaluate(_JS_RUN_CELL, [NB_NAME, WIDGET_CELL])
                    page.wait_for_function("() => window.__facelabRun !== undefined", timeout=300_000)
                    run = page.evaluate("() => window.__facelabRun")
                    notes.append(f"run attempt {attempt + 1}: {run} after {time.time() - t0:.1f} s")
                    assert "error" not in run, f"notebook:run-cell failed: {run['error']}"
                    if run.get("count") is not None:
                        break
                    page.wait_for_function(_JS_KERNEL_IDLE, arg=NB_NAME, timeout=120_000)
                else:
                    raise AssertionError(f"the widget cell was never executed: {notes[-3:]}")
                assert run["ok"], "the widget cell raised an error (see its output in the screenshot)"
                cell.scroll_into_view_if_needed()
                img.wait_for(state="visible", timeout=120_000)
                page.wait_for_function("el => el.src && el.complete && el.naturalWidth > 0",
                                       arg=img.element_handle(), timeout=60_000)
                status = cell.locator(".avatar-editor-status").first

                def click_and_wait(button: str) -> list[int]:
                    src = img.get_attribute("src")
                    cell.locator("button", has_text=button).first.click()
                    page.wait_for_function("([el, src]) => el.src !== src && el.complete && el.naturalWidth > 0",
                                           arg=[img.element_handle(), src], timeout=60_000)
                    return _image_bytes(img)

                before = _image_bytes(img)
                assert before[:8] == list(b"\x89PNG\r\n\x1a\n"), "the avatar panel is not a PNG"
                text = cell.locator(".widget-text input").first
                text.fill("An older person with dark skin, grey hair and a wide face.")
                text.press("Enter")
                generated = click_and_wait("generate")
                assert generated != before, "the avatar did not change after generate"
                page.wait_for_function("el => el.textContent.startsWith('generated')", arg=status.element_handle(),
                                       timeout=30_000)
                inpainted = click_and_wait("inpaint region")
                assert inpainted != generated, "the avatar did not change after inpainting a region"
                text.fill("")
                text.press("Enter")
                cell.locator("button", has_text="generate").first.click()
                page.wait_for_function("el => el.textContent.includes('empty')", arg=status.element_handle(),
                                       timeout=30_000)
                out = ROOT / "figures" / "07_genca"
                out.mkdir(parents=True, exist_ok=True)
                cell.screenshot(path=str(out / "widget_browser.png"))
                print(f"genca widget browser test: {time.time() - t0:.1f} s; " + "; ".join(
                    n for n in notes if n.startswith(("run attempt", "dialog", "closed"))))
            except BaseException:
                kept = _keep_failure(page, lab_log, notes)
                print(f"\nbrowser test failed: screenshot, page and lab log kept in {kept}")
                raise
            finally:
                ctx.close()
    except BaseException:
        if kept is None:
            kept = _keep_failure(None, lab_log, notes)
            print(f"\nbrowser test failed: lab log kept in {kept}")
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
