"""The listener player (notebook 08) in a real browser: JupyterLab on loopback, Debian's Chromium.

Same recipe and helpers as ``test_widget_browser.py``: a copy of notebook 08, only its widget cell
is run (self-contained: it loads ``runs/08_ditailistener/<profile>/player_clips.npz`` when a run
left it, else engine dyads), the frame scrubber is moved with the keyboard, and the frame ``<img>``
must change. The screenshot goes to ``figures/08_ditailistener/widget_browser.png``.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_widget_browser import (ARGS, CHROMIUM, ROOT, _JS_KERNEL_IDLE, _JS_PANEL, _JS_RUN_CELL, _dismiss_dialogs,
                                 _fresh_dirs, _free_port, _get_json, _image_bytes, _keep_failure, _wait_http,
                                 _wait_kernel_idle, _write_lab_settings)

NB = ROOT / "notebooks" / "08_ditailistener.ipynb"
WIDGET_CELL = "ListenerPlayerWidget.from_run"

pytestmark = pytest.mark.browser


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed "
                    "(apt-get install -y chromium; .ci/run does it)")
def test_scrubbing_changes_the_listener_frame(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright python package is missing")
    pytest.importorskip("jupyterlab", reason="jupyterlab is not installed in this environment")
    t0 = time.time()
    fresh = _fresh_dirs(tmp_path)
    work = fresh / "lab"
    work.mkdir()
    shutil.copy(NB, work / NB.name)
    kernel_name = json.loads(NB.read_text())["metadata"]["kernelspec"]["name"]
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
        assert kernel_name in specs, f"the notebook's kernel {kernel_name!r} is not installed (found {sorted(specs)})"
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
                page.goto(f"{base}/lab/tree/{NB.name}")
                page.wait_for_function("() => window.jupyterapp !== undefined", timeout=120_000)
                page.evaluate("() => window.jupyterapp.restored")
                _dismiss_dialogs(page, notes)
                page.wait_for_function(f"name => !!({_JS_PANEL})(name)", arg=NB.name, timeout=120_000)
                page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
                _dismiss_dialogs(page, notes)
                page.wait_for_function(_JS_KERNEL_IDLE, arg=NB.name, timeout=240_000)
                _wait_kernel_idle(base, NB.name, 60)
                cell = page.locator(".jp-CodeCell", has_text=WIDGET_CELL).first
                img = cell.locator(".jp-OutputArea img").first
                for attempt in range(3):
                    _dismiss_dialogs(page, notes)
                    page.evaluate(_JS_RUN_CELL, [NB.name, WIDGET_CELL])
                    page.wait_for_function("() => window.__facelabRun !== undefined", timeout=300_000)
                    run = page.evaluate("() => window.__facelabRun")
                    notes.append(f"run attempt {attempt + 1}: {run} after {time.time() - t0:.1f} s")
                    assert "error" not in run, f"notebook:run-cell failed: {run['error']}"
                    if run.get("count") is not None:
                        break
                    page.wait_for_function(_JS_KERNEL_IDLE, arg=NB.name, timeout=120_000)
                else:
                    raise AssertionError(f"the widget cell was never executed: {notes[-3:]}")
                assert run["ok"], "the widget cell raised an error (see its output in the screenshot)"
                cell.scroll_into_view_if_needed()
                img.wait_for(state="visible", timeout=120_000)
                page.wait_for_function("el => el.src && el.complete && el.naturalWidth > 0",
                                       arg=img.element_handle(), timeout=60_000)
                before_src, before = img.get_attribute("src"), _image_bytes(img)
                assert before[:8] == list(b"\x89PNG\r\n\x1a\n"), "the frame panel is not a PNG"
                label = cell.locator(".widget-label", has_text="frame 1/").first
                assert label.count() == 1, "the frame label does not show frame 1"
                handle = cell.locator(".widget-slider .noUi-handle").first
                handle.scroll_into_view_if_needed()
                handle.focus()
                for _ in range(5):       # scrub five frames forward with the keyboard
                    page.keyboard.press("ArrowRight")
                page.wait_for_function("([el, src]) => el.src !== src && el.complete && el.naturalWidth > 0",
                                       arg=[img.element_handle(), before_src], timeout=60_000)
                after = _image_bytes(img)
                assert after != before, "the frame image bytes did not change after scrubbing"
                page.wait_for_function("el => /frame 6\\//.test(el.innerText)",
                                       arg=cell.locator(".widget-label", has_text=re.compile(r"frame \d+/\d+")).first
                                       .element_handle(), timeout=30_000)
                out = ROOT / "figures" / "08_ditailistener"
                out.mkdir(parents=True, exist_ok=True)
                cell.screenshot(path=str(out / "widget_browser.png"))
                print(f"listener player browser test: {time.time() - t0:.1f} s")
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
