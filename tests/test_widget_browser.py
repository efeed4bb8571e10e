"""The AU heatmap widget in a real browser: JupyterLab on loopback, Debian's Chromium via Playwright.

Opens notebook 05 (a copy, so JupyterLab never writes outputs into the repository's file), runs
only its widget cell (self-contained: it loads the smoke checkpoints when present, else shows the
heatmap alone), clicks one AU checkbox and checks that the heatmap ``<img>`` changed. The
screenshot goes to ``figures/05_au_guided_fer/widget_browser.png``.

The JupyterLab/Chromium plumbing (fresh dirs, the kernel's idle state from the page and the REST
API, ``notebook:run-cell``, failure artefacts in ``runs/browser-failures/``) is
:func:`browser_lab.widget_in_lab`, shared with the other widget browser tests.
"""
from __future__ import annotations

import pytest

from browser_lab import ROOT, SKIP_NO_CHROMIUM, image_bytes, wait_img_changed, widget_in_lab

NB = ROOT / "notebooks" / "05_au_guided_fer.ipynb"
WIDGET_CELL = "AUHeatmapWidget.from_run"

pytestmark = pytest.mark.browser


@SKIP_NO_CHROMIUM
def test_toggling_an_au_changes_the_rendered_heatmap(tmp_path):
    with widget_in_lab(tmp_path, NB.name, None, WIDGET_CELL, copy_from=NB) as (page, cell, img, notes):
        before_src, before = img.get_attribute("src"), image_bytes(img)
        assert before[:8] == list(b"\x89PNG\r\n\x1a\n"), "the heatmap panel is not a PNG"
        box = cell.locator(".widget-checkbox input").first
        box.scroll_into_view_if_needed()
        was = box.is_checked()
        box.click()
        wait_img_changed(page, img, before_src)
        after = image_bytes(img)
        assert box.is_checked() != was
        assert after != before, "the heatmap image bytes did not change after toggling an AU"
        out = ROOT / "figures" / "05_au_guided_fer"
        out.mkdir(parents=True, exist_ok=True)
        cell.screenshot(path=str(out / "widget_browser.png"))
