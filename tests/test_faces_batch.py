"""facelab.faces.batch: aligning many faces, FaceMesh on many crops with budget and fallback."""
from __future__ import annotations

import numpy as np
import pytest

from facelab import faces
from facelab.faces import batch as FB


def test_align_batch_moves_points_with_the_face():
    from facelab import synth

    b = synth.faces(4, 64, [1, 2, 3, 6], seed=0, supersample=1)
    img, lm = faces.align_batch(b.images, b.landmarks68, 48)
    assert img.shape == (4, 48, 48, 3) and lm.shape == (4, 68, 2)
    five = np.stack([faces.five_from_68(p) for p in lm])
    template = faces.template_5(48, zoom=0.9)
    assert np.abs(five - template).mean() < 2.5          # the 5 points sit near the template (px)
    with pytest.raises(ValueError, match="expected images"):
        faces.align_batch(b.images, b.landmarks68[:, :5], 48)


def test_landmarks_with_fallback_uses_budget_mean_shape_and_cache(monkeypatch):
    calls = []

    def fake_mesh(crops, min_score, threads):
        calls.append(len(crops))
        lm = np.tile(np.arange(68, dtype=np.float32)[:, None], (len(crops), 1, 2))
        ok = np.array([i % 2 == 0 for i in range(len(crops))])      # every other face "fails"
        return lm * (1 + np.arange(len(crops)))[:, None, None], ok

    monkeypatch.setattr(FB, "mesh68_crops", fake_mesh)
    crops = np.zeros((10, 8, 8, 3), np.uint8)
    out = faces.landmarks_with_fallback(crops, 4, seed=1)
    assert calls == [4] and out["landmarked"] == 4 and out["lm_ok"].sum() == 2
    assert np.allclose(out["lm"][~out["lm_ok"]], out["mean_shape"])            # fallbacks get the mean
    assert np.allclose(out["mean_shape"], out["lm"][out["lm_ok"]].mean(0))
    given = np.full((68, 2), 7.0, np.float32)
    assert np.allclose(faces.landmarks_with_fallback(crops, 0, mean_shape=given)["lm"], 7.0)
    with pytest.raises(ValueError, match="no face was landmarked"):
        faces.landmarks_with_fallback(crops, 0)
    assert np.allclose(faces.landmarks_with_fallback(crops, 0, fallback_shape=lambda: given)["mean_shape"], 7.0)


def test_mesh68_crops_rejects_wrong_input_and_handles_empty():
    with pytest.raises(ValueError, match="uint8 crops"):
        faces.mesh68_crops(np.zeros((2, 8, 8), np.uint8))
    lm, ok = faces.mesh68_crops(np.zeros((0, 8, 8, 3), np.uint8))
    assert lm.shape == (0, 68, 2) and ok.shape == (0,)


def test_mesh68_crops_finds_a_rendered_face():
    pytest.importorskip("ai_edge_litert", reason="FaceMesh needs the TFLite runtime")
    from facelab import synth

    b = synth.faces(2, 96, [1, 3], seed=0, supersample=1, backgrounds="plain", face_scale=(0.9, 0.95))
    img, lm_true = faces.align_batch(b.images, b.landmarks68, 96, zoom=0.9)
    lm, ok = faces.mesh68_crops(img, cache=False)
    assert ok.all()
    assert np.abs(lm - lm_true).mean() < 8.0               # px on a 96 px crop
