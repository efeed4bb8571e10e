"""facelab.synth's compiled renderer (numba) against the torch rasteriser: same landmarks and
visibility, images equal up to rounding, deterministic regardless of threads; the fast
background kernel draws the same pictures from the same random numbers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facelab.synth import backgrounds as B
from facelab.synth import expressions as E
from facelab.synth import faces, scenes
from facelab.synth import geometry as G
from facelab.synth import identity as I
from facelab.synth import render as R

pytestmark = pytest.mark.skipif(not R.numba_available(), reason="numba does not import here")


def _scene(n: int, size: int, seed: int = 0, bg_kinds=None):
    rng = np.random.default_rng(seed)
    ident = I.sample_identities(n, rng)
    right, left, _, _ = E.sample_aus(rng.integers(0, 8, n), rng, (0.6, 1.0), 0.12, 0.15)
    meshes = G.face_meshes(right, left, ident["shape"])
    pose = (rng.uniform(-1, 1, (n, 3)) * np.array([0.25, 0.45, 0.2])).astype(np.float32)
    scale = (rng.uniform(0.62, 0.8, n) * size / 175).astype(np.float32)
    center = (size / 2 + rng.uniform(-0.04, 0.04, (n, 2)) * size).astype(np.float32)
    light = np.stack([rng.uniform(-0.9, 0.9, n), rng.uniform(-0.3, 0.9, n), np.ones(n),
                      rng.uniform(0.25, 0.5, n)], -1).astype(np.float32)
    kinds = rng.integers(0, 3, n) if bg_kinds is None else bg_kinds
    bg = B.backgrounds(kinds, 2 * size, 2 * size, rng)
    return meshes, ident, pose, scale, center, light, bg


@pytest.mark.parametrize("size", [48, 112])
def test_numba_matches_torch(size):
    args = _scene(6, size, seed=size)
    with torch.inference_mode():
        a = R.render(*args, size, backend="torch", keep_supersampled=True)
        b = R.render(*args, size, backend="numba", keep_supersampled=True)
    np.testing.assert_array_equal(a.landmarks, b.landmarks)
    np.testing.assert_array_equal(a.depth, b.depth)
    assert (a.visible == b.visible).mean() > 0.999
    d = np.abs(a.images.astype(int) - b.images.astype(int))
    # float rounding only: a handful of pixels one level apart, nothing visible
    assert d.mean() < 0.01 and (d > 2).mean() < 1e-4, (d.mean(), d.max())
    assert np.abs(a.coverage - b.coverage).mean() < 1e-3
    # samples exactly on a triangle edge may go to the neighbour (float rounding): rare
    ds = (a.supersampled - b.supersampled).abs()
    assert float(ds.mean()) < 1e-3 and float((ds > 0.02).float().mean()) < 1e-3
    # a face is there: the face covers a good part of the image
    assert 0.2 < b.coverage.mean() < 0.9


def test_numba_textures_override_and_flat_light():
    """A caller's texture is used as is: constant texture under flat light -> constant face."""
    size, n = 64, 2
    meshes, ident, pose, scale, center, _, _ = _scene(n, size, seed=3)
    tex = torch.full((n, 128, 128, 3), 0.5)
    light = np.tile(np.array([[0, 0, 1, 1.0]], np.float32), (n, 1))
    bg = torch.zeros(n, 2 * size, 2 * size, 3)
    r = R.render(meshes, ident, pose, scale, center, light, bg, size, textures=tex, backend="numba")
    full = r.coverage == 1.0
    assert full.sum() > 500
    vals = r.images[full]
    # 0.5 * shade(=1) + a little sheen on glossy parts: mostly exactly 128
    assert np.median(vals) == 128 and (vals >= 127).all()


def test_numba_deterministic_across_threads():
    import numba
    args = _scene(5, 64, seed=9)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a = R.render(*args, 64, backend="numba")
        numba.set_num_threads(max(1, numba.config.NUMBA_NUM_THREADS))
        b = R.render(*args, 64, backend="numba")
    finally:
        numba.set_num_threads(old)
    assert a.images.tobytes() == b.images.tobytes()
    np.testing.assert_array_equal(a.coverage, b.coverage)


def test_backend_argument():
    args = _scene(1, 32)
    with pytest.raises(ValueError, match="unknown render backend"):
        R.render(*args, 32, backend="opengl")
    assert R.resolve_backend("auto") == "numba" and R.resolve_backend("torch") == "torch"


def test_numba_backgrounds_match_torch(monkeypatch):
    kinds = np.array([0, 1, 2, 1, 2, 0, 2])
    fast = B.backgrounds(kinds, 96, 96, np.random.default_rng(4))
    monkeypatch.setattr(R, "_load_numba", lambda: None)  # the torch path
    slow = B.backgrounds(kinds, 96, 96, np.random.default_rng(4))
    assert fast.shape == slow.shape == (7, 96, 96, 3)
    assert float((fast - slow).abs().max()) < 1e-4


def test_generators_identical_images_with_either_backend(monkeypatch):
    """faces() and scenes() through the numba path look like the torch path's."""
    a = faces(4, 64, seed=21)
    s1 = scenes(2, 80, seed=2, min_faces=2, max_faces=2)
    monkeypatch.setattr(R, "_load_numba", lambda: None)
    b = faces(4, 64, seed=21)
    s2 = scenes(2, 80, seed=2, min_faces=2, max_faces=2)
    np.testing.assert_array_equal(a.landmarks468, b.landmarks468)
    np.testing.assert_array_equal(a.visibility, b.visibility)
    assert np.abs(a.images.astype(int) - b.images.astype(int)).mean() < 0.01
    assert np.abs(s1.images.astype(int) - s2.images.astype(int)).mean() < 0.01
    for x, y in zip(s1.boxes, s2.boxes):
        np.testing.assert_array_equal(x, y)
