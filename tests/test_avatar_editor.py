"""The avatar editor's callbacks (facelab.widgets.avatar_editor) and the implicit tools
(facelab.nn.implicit), run headless on a toy avatar: a sphere whose radius follows the identity
code, whose UV is its spherical angles and whose texture is a flat colour from the colour code."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facelab.nn import implicit as IM
from facelab.widgets import avatar_editor as AE


class ToyAvatar:
    def codes(self, aus, identity, colour):
        return (torch.tensor([0.5 + 0.05 * identity]), torch.tensor([0.05 * float(np.sum(aus)) / 20]),
                torch.tensor([0.5 + 0.1 * colour]))

    def texture(self, zc):
        return torch.full((3, 32, 32), float(zc[0]))

    def render(self, zg, ze, tex, yaw, res):
        r = float(zg[0]) + float(ze[0])

        def sdf(x):
            return x.norm(dim=-1) - r

        def albedo(x):
            u = (torch.atan2(x[:, 0], x[:, 2]) / (2 * math.pi) + 0.5)
            v = torch.acos((x[:, 1] / x.norm(dim=-1)).clamp(-1, 1)) / math.pi
            g = torch.stack([u, v], -1) * 2 - 1
            return torch.nn.functional.grid_sample(tex[None], g[None, :, None], align_corners=False)[0, :, :, 0].T

        with torch.no_grad():
            return IM.render(sdf, albedo, res, yaw, differentiable=False)["image"].numpy()


@pytest.fixture(scope="module")
def avatar():
    torch.set_num_threads(1)
    return ToyAvatar()


def test_state_callbacks_and_errors():
    s = AE.set_au(AE.EditorState(), "AU12", 3.0)
    assert s.au_vector[AE.AU_INDEX["AU12"]] == 3.0
    with pytest.raises(ValueError, match="unknown AU 'AU99'"):
        AE.set_au(s, "AU99", 1.0)
    with pytest.raises(ValueError, match="out of range"):
        AE.set_au(s, "AU12", 9.0)
    with pytest.raises(ValueError, match="yaw"):
        AE.set_yaw(s, 120)
    with pytest.raises(ValueError, match="UV pairs"):
        AE.paint(s, [(1.5, 0.2)], (1, 0, 0))
    p = AE.paint(s, [(0.2, 0.5), (0.8, 0.5)], (1, 0, 0), 0.05)
    assert len(p.strokes) == 1 and AE.clear_paint(p).strokes == ()


def test_paint_layer_covers_the_stroke():
    st = AE.paint(AE.EditorState(), [(0.25, 0.5), (0.75, 0.5)], (0, 0, 1), 0.05)
    layer = AE.paint_layer(st.strokes, 64)
    assert layer[32, 32, 3] == 1 and layer[5, 5, 3] == 0
    assert np.allclose(layer[32, 32, :3], (0, 0, 1))
    tex = AE.apply_paint(torch.full((3, 64, 64), 0.5), st.strokes)
    assert torch.allclose(tex[:, 32, 32], torch.tensor([0.0, 0.0, 1.0])) and float(tex[0, 5, 5]) == 0.5


def test_sliders_change_the_image_and_paint_shows_from_every_view(avatar):
    base = AE.EditorState()
    img = AE.render_state(avatar, base, 48)
    assert img.shape == (48, 48, 3) and img.dtype == np.uint8 and img.max() > 0
    assert not np.array_equal(img, AE.render_state(avatar, AE.set_identity(base, 2.0), 48))
    assert not np.array_equal(img, AE.render_state(avatar, AE.set_colour(base, 2.0), 48))
    assert not np.array_equal(img, AE.render_state(avatar, AE.set_au(base, "AU26", 5.0), 48))
    painted = AE.paint(base, [(0.0, 0.5), (1.0, 0.5)], (0, 0, 1), 0.08)     # a band around the equator
    for yaw in (-45.0, 0.0, 45.0):
        a = AE.render_state(avatar, AE.set_yaw(base, yaw), 48).astype(float)
        b = AE.render_state(avatar, AE.set_yaw(painted, yaw), 48).astype(float)
        assert np.abs(a - b).mean() > 1.0, yaw


def test_widget_wires_callbacks(avatar):
    pytest.importorskip("ipywidgets")
    w = AE.AvatarEditorWidget(avatar, size=32, display=64)
    first = w.image.value
    w.yaw.value = 30.0
    assert w.state.yaw == 30.0
    w.au_sliders["AU26"].value = 5.0
    assert w.state.au_vector[AE.AU_INDEX["AU26"]] == 5.0 and w.image.value != first
    w.paint_at(0.5, 0.5)
    assert len(w.state.strokes) == 1
    with pytest.raises(ValueError, match="unknown AU"):
        AE.AvatarEditorWidget(avatar, aus=("AU99",))


def test_sphere_trace_idr_gradient_and_mesh_metrics():
    r = torch.tensor(0.5, requires_grad=True)
    out = IM.render(lambda x: x.norm(dim=-1) - r, lambda x: torch.ones(len(x), 3), 32)
    (out["image"].sum() + out["mask"].sum()).backward()
    assert out["hit"].any() and r.grad is not None and float(r.grad) > 0   # a bigger sphere covers more pixels
    v, f = IM.extract_mesh(lambda x: x.norm(dim=-1) - 0.5, 32)
    assert abs(np.linalg.norm(v, axis=1).mean() - 0.5) < 0.01
    cast = IM.raycast_mesh(v, f, 32)
    assert abs(cast["hit"].mean() - out["hit"].float().mean().item()) < 0.03
    rng = np.random.default_rng(0)
    p, pn = IM.sample_surface(v, f, 2000, rng)
    c = IM.chamfer(p, pn, p * 1.1, pn)
    assert 0.02 < c["chamfer_l1"] < 0.06 and c["normal_consistency"] > 0.99
    img = np.random.default_rng(1).random((16, 16, 3))
    assert IM.psnr(img, img) > 100 and abs(IM.ssim(img, img) - 1) < 1e-6
    with pytest.raises(IM.ImplicitError, match="resolution"):
        IM.extract_mesh(lambda x: x.norm(dim=-1) - 0.5, 4)


def test_scan_reader_errors_and_open_mask_sign(tmp_path):
    bad = tmp_path / "bad.obj"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    with pytest.raises(IM.ImplicitError, match="not a Wavefront"):
        IM.load_scan(bad)
    with pytest.raises(IM.ImplicitError, match="does not exist"):
        IM.load_scan(tmp_path / "missing.obj")
    # an open square facing +z: points in front are positive, behind negative
    obj = tmp_path / "sq.obj"
    obj.write_text("v -1 -1 0\nv 1 -1 0\nv 1 1 0\nv -1 1 0\nf 1 2 3 4\n")
    v, f = IM.load_scan(obj)
    assert f.shape == (2, 3)
    s = IM.scan_sdf_samples(v, f, 500, np.random.default_rng(0), sigma=0.05)
    z = s["near"][:, 2]
    assert np.all(np.sign(s["near_sdf"][np.abs(z) > 1e-6]) == np.sign(z[np.abs(z) > 1e-6]))


# ----------------------------------------------------------------------------- notebook 07's extension
class ToyGenAvatar(ToyAvatar):
    """The toy sphere plus generate / inpaint / a driving clip: text length sets the colour."""

    uv_res = 16

    def __init__(self):
        self.base = 0.5
        self.clip_aus = np.stack([np.zeros(20), np.full(20, 2.0)])

    def generate(self, text):
        if not text.strip():
            raise ValueError("description: the description is empty")
        self.base = 0.2 + 0.6 * (len(text) % 7) / 7

    def inpaint(self, mask, text):
        if mask.shape != (self.uv_res, self.uv_res):
            raise ValueError(f"inpaint mask: expected a ({self.uv_res}, {self.uv_res}) UV mask")
        self.base = 0.9

    def codes(self, aus, identity, colour):
        zg, ze, _ = super().codes(aus, identity, colour)
        return zg, ze, torch.tensor([self.base + 0.1 * colour])


def test_generative_callbacks():
    s = AE.set_aus(AE.EditorState(), np.full(20, 1.5))
    assert s.au_vector.sum() == 30.0
    with pytest.raises(ValueError, match="20 AU intensities"):
        AE.set_aus(s, np.zeros(5))
    m = AE.region_mask(0.25, 0.0, 0.75, 0.5, 8)
    assert m.shape == (8, 8) and m.sum() == 16 and m[0, 2] == 1 and m[7, 2] == 0
    with pytest.raises(ValueError, match="u0 < u1"):
        AE.region_mask(0.5, 0.0, 0.25, 0.5, 8)


def test_generative_widget_headless(avatar):
    pytest.importorskip("ipywidgets")
    toy = ToyGenAvatar()
    ed = AE.GenerativeAvatarEditorWidget(toy, size=24, display=48, description="a face")
    before = ed.refresh()
    assert ed.generate("a much longer description")
    assert np.abs(ed.refresh().astype(int) - before.astype(int)).max() > 0
    assert not ed.generate("   ") and ed.status.value.startswith("error: description")
    assert ed.inpaint(0.1, 0.1, 0.5, 0.5) and toy.base == 0.9
    assert not ed.inpaint(0.5, 0.1, 0.2, 0.5) and "u0 < u1" in ed.status.value
    ed.clip_frame.value = 1                       # the slider callback drives the AUs
    assert ed.state.au_vector.sum() == 40.0 and "clip frame 1" in ed.status.value
    # notebook 06's controls still work on the extended widget
    ed.au_sliders["AU12"].value = 3.0
    assert ed.state.au_vector[AE.AU_INDEX["AU12"]] == 3.0
