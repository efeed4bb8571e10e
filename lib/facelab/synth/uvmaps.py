"""UV-space maps of a mesh: position maps, normal maps and back from a map to vertices.

A mesh with a fixed UV layout is an image when every texel stores the 3-D point of the
surface that maps to it (a *position map* or geometry map G, as ava-256's ``generate_geomap``):

* :func:`uv_raster` rasterises the triangles in UV space once per layout and resolution:
  per texel the triangle index (-1 where no triangle covers it) and barycentric weights.
* :func:`position_map` interpolates per-vertex positions with those weights, for a batch
  of meshes; ``fill=True`` copies each uncovered texel from its nearest covered texel, so
  that bilinear lookups near the chart borders stay on the surface (and a network trained
  on the map never has to learn a hard zero border).
* :func:`vertices_from_map` reads vertices back (bilinear lookup at each vertex's UV).
* :func:`normal_map` computes unit normals by finite differences in UV
  (``n = normalize(dG/du x dG/dv)``), the geometry condition of a texture generator.
* :func:`engine_raster` is :func:`uv_raster` of the synthetic engine's full atlas
  (face, eyeballs and mouth interior; :func:`facelab.synth.geometry.topology`), cached.

Texel (i, j) has its centre at ``u = (j + 0.5) / res, v = (i + 0.5) / res`` (u right, v down),
the convention of :mod:`facelab.synth.texture`, so a position map and a texture of the same
resolution are aligned texel for texel.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class UVRaster:
    """Which triangle covers each texel and where: ``tri`` (res, res) int64 (-1: uncovered),
    ``bary`` (res, res, 3) float32, ``nearest`` (res, res) int64 flat index of the nearest
    covered texel (itself when covered)."""

    tri: np.ndarray
    bary: np.ndarray
    nearest: np.ndarray

    @property
    def res(self) -> int:
        return self.tri.shape[0]

    @property
    def mask(self) -> np.ndarray:
        return self.tri >= 0

    @property
    def coverage(self) -> float:
        return float(self.mask.mean())


def uv_raster(uv: np.ndarray, tris: np.ndarray, res: int) -> UVRaster:
    """Rasterise (F, 3) triangles with (V, 2) UVs in [0, 1]^2 into a ``res`` x ``res`` grid.

    Where triangles overlap in UV (a fold in the layout) the later triangle wins."""
    uv = np.asarray(uv, np.float64)
    tris = np.asarray(tris, np.int64)
    if uv.ndim != 2 or uv.shape[1] != 2:
        raise ValueError(f"uv_raster: uv must be (V, 2), got shape {uv.shape}")
    if tris.ndim != 2 or tris.shape[1] != 3 or len(tris) == 0:
        raise ValueError(f"uv_raster: tris must be a non-empty (F, 3) array, got shape {tris.shape}")
    if tris.min() < 0 or tris.max() >= len(uv):
        raise ValueError(f"uv_raster: triangle indices must be in 0..{len(uv) - 1}, got {tris.min()}..{tris.max()}")
    if not isinstance(res, (int, np.integer)) or not 2 <= res <= 4096:
        raise ValueError(f"uv_raster: res must be an int in 2..4096, got {res!r}")
    if not np.isfinite(uv).all() or uv.min() < -1e-6 or uv.max() > 1 + 1e-6:
        raise ValueError(f"uv_raster: UVs must lie in [0, 1]^2, got {uv.min():.3g}..{uv.max():.3g}")
    tri_map = np.full((res, res), -1, np.int64)
    bary = np.zeros((res, res, 3), np.float32)
    p = uv * res - 0.5                                    # texel-index coordinates (x = j, y = i)
    for f, (a, b, c) in enumerate(tris):
        pa, pb, pc = p[a], p[b], p[c]
        lo = np.maximum(np.floor(np.minimum(np.minimum(pa, pb), pc)).astype(int), 0)
        hi = np.minimum(np.ceil(np.maximum(np.maximum(pa, pb), pc)).astype(int), res - 1)
        if (hi < lo).any():
            continue
        jj, ii = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1))
        d = (pb[0] - pa[0]) * (pc[1] - pa[1]) - (pc[0] - pa[0]) * (pb[1] - pa[1])
        if abs(d) < 1e-12:
            continue                                      # degenerate in UV
        w1 = ((jj - pa[0]) * (pc[1] - pa[1]) - (pc[0] - pa[0]) * (ii - pa[1])) / d
        w2 = ((pb[0] - pa[0]) * (ii - pa[1]) - (jj - pa[0]) * (pb[1] - pa[1])) / d
        w0 = 1 - w1 - w2
        inside = (w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9)
        if inside.any():
            tri_map[ii[inside], jj[inside]] = f
            bary[ii[inside], jj[inside]] = np.stack([w0[inside], w1[inside], w2[inside]], -1)
    if (tri_map < 0).all():
        raise ValueError("uv_raster: no texel centre falls inside any triangle; raise res")
    from scipy.ndimage import distance_transform_edt

    _, (ni, nj) = distance_transform_edt(tri_map < 0, return_indices=True)
    return UVRaster(tri_map, bary, (ni * res + nj).astype(np.int64))


def position_map(verts, tris: np.ndarray, raster: UVRaster, fill: bool = True) -> torch.Tensor:
    """(n, V, 3) vertex positions -> (n, 3, res, res) position maps (zeros, or the nearest
    covered texel's value with ``fill``, outside the layout). Differentiable in ``verts``."""
    v = torch.as_tensor(verts, dtype=torch.float32)
    if v.ndim != 3 or v.shape[-1] != 3:
        raise ValueError(f"position_map: verts must be (n, V, 3), got shape {tuple(v.shape)}")
    t = torch.as_tensor(np.asarray(tris, np.int64))
    if int(t.max()) >= v.shape[1]:
        raise ValueError(f"position_map: the triangles index {int(t.max()) + 1} vertices, verts has {v.shape[1]}")
    res = raster.res
    flat_tri = torch.as_tensor(raster.tri.reshape(-1))
    src = torch.as_tensor(raster.nearest.reshape(-1)) if fill else torch.arange(res * res)
    tri_at = flat_tri[src]
    ok = tri_at >= 0
    corners = t[tri_at.clamp_min(0)]                                       # (T, 3)
    w = torch.as_tensor(raster.bary.reshape(-1, 3))[src]                   # (T, 3)
    g = (v[:, corners] * w[None, :, :, None]).sum(2) * ok[None, :, None]   # (n, T, 3)
    return g.transpose(1, 2).reshape(len(v), 3, res, res)


def vertices_from_map(gmap: torch.Tensor, uv: np.ndarray) -> torch.Tensor:
    """(n, C, H, W) maps -> (n, V, C) values at the (V, 2) UVs (bilinear, texel centres as above)."""
    if gmap.ndim != 4:
        raise ValueError(f"vertices_from_map: expected (n, C, H, W) maps, got shape {tuple(gmap.shape)}")
    g = torch.as_tensor(np.asarray(uv, np.float32), device=gmap.device) * 2 - 1
    grid = g[None, :, None].expand(len(gmap), -1, -1, -1)
    return F.grid_sample(gmap, grid, mode="bilinear", padding_mode="border", align_corners=False)[..., 0].transpose(1, 2)


def normal_map(gmap: torch.Tensor, flip: bool = False) -> torch.Tensor:
    """(n, 3, H, W) position maps -> (n, 3, H, W) unit normals from central differences in UV.

    With u right and v down on a surface seen from +z, ``dG/du x dG/dv`` points away from the
    viewer; the result is negated so that normals face +z (``flip`` keeps the raw cross product)."""
    if gmap.ndim != 4 or gmap.shape[1] != 3:
        raise ValueError(f"normal_map: expected (n, 3, H, W) position maps, got shape {tuple(gmap.shape)}")
    p = F.pad(gmap, (1, 1, 1, 1), mode="replicate")
    du = (p[..., 1:-1, 2:] - p[..., 1:-1, :-2]) / 2
    dv = (p[..., 2:, 1:-1] - p[..., :-2, 1:-1]) / 2
    n = torch.cross(du, dv, dim=1)
    n = n if flip else -n
    return n / n.norm(dim=1, keepdim=True).clamp_min(1e-8)


@lru_cache(maxsize=8)
def engine_raster(res: int) -> UVRaster:
    """:func:`uv_raster` of the engine's full atlas (face + eyeballs + mouth interior)."""
    from . import geometry as G

    topo = G.topology()
    return uv_raster(topo.uv, topo.tris, res)


def render_maps(gmap: torch.Tensor, tex: torch.Tensor, yaw: float = 0.0, res: int = 64,
                light=(0.35, 0.35, 1.0), background: float = 0.5, scale: float = 0.82) -> torch.Tensor:
    """Render textured meshes given as UV maps: (n, 3, h, w) engine-frame position maps and
    (n, 3, H, W) textures in [0, 1] -> (n, res, res, 3) images, Lambert-shaded, orthographic.

    Vertices are read back from the position map (:func:`vertices_from_map`) at the engine
    atlas's vertex UVs, turned by ``yaw`` degrees about the engine's head pivot and
    rasterised with :func:`facelab.synth.raster.rasterize`; colour is a bilinear texture lookup
    at the interpolated UV. Gradients reach the texture and, through the shading normals and
    interpolated attributes, the positions (not the triangle coverage)."""
    from . import geometry as G
    from . import raster as RS
    from .render import vertex_normals

    if gmap.ndim != 4 or tex.ndim != 4 or gmap.shape[0] != tex.shape[0] or gmap.shape[1] != 3 or tex.shape[1] != 3:
        raise ValueError(f"render_maps: expected (n, 3, h, w) position maps and (n, 3, H, W) textures, "
                         f"got {tuple(gmap.shape)} and {tuple(tex.shape)}")
    topo = G.topology()
    tris = torch.as_tensor(topo.tris)
    v = vertices_from_map(gmap.float(), topo.uv)                               # (n, V, 3)
    a = np.deg2rad(float(yaw))
    rot = torch.tensor([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]], dtype=torch.float32)
    pivot = torch.as_tensor(G.PIVOT)
    v = (v - pivot) @ rot.T + pivot
    s = scale * res / 190.0                                                    # the face is ~190 units tall
    scr = torch.stack([res / 2 + s * v[..., 0], res / 2 - s * v[..., 1], s * v[..., 2]], -1)
    frags = RS.rasterize(scr.detach(), tris, res, res)
    n = len(v)
    face = frags.pixel // (res * res)
    uv = RS.interpolate(frags, tris, torch.as_tensor(topo.uv))
    col = RS.sample_bilinear(tex.permute(0, 2, 3, 1).contiguous(), face, uv)
    nrm = RS.interpolate_batched(frags, face, tris, vertex_normals(v, tris))
    nrm = nrm / nrm.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    ld = torch.tensor(light, dtype=torch.float32)
    ld = ld / ld.norm()
    shade = 0.3 + 0.7 * (nrm @ ld).clamp_min(0)[:, None]
    img = torch.full((n * res * res, 3), float(background))
    img = img.index_put((frags.pixel,), col * shade)
    return img.reshape(n, res, res, 3)
