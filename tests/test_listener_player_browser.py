"""The listener player (notebook 08) in a real browser: JupyterLab on loopback, Debian's Chromium.

Same recipe as ``test_widget_browser.py`` (:func:`browser_lab.widget_in_lab`): a copy of notebook
08, only its widget cell is run (self-contained: it loads
``runs/08_ditailistener/<profile>/player_clips.npz`` when a run left it, else engine dyads), the
frame scrubber is moved with the keyboard, and the frame ``<img>`` must change. The screenshot goes
to ``figures/08_ditailistener/widget_browser.png``.
"""
from __future__ import annotations

import re

import pytest

from browser_lab import ROOT, SKIP_NO_CHROMIUM, image_bytes, wait_img_changed, widget_in_lab

NB = ROOT / "notebooks" / "08_ditailistener.ipynb"
WIDGET_CELL = "ListenerPlayerWidget.from_run"

pytestmark = pytest.mark.browser


@SKIP_NO_CHROMIUM
def test_scrubbing_changes_the_listener_frame(tmp_path):
    with widget_in_lab(tmp_path, NB.name, None, WIDGET_CELL, copy_from=NB) as (page, cell, img, notes):
        before_src, before = img.get_attribute("src"), image_bytes(img)
        assert before[:8] == list(b"\x89PNG\r\n\x1a\n"), "the frame panel is not a PNG"
        label = cell.locator(".widget-label", has_text="frame 1/").first
        assert label.count() == 1, "the frame label does not show frame 1"
        handle = cell.locator(".widget-slider .noUi-handle").first
        handle.scroll_into_view_if_needed()
        handle.focus()
        for _ in range(5):       # scrub five frames forward with the keyboard
            page.keyboard.press("ArrowRight")
        wait_img_changed(page, img, before_src)
        after = image_bytes(img)
        assert after != before, "the frame image bytes did not change after scrubbing"
        page.wait_for_function("el => /frame 6\\//.test(el.innerText)",
                               arg=cell.locator(".widget-label", has_text=re.compile(r"frame \d+/\d+")).first
                               .element_handle(), timeout=30_000)
        out = ROOT / "figures" / "08_ditailistener"
        out.mkdir(parents=True, exist_ok=True)
        cell.screenshot(path=str(out / "widget_browser.png"))
