"""JupyterLab on loopback driven by Debian's Chromium (Playwright): the plumbing of the widget tests.

Not a test file: ``tests/test_widget_browser.py``, ``tests/test_widget_browser_genca.py`` and
``tests/test_listener_player_browser.py`` import it (``from browser_lab import ...``; pytest puts
``tests/`` on ``sys.path`` as the rootdir of these files and of ``conftest.py``, which also has
pytest rewrite its asserts).

:func:`widget_in_lab` depends on no state left on the machine: the server gets fresh Jupyter
config, data and runtime folders and a fresh IPython dir, Chromium a fresh profile (all under
``tmp_path``, or under ``$FACELAB_BROWSER_TMP`` when set, as ``.ci/run`` does); news and update
checks are off. It waits until the notebook's kernel is idle (the page's session and the server's
``/api/sessions``) and then runs the cell with JupyterLab's own ``notebook:run-cell`` command
(``window.jupyterapp``, exposed by ``--LabApp.expose_app_in_browser``), not with a key press that
can arrive before the kernel is attached. On failure a screenshot, the page's HTML and console and
the lab log are kept in ``runs/browser-failures/<time>/`` (the path is printed).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FAILURES = ROOT / "runs" / "browser-failures"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--no-default-browser-check", "--disable-dev-shm-usage"]
SKIP_NO_CHROMIUM = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed "
                                      "(apt-get install -y chromium; .ci/run does it)")


def fresh_chromium(playwright, folder: Path, viewport: dict):
    """Debian's Chromium with a new profile, HOME and XDG folders under ``folder`` (nothing left
    on this machine by an earlier run can change what it shows); returns the persistent context."""
    env = dict(os.environ, HOME=str(folder / "home"), XDG_CONFIG_HOME=str(folder / "xdg-config"),
               XDG_CACHE_HOME=str(folder / "xdg-cache"))
    return playwright.chromium.launch_persistent_context(str(folder / "chromium-profile"), executable_path=CHROMIUM,
                                                         args=ARGS, headless=True, env=env, viewport=viewport)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _wait_http(url: str, timeout: float, proc: subprocess.Popen) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer {url} within {timeout:.0f} s")


def _wait_kernel_idle(base: str, path: str, timeout: float) -> dict:
    """The server's view: the session of ``path`` has a kernel whose execution_state is 'idle'."""
    end, last = time.time() + timeout, "no session yet"
    while time.time() < end:
        try:
            sessions = [s for s in _get_json(f"{base}/api/sessions") if s.get("path") == path]
            if sessions and sessions[0].get("kernel"):
                k = _get_json(f"{base}/api/kernels/{sessions[0]['kernel']['id']}")
                last = f"kernel {k.get('name')} is {k.get('execution_state')}"
                if k.get("execution_state") == "idle":
                    return k
        except OSError as e:
            last = f"REST error: {e}"
        time.sleep(0.5)
    raise TimeoutError(f"the kernel of {path} was not idle within {timeout:.0f} s ({last})")


def _fresh_dirs(tmp_path: Path) -> Path:
    parent = os.environ.get("FACELAB_BROWSER_TMP")
    if parent:
        Path(parent).mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="widget-browser-", dir=parent))
    return tmp_path


def _write_lab_settings(settings: Path) -> None:
    files = {
        # Render every cell (no windowing), so the widget cell is in the DOM wherever it is.
        ("@jupyterlab", "notebook-extension", "tracker"): {"windowingMode": "none"},
        # No "get notified about official Jupyter news?" toast, no update check, no toasts at all.
        ("@jupyterlab", "apputils-extension", "notification"):
            {"fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True},
    }
    for (scope, ext, name), value in files.items():
        d = settings / scope / ext
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{name}.jupyterlab-settings").write_text(json.dumps(value))


def _write_notebook(path: Path, source: str) -> None:
    """A notebook of one code cell holding ``source``, on the ``facelab`` kernel."""
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": "editor-cell", "metadata": {},
                     "outputs": [], "source": source}],
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "facelab"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))


# Page-side helpers (window.jupyterapp is the JupyterLab application).
_JS_PANEL = """
name => {
  const app = window.jupyterapp;
  if (!app) return null;
  for (const w of app.shell.widgets('main')) {
    if (w.context && w.context.path === name && w.content && w.sessionContext) return w;
  }
  return null;
}"""

_JS_KERNEL_IDLE = f"""
name => {{
  const panel = ({_JS_PANEL})(name);
  const kernel = panel && panel.sessionContext.session && panel.sessionContext.session.kernel;
  return !!(panel && panel.context.isReady && panel.sessionContext.isReady && kernel
            && kernel.status === 'idle' && kernel.connectionStatus === 'connected');
}}"""

