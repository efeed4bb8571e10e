"""UV position maps (facelab.synth.uvmaps) and attribute captions (facelab.synth.describe)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facelab.synth import describe as D
from facelab.synth import geometry as G
from facelab.synth import uvmaps as U

SQUARE_UV = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
SQUARE_TRIS = np.array([[0, 1, 2], [0, 2, 3]])


def test_texel_barycentrics_reproduce_its_uv_and_vertex_positions():
    r = U.engine_raster(32)
    topo = G.topology()
    ii, jj = np.nonzero(r.mask)
    corners = topo.tris[r.tri[ii, jj]]                       # (T, 3)
    w = r.bary[ii, jj]
    uv = (topo.uv[corners] * w[..., None]).sum(1)
    centre = np.stack([(jj + 0.5) / 32, (ii + 0.5) / 32], -1)
    np.testing.assert_allclose(uv, centre, atol=1e-4)
    assert (w >= -1e-6).all() and np.allclose(w.sum(-1), 1, atol=1e-5)
    # a texel on a vertex: the map holds exactly that vertex
    verts = np.random.default_rng(0).normal(size=(1, 4, 3)).astype(np.float32)
    sq = U.uv_raster(SQUARE_UV * 0.75 + 0.5 / 8, SQUARE_TRIS, 8)      # vertex 0 at texel (0, 0)'s centre
    g = U.position_map(verts, SQUARE_TRIS, sq, fill=False)
    np.testing.assert_allclose(g[0, :, 0, 0].numpy(), verts[0, 0], atol=1e-5)


def test_coverage_and_fill():
    sq = U.uv_raster(SQUARE_UV, SQUARE_TRIS, 16)
    assert sq.coverage == 1.0
    half = U.uv_raster(SQUARE_UV[[0, 1, 2]], np.array([[0, 1, 2]]), 16)
    assert 0.45 < half.coverage < 0.6
    assert 0.7 < U.engine_raster(32).coverage < 0.9
    verts = np.array([[[0, 0, 1], [1, 0, 1], [1, 1, 1]]], np.float32)
    raw = U.position_map(verts, np.array([[0, 1, 2]]), half, fill=False)
    filled = U.position_map(verts, np.array([[0, 1, 2]]), half, fill=True)
    assert (raw[0, 2][~torch.as_tensor(half.mask)] == 0).all()
    assert (filled[0, 2] == 1).all()       # every texel copies a surface point (z = 1 everywhere)


def test_linear_field_is_reproduced_and_vertices_read_back():
    # positions linear in UV (y up = -v, as the engine) -> the map is exact, normals +z, vertices read back
    uv = np.random.default_rng(1).random((30, 2)) * 0.8 + 0.1
    from scipy.spatial import Delaunay

    tris = Delaunay(uv).simplices
    verts = np.concatenate([uv * [2.0, -3.0], np.zeros((30, 1))], 1)[None].astype(np.float32)
    r = U.uv_raster(uv, tris, 64)
    g = U.position_map(verts, tris, r, fill=False)
    ii, jj = np.nonzero(r.mask)
    np.testing.assert_allclose(g[0, 0].numpy()[ii, jj], 2 * (jj + 0.5) / 64, atol=1e-4)
    back = U.vertices_from_map(U.position_map(verts, tris, r), uv)
    assert float((back - torch.as_tensor(verts)).abs().max()) < 0.05
    n = U.normal_map(g)[0, :, ii[20:30], jj[20:30]]
    np.testing.assert_allclose(n.T.numpy(), np.tile([0, 0, 1.0], (10, 1)), atol=1e-4)


def test_engine_maps_face_the_viewer():
    z = np.zeros((1, 20), np.float32)
    m = G.add_inner_parts(G.face_meshes(z, z, np.zeros((1, len(G.SHAPE_PARAMS)), np.float32)))
    g = U.position_map(m, G.topology().tris, U.engine_raster(32))
    assert g.shape == (1, 3, 32, 32)
    mask = torch.as_tensor(U.engine_raster(32).mask)
    assert float(U.normal_map(g)[0, 2][mask].mean()) > 0.3


@pytest.mark.parametrize("bad, match", [
    (lambda: U.uv_raster(np.zeros((3, 3)), SQUARE_TRIS[:1], 8), "uv must be"),
    (lambda: U.uv_raster(SQUARE_UV, SQUARE_TRIS + 5, 8), "indices"),
    (lambda: U.uv_raster(SQUARE_UV * 2, SQUARE_TRIS, 8), r"\[0, 1\]"),
    (lambda: U.uv_raster(SQUARE_UV, SQUARE_TRIS, 1), "res"),
    (lambda: U.position_map(np.zeros((4, 3)), SQUARE_TRIS, U.uv_raster(SQUARE_UV, SQUARE_TRIS, 8)), r"\(n, V, 3\)"),
    (lambda: U.normal_map(torch.zeros(1, 2, 8, 8)), "position maps"),
])
def test_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        bad()


def test_descriptions_follow_the_parameters():
    ident, attrs, texts = D.sample_described(300, np.random.default_rng(0))
    assert attrs.shape == (300, 4) and len(texts) == 300
    old = attrs[:, 0] == 2
    assert (ident["age"][old] > 55).all() and (ident["age"][attrs[:, 0] == 0] < 35).all()
    assert all(D.ATTRIBUTES["skin"][a] in t for a, t in zip(attrs[:, 1], texts))
    for k in range(4):                          # every attribute takes at least two values
        assert len(np.unique(attrs[:, k])) >= 2
    # age shows in the geometry: older faces have lower brows on average
    b = ident["shape"][:, G.SHAPE_PARAMS.index("brow_height")]
    assert b[old].mean() < b[attrs[:, 0] == 0].mean() - 0.2


def test_caption_errors():
    assert "grey hair" in D.caption_from_attributes({"hair": "grey", "age": "older"})
    with pytest.raises(D.DescriptionError, match="unknown attribute 'eyes'"):
        D.caption_from_attributes({"eyes": "blue"})
    with pytest.raises(D.DescriptionError, match="unknown value 'purple'"):
        D.caption_from_attributes({"hair": "purple"})
    with pytest.raises(D.DescriptionError, match="empty"):
        D.check_caption("   ")
    with pytest.raises(D.DescriptionError, match="at most"):
        D.check_caption("word " * 100)
    assert D.check_caption("  a  young   face ") == "a young face"


def test_render_maps_draws_the_face_and_its_texture():
    z = np.zeros((2, 20), np.float32)
    m = G.add_inner_parts(G.face_meshes(z, z, np.zeros((2, len(G.SHAPE_PARAMS)), np.float32)))
    g = U.position_map(m, G.topology().tris, U.engine_raster(32))
    tex = torch.stack([torch.full((3, 32, 32), 0.9), torch.full((3, 32, 32), 0.1)])
    tex.requires_grad_(True)
    img = U.render_maps(g, tex, yaw=20.0, res=48)
    assert img.shape == (2, 48, 48, 3)
    fg = (img[..., 0] != 0.5)
    assert 0.3 < float(fg[0].float().mean()) < 0.9
    assert float(img[0][fg[0]].mean()) > float(img[1][fg[1]].mean()) + 0.3   # the texture shows
    img.sum().backward()
    assert tex.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="position maps"):
        U.render_maps(g[:1], tex, res=16)
