"""The AU heatmap widget's callbacks, run headless (facelab.widgets.au_heatmap)."""
from __future__ import annotations

import datetime
import io

import numpy as np
import pytest
import torch

from facelab.widgets import au_heatmap as W


@pytest.fixture(scope="module")
def source():
    return W.FaceSource.synthetic(n=8, size=64, seed=3)


@pytest.fixture(scope="module")
def models_meta():
    from facelab.nn.backbones import fer_classifier

    torch.manual_seed(0)
    nets = {k: fer_classifier("small", 7, width=4).eval() for k in ("unguided", "guided")}
    meta = {"size": 32, "hm_size": 16, "mean": [0.5] * 3, "std": [0.25] * 3, "classes": list(W.BASIC7)}
    return nets, meta


def _png_size(data: bytes):
    from PIL import Image

    return Image.open(io.BytesIO(data)).size


def test_state_callbacks(source):
    s = W.select_face(W.HeatmapState(), source, 0)
    label = source.face(0).label
    assert set(s.aus) == {a[:4] for a in W.codebook_aus(label)}
    s2 = W.toggle_au(s, "AU12", True)
    assert "AU12" in s2.aus and list(s2.aus) == [a for a in W.AU_NAMES if a in s2.aus]
    assert "AU12" not in W.toggle_au(s2, "AU12", False).aus
    assert W.toggle_au(s, "12", True) == W.toggle_au(s, "AU12", True)      # names normalised
    assert W.set_blur(s, 5).blur == 5 and W.set_ellipse_scale(s, 1.5).ellipse_scale == 1.5
    with pytest.raises(ValueError, match="odd"):
        W.set_blur(s, 4)
    with pytest.raises(ValueError, match="ellipse scale"):
        W.set_ellipse_scale(s, 0)
    with pytest.raises(IndexError):
        W.select_face(s, source, 99)


def test_heatmap_follows_toggles_blur_and_scale(source):
    face = source.face(1)
    s = W.HeatmapState(aus=("AU12",))
    h = W.heatmap_for(face, s, 96)
    assert h.shape == (96, 96) and h.max() == pytest.approx(1.0)
    assert W.heatmap_for(face, W.HeatmapState(), 96).max() == 0             # no AU: empty map
    bigger = W.heatmap_for(face, W.set_ellipse_scale(s, 2.0), 96)
    assert (bigger > 0.5).sum() > (h > 0.5).sum()
    sharp = W.heatmap_for(face, W.set_blur(s, 1), 96)
    assert not np.allclose(sharp, h)
    assert not np.allclose(W.heatmap_for(face, W.toggle_au(s, "AU01", True), 96), h)


def test_render_png_changes_when_an_au_is_toggled(source):
    face = source.face(2)
    s = W.select_face(W.HeatmapState(), source, 2)
    a = W.render(face, s)
    b = W.render(face, W.toggle_au(s, "AU43", "AU43" not in s.aus))
    assert a["heatmap_png"][:8] == b"\x89PNG\r\n\x1a\n" and _png_size(a["heatmap_png"]) == (W.DISPLAY, W.DISPLAY)
    assert a["heatmap_png"] != b["heatmap_png"] and a["cams"] == {}


def test_cam_panels_report_cam_cos(source, models_meta):
    nets, meta = models_meta
    face = source.face(0)
    s = W.select_face(W.HeatmapState(), source, 0)
    out = W.render(face, s, nets, meta)
    assert set(out["cams"]) == {"unguided", "guided"}
    for v in out["cams"].values():
        assert _png_size(v["png"]) == (W.DISPLAY, W.DISPLAY)
        assert (v["cos"] is None) == (not s.aus)
        if v["cos"] is not None:
            assert 0.0 <= v["cos"] <= 1.0
    assert "CAM-COS" in out["text"]
    for m in ("gradcam", "gradcam++", "layercam"):
        W.render(face, W.HeatmapState(aus=("AU12",), method=m), nets, meta)


def test_load_models_roundtrip(tmp_path, models_meta):
    nets, meta = models_meta
    ck = {"arch": "small", "width": 4, "small_input": True, "num_classes": 7, **meta,
          "unguided": nets["unguided"].state_dict(), "guided": nets["guided"].state_dict()}
    torch.save(ck, tmp_path / "models.pt")
    loaded, m = W.load_models(tmp_path / "models.pt")
    x = torch.randn(1, 3, 32, 32)
    assert torch.allclose(loaded["guided"](x), nets["guided"](x)) and m["hm_size"] == 16


def test_upload_without_a_face_falls_back_to_mean_shape(source):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((40, 50, 3), 128, np.uint8)).save(buf, format="PNG")
    face = W.face_from_upload(buf.getvalue(), 64, source.mean_shape)
    assert face.image.shape == (64, 64, 3) and not face.landmarks_found and face.label == -1
    np.testing.assert_allclose(face.landmarks68, source.mean_shape, rtol=1e-6)
    with pytest.raises(ValueError, match="not an image"):
        W.face_from_upload(b"not an image", 64, source.mean_shape)


def test_widget_object_wires_callbacks(source, models_meta, tmp_path):
    pytest.importorskip("ipywidgets")
    nets, meta = models_meta
    w = W.AUHeatmapWidget(source, nets, meta, size=96)
    before = w.heat_img.value
    au = W.AU_NAMES[0]
    w.checks[au].value = not w.checks[au].value                  # what a click does
    assert (au in w.state.aus) == w.checks[au].value
    assert w.heat_img.value != before
    w.index.value = 3                                             # a new face brings its codebook AUs
    assert w.state.index == 3
    assert {a for a, cb in w.checks.items() if cb.value} == set(w.state.aus)
    w.method.value = "layercam"
    assert "CAM-COS" in w.status.value
    bare = W.AUHeatmapWidget.from_run(tmp_path)                   # nothing saved: heatmap only
    assert bare.models == {} and bare.heat_img.value


def test_widget_shows_callback_errors_and_resets_the_upload(source, models_meta):
    pytest.importorskip("ipywidgets")
    nets, meta = models_meta
    w = W.AUHeatmapWidget(source, nets, meta, size=96)
    assert not any(s.continuous_update for s in (w.index, w.blur, w.scale))   # redraw on release only
    before = w.heat_img.value
    w.upload.value = ({"name": "notes.txt", "type": "text/plain", "size": 12, "last_modified": datetime.datetime(2026, 1, 1),
                       "content": memoryview(b"not an image")},)
    assert w.last_error and "expected a JPEG or PNG" in w.last_error
    assert "expected a JPEG or PNG" in w.status.value and "color" in w.status.value
    assert w.heat_img.value == before                              # the previous picture stays
    assert len(w.upload.value) == 0                                # cleared: the same file can come again
    w.index.value = 2                                              # the widget still works afterwards
    assert w.last_error is None and w.state.index == 2