_JS_RUN_CELL = f"""
async ([name, needle]) => {{
  const app = window.jupyterapp;
  const panel = ({_JS_PANEL})(name);
  const cells = panel.content.widgets;
  const idx = cells.findIndex(c => c.model.type === 'code' && c.model.sharedModel.getSource().includes(needle));
  if (idx < 0) throw new Error('no code cell contains ' + needle);
  app.shell.activateById(panel.id);
  panel.content.activeCellIndex = idx;
  panel.content.deselectAll();
  if (app.shell.currentWidget !== panel) throw new Error('the notebook is not the current widget');
  window.__facelabRun = undefined;
  app.commands.execute('notebook:run-cell').then(
    ok => {{ window.__facelabRun = {{ok, count: cells[idx].model.executionCount}}; }},
    err => {{ window.__facelabRun = {{error: String(err)}}; }});
  return idx;
}}"""


def _dismiss_dialogs(page, log: list[str]) -> None:
    """Accept any modal dialog (e.g. kernel selection) and close any toast; note what was seen."""
    for _ in range(5):
        dialog = page.locator(".jp-Dialog")
        if dialog.count() == 0 or not dialog.first.is_visible():
            break
        log.append(f"dialog: {dialog.first.inner_text()[:300]!r}")
        accept = dialog.first.locator(".jp-Dialog-button.jp-mod-accept")
        (accept.first if accept.count() else dialog.first.locator("button").last).click()
        page.wait_for_timeout(300)
    for close in page.locator(".Toastify__toast .Toastify__close-button, .jp-toast-dismiss").all():
        try:
            log.append("closed a notification toast")
            close.click(timeout=2_000)
        except Exception:  # noqa: BLE001 - a toast that went away by itself
            pass


def _keep_failure(page, lab_log: Path, notes: list[str]) -> Path:
    out = FAILURES / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    if page is not None:
        for what, save in (("screenshot.png", lambda p: page.screenshot(path=str(p), full_page=True)),
                           ("page.html", lambda p: p.write_text(page.content()))):
            try:
                save(out / what)
            except Exception as e:  # noqa: BLE001 - keep what can be kept
                notes.append(f"could not save {what}: {e}")
    if lab_log.exists():
        shutil.copy(lab_log, out / "lab.log")
    (out / "notes.txt").write_text("\n".join(notes) + "\n")
    return out


def image_bytes(img) -> list[int]:
    """The bytes the page shows in an <img> (ipywidgets serves them as a blob: URL)."""
    return img.evaluate("async el => Array.from(new Uint8Array(await (await fetch(el.src)).arrayBuffer()))")


def wait_img_changed(page, img, src: str | None, timeout: float = 60_000) -> None:
    """Wait until ``img`` shows a new, loaded picture (its ``src`` is no longer ``src``)."""
    page.wait_for_function("([el, src]) => el.src !== src && el.complete && el.naturalWidth > 0",
                           arg=[img.element_handle(), src], timeout=timeout)


@contextlib.contextmanager
def widget_in_lab(tmp_path, nb_name: str, source: str | None, marker: str, copy_from: Path | None = None):
    """JupyterLab on a fresh notebook (one cell holding ``source``, or a copy of ``copy_from``),
    opened in Chromium, the cell containing ``marker`` run: yields ``(page, cell, img, notes)``
    with that cell's first ``<img>`` loaded. Skips when playwright or jupyterlab is missing."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright python package is missing")
    pytest.importorskip("jupyterlab", reason="jupyterlab is not installed in this environment")
    t0 = time.time()
    fresh = _fresh_dirs(tmp_path)
    work = fresh / "lab"
    work.mkdir()
    if copy_from is not None:  # a copy, so JupyterLab never writes outputs into the repository's file
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
            ctx = fresh_chromium(p, fresh, {"width": 1500, "height": 1100})
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
                # Both views of the kernel: the page's session and the server's REST API.
                _dismiss_dialogs(page, notes)
                page.wait_for_function(_JS_KERNEL_IDLE, arg=nb_name, timeout=240_000)
                _wait_kernel_idle(base, nb_name, 60)
                notes.append(f"kernel idle after {time.time() - t0:.1f} s")
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
                    # Not executed (e.g. the session dropped the request): wait for idle and retry.
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
                    n for n in notes if n.startswith(("kernel idle", "run attempt", "dialog", "closed"))))
            except BaseException:
                kept = _keep_failure(page, lab_log, notes)
                print(f"\nbrowser test failed: screenshot, page and lab log kept in {kept}")
                raise
            finally:
                ctx.close()
    except BaseException:
        if kept is None:  # failed before the browser was up
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
