"""Notebooks 06 and 07: the avatar editors in a real browser (JupyterLab + Debian's Chromium).

The same recipe as ``test_widget_browser.py`` (:func:`browser_lab.widget_in_lab`: fresh
Jupyter/Chromium dirs, the kernel's idle state from both the page and the REST API,
``notebook:run-cell``). The notebook is written here, one cell:
:class:`facelab.widgets.avatar_editor.GenerativeAvatarEditorWidget` on a small stand-in avatar
whose colour follows the description (the notebook's own avatar needs its trained models,
minutes of CPU). In the page we type a description and click *generate*:
the ``<img>`` must change and the status label must say so; an empty description must show its
error in the label; a click on *inpaint region* must change the image again. The screenshot goes
to ``figures/07_genca/widget_browser.png``. Notebook 06's :class:`AvatarEditorWidget` (the base of 07's)
gets the same treatment on a stand-in face: a paint stroke changes the picture and *clear paint*
restores it exactly (``figures/06_implicit_morphable_faces/widget_browser.png``).
"""
from __future__ import annotations

import pytest

from browser_lab import ROOT, SKIP_NO_CHROMIUM, image_bytes, wait_img_changed, widget_in_lab

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

def _click_and_wait(page, cell, img, button: str) -> list[int]:
    src = img.get_attribute("src")
    cell.locator("button", has_text=button).first.click()
    wait_img_changed(page, img, src)
    return image_bytes(img)


@SKIP_NO_CHROMIUM
def test_typing_a_description_and_generating_changes_the_avatar(tmp_path):
    with widget_in_lab(tmp_path, NB_NAME, CELL_SOURCE, WIDGET_CELL) as (page, cell, img, notes):
        status = cell.locator(".avatar-editor-status").first
        before = image_bytes(img)
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


@SKIP_NO_CHROMIUM
def test_notebook06_editor_paints_and_clears_in_the_browser(tmp_path):
    """Notebook 06's editor: a paint stroke shows on the face, clearing the paint restores the
    exact first picture (the callbacks run in the kernel; the page shows their result)."""
    with widget_in_lab(tmp_path, "ssif_editor.ipynb", EDITOR06_SOURCE, EDITOR06_CELL) as (page, cell, img, notes):
        before = image_bytes(img)
        painted = _click_and_wait(page, cell, img, "paint stroke")
        assert painted != before, "the avatar did not change after a paint stroke"
        cleared = _click_and_wait(page, cell, img, "clear paint")
        assert cleared == before, "clearing the paint did not restore the first picture"
        out = ROOT / "figures" / "06_implicit_morphable_faces"
        out.mkdir(parents=True, exist_ok=True)
        cell.screenshot(path=str(out / "widget_browser.png"))
