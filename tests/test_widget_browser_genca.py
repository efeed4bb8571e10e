"""Notebooks 06 and 07: the avatar editors in a real browser (JupyterLab + Debian's Chromium).

The same recipe and helpers as ``test_widget_browser.py`` (fresh Jupyter/Chromium dirs, the
kernel's idle state from both the page and the REST API, ``notebook:run-cell``). The notebook is
written here, one cell: :class:`facelab.widgets.avatar_editor.GenerativeAvatarEditorWidget` on a
small stand-in avatar whose colour follows the description (the notebook's own avatar needs
its trained models, minutes of CPU). In the page we type a description and click *generate*:
the ``<img>`` must change and the status label must say so; an empty description must show its
error in the label; a click on *inpaint region* must change the image again. The screenshot goes
to ``figures/07_genca/widget_browser.png``. Notebook 06's :class:`AvatarEditorWidget` (the base of 07's)
gets the same treatment on a stand-in face: a paint stroke changes the picture and *clear paint*
restores it exactly (``figures/06_implicit_morphable_faces/widget_browser.png``).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
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


def _write_notebook(path: Path, source: str = CELL_SOURCE) -> None:
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": "editor-cell", "metadata": {},
                     "outputs": [], "source": source}],
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "facelab"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))


EDITOR06_CELL = "AvatarEditorWidget(PlainAvatar()"
EDITOR06_SOURCE = '''import numpy as np
import torch
from facelab.widgets import avatar_editor as AE


class PlainAvatar:
    """A stand-in for notebook 06's inverted face: the texture is a grey map, the render shows it."""
    uv_res = 16

    def codes(self, aus, identity, colour):
        return None, float(np.sum(aus)), colour

    def texture(self, colour):
        return torch.full((3, 16, 16), 0.5)

    def render(self, zg, ze, tex, yaw, res):
        img = torch.nn.functional.interpolate(tex[None], size=(res, res))[0].permute(1, 2, 0).numpy()
        return np.clip(img * (1 + 0.02 * ze), 0, 1)


EDITOR = AE.AvatarEditorWidget(PlainAvatar(), size=32, display=128)
EDITOR'''

_SKIP_NO_CHROMIUM = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed "
                                       "(apt-get install -y chromium; .ci/run does it)")


@contextlib.contextmanager
def _widget_in_lab(tmp_path, nb_name: str, source: str | None, marker: str, copy_from: Path | None = None):
    """JupyterLab on a fresh notebook (one cell holding ``source``, or a copy of ``copy_from``),
    opened in Chromium, the cell containing ``marker`` run: yields ``(page, cell, img, notes)``
    with that cell's first ``<img>`` loaded. Shared by the editor and listener-player tests."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright python package is missing")
    pytest.importorskip("jupyterlab", reason="jupyterlab is not installed in this environment")
    t0 = time.time()
    fresh = _fresh_dirs(tmp_path)
    work = fresh / "lab"
    work.mkdir()
    if copy_from is not None:
        shutil.copy(copy_from, work / nb_name)
        kernel = json.loads(copy_from.read_text())["metadata"]["kernelspec"]["name"]
    else:
        _write_notebook(work / nb_name, source)
        kernel = "facelab"
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
        assert kernel in specs, (f"the notebook's kernel {kernel!r} is not installed (found {sorted(specs)}); "
                                 "run `python -m facelab kernel`")
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
                page.goto(f"{base}/lab/tree/{nb_name}")
                page.wait_for_function("() => window.jupyterapp !== undefined", timeout=120_000)
                page.evaluate("() => window.jupyterapp.restored")
                _dismiss_dialogs(page, notes)
                page.wait_for_function(f"name => !!({_JS_PANEL})(name)", arg=nb_name, timeout=120_000)
                page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
                _dismiss_dialogs(page, notes)
                page.wait_for_function(_JS_KERNEL_IDLE, arg=nb_name, timeout=240_000)
                _wait_kernel_idle(base, nb_name, 60)
                cell = page.locator(".jp-CodeCell", has_text=marker).first
                img = cell.locator(".jp-OutputArea img").first
                for attempt in range(3):
                    _dismiss_dialogs(page, notes)
                    page.evaluate(_JS_RUN_CELL, [nb_name, marker])
                    page.wait_for_function("() => window.__facelabRun !== undefined", timeout=300_000)
                    run = page.evaluate("() => window.__facelabRun")
                    notes.append(f"run attempt {attempt + 1}: {run} after {time.time() - t0:.1f} s")
                    assert "error" not in run, f"notebook:run-cell failed: {run['error']}"
                    if run.get("count") is not None:
                        break
                    page.wait_for_function(_JS_KERNEL_IDLE, arg=nb_name, timeout=120_000)
                else:
                    raise AssertionError(f"the widget cell was never executed: {notes[-3:]}")
                assert run["ok"], "the widget cell raised an error (see its output in the screenshot)"
                cell.scroll_into_view_if_needed()
                img.wait_for(state="visible", timeout=120_000)
                page.wait_for_function("el => el.src && el.complete && el.naturalWidth > 0",
                                       arg=img.element_handle(), timeout=60_000)
                yield page, cell, img, notes
                print(f"{nb_name} browser test: {time.time() - t0:.1f} s; " + "; ".join(
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


def _click_and_wait(page, cell, img, button: str) -> list[int]:
    src = img.get_attribute("src")
    cell.locator("button", has_text=button).first.click()
    page.wait_for_function("([el, src]) => el.src !== src && el.complete && el.naturalWidth > 0",
                           arg=[img.element_handle(), src], timeout=60_000)
    return _image_bytes(img)


@_SKIP_NO_CHROMIUM
def test_typing_a_description_and_generating_changes_the_avatar(tmp_path):
    with _widget_in_lab(tmp_path, NB_NAME, CELL_SOURCE, WIDGET_CELL) as (page, cell, img, notes):
        status = cell.locator(".avatar-editor-status").first
        before = _image_bytes(img)
        assert before[:8] == list(b"\x89PNG\r\n\x1a\n"), "the avatar panel is not a PNG"
        text = cell.locator(".widget-text input").first
        text.fill("An older person with dark skin, grey hair and a wide face.")
        text.press("Enter")
        generated = _click_and_wait(page, cell, img, "generate")
        assert generated != before, "the avatar did not change after generate"
        page.wait_for_function("el => el.textContent.startsWith('generated')", arg=status.element_handle(),
                               timeout=30_000)
        inpainted = _click_and_wait(page, cell, img, "inpaint region")
        assert inpainted != generated, "the avatar did not change after inpainting a region"
        text.fill("")
        text.press("Enter")
        cell.locator("button", has_text="generate").first.click()
        page.wait_for_function("el => el.textContent.includes('empty')", arg=status.element_handle(),
                               timeout=30_000)
        out = ROOT / "figures" / "07_genca"
        out.mkdir(parents=True, exist_ok=True)
        cell.screenshot(path=str(out / "widget_browser.png"))


@_SKIP_NO_CHROMIUM
def test_notebook06_editor_paints_and_clears_in_the_browser(tmp_path):
    """Notebook 06's editor: a paint stroke shows on the face, clearing the paint restores the
    exact first picture (the callbacks run in the kernel; the page shows their result)."""
    with _widget_in_lab(tmp_path, "ssif_editor.ipynb", EDITOR06_SOURCE, EDITOR06_CELL) as (page, cell, img, notes):
        before = _image_bytes(img)
        painted = _click_and_wait(page, cell, img, "paint stroke")
        assert painted != before, "the avatar did not change after a paint stroke"
        cleared = _click_and_wait(page, cell, img, "clear paint")
        assert cleared == before, "clearing the paint did not restore the first picture"
        out = ROOT / "figures" / "06_implicit_morphable_faces"
        out.mkdir(parents=True, exist_ok=True)
        cell.screenshot(path=str(out / "widget_browser.png"))
