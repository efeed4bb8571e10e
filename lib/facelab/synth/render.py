"""From meshes, identities, poses and lights to RGB images with exact landmarks.

One call renders a batch: deform -> add eyeballs/mouth -> rotate and project -> rasterise at
``supersample`` x the output size -> texture, Gouraud-Lambert shading, composite over the
background -> box-filter down to the output size. Landmarks are the projected vertices in
output pixel coordinates (pixel (r, c) centred at x=c, y=r), exactly the points the
rasteriser used.
"""
from __future__ import annotations

from contextlib import contextmanager

import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from . import geometry as G
from . import raster, texture


@dataclass
class Rendered:
    images: np.ndarray        # (n, H, W, 3) uint8
    landmarks: np.ndarray     # (n, 468, 2) float32 pixel coordinates
    visible: np.ndarray       # (n, 468) bool: in the image, facing the camera and not occluded
    depth: np.ndarray         # (n, 468) float32, towards the viewer, pixels
    coverage: np.ndarray      # (n, H, W) float32 in [0,1]: fraction of the pixel covered by the face
    supersampled: torch.Tensor | None = None  # (n, H*s, W*s, 3) float image before filtering, when asked


#: Rasteriser backends: "auto" (numba when it imports, else torch), "numba", "torch".
BACKENDS = ("auto", "numba", "torch")
def _load_numba():
    """facelab.synth.raster_numba, or None without a working numba."""
    from facelab.config import import_numba_module

    return import_numba_module("facelab.synth.raster_numba")


def numba_available() -> bool:
    """True when the compiled renderer (numba) imports. Imports numba on the first call."""
    return _load_numba() is not None


#: What "auto" resolves to while :func:`use_backend` is active (None: numba when it imports).
_auto_override: str | None = None


@contextmanager
def use_backend(backend: str):
    """Within the block, "auto" (what :func:`facelab.synth.faces` renders with) means ``backend``.

    The public switch for benchmarks and debugging: ``with render.use_backend("torch"): faces(...)``."""
    global _auto_override
    if backend not in ("numba", "torch"):
        raise ValueError(f"use_backend: expected 'numba' or 'torch', got {backend!r}")
    resolve_backend(backend)  # fails now, with its message, when numba is asked for and missing
    saved, _auto_override = _auto_override, backend
    try:
        yield
    finally:
        _auto_override = saved


def resolve_backend(backend: str = "auto") -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown render backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    if backend == "auto":
        if _auto_override is not None:
            return _auto_override
        return "numba" if numba_available() else "torch"
    if backend == "numba" and not numba_available():
        raise RuntimeError("render backend 'numba' requested but numba does not import; use backend='torch'")
    return backend


def texture_res(size: int) -> int:
    return 128 if size <= 128 else 256


@lru_cache(maxsize=1)
def _vertex_gloss() -> np.ndarray:
    topo = G.topology()
    g = np.full(topo.n_vertices, 0.12, np.float32)
    for mat, val in ((G.MAT_EYE, 0.5), (G.MAT_MOUTH, 0.15)):
        g[np.unique(topo.tris[topo.tri_material == mat])] = val
    return g


def vertex_normals(v: torch.Tensor, tris: torch.Tensor) -> torch.Tensor:
    """(n, V, 3) area-weighted unit vertex normals in the x-right, y-up, z-to-viewer frame."""
    a, b, c = v[:, tris[:, 0]], v[:, tris[:, 1]], v[:, tris[:, 2]]
    fn = torch.cross(b - a, c - a, dim=-1)
    vn = torch.zeros_like(v)
    idx = tris.reshape(-1)
    vn.index_add_(1, idx, fn.repeat_interleave(3, dim=1))  # each corner gets its triangle's normal
    return vn / vn.norm(dim=-1, keepdim=True).clamp(min=1e-9)


def render(meshes: np.ndarray, ident: dict, pose: np.ndarray, scale: np.ndarray, center_xy: np.ndarray,
           light: np.ndarray, background: torch.Tensor | np.ndarray, size: int | tuple[int, int],
           supersample: int = 2, textures: torch.Tensor | None = None, keep_supersampled: bool = False,
           backend: str = "auto", aus: tuple[np.ndarray, np.ndarray] | None = None, head: bool = False) -> Rendered:
    """Render n faces.

    meshes (n, 468, 3) centred model-space meshes (``geometry.face_meshes``); pose (n, 3)
    radians; scale (n,) output pixels per model unit; center_xy (n, 2) output pixels of the
    mesh origin; light (n, 4): direction (x, y, z towards viewer) and ambient level;
    background (n, H*s, W*s, 3) float in [0, 1] at the supersampled size; ``textures``
    (n, R, R, 3) overrides the atlases composed from ``ident`` (tests paint marks with it).
    ``backend``: "numba" (:mod:`facelab.synth.raster_numba`, one compiled pass per face, faces
    in parallel), "torch" (:mod:`facelab.synth.raster`, vectorised over the batch) or "auto"
    (numba when it imports). Both give the same landmarks and visibility rules and images that
    differ by rounding only. ``aus``: (right, left) per-side AU intensities (n, 20) that
    drive the texture's appearance cues (:data:`texture.CUES`: furrows, folds, lines); None
    renders none. ``head``: paint hair, ears and neck behind the face mesh
    (:func:`facelab.synth.head.paint_head`).
    """
    H, W = (size, size) if isinstance(size, int) else size
    s = int(supersample)
    n = meshes.shape[0]
    topo = G.topology()
    full = G.add_inner_parts(meshes)
    scr = G.pose_and_project(full, pose, scale, center_xy)  # output pixels
    # output pixel c covers supersamples s*c .. s*c+s-1, whose centres average to s*c+(s-1)/2
    ss = scr.copy()
    ss[..., :2] = ss[..., :2] * s + (s - 1) / 2
    ss[..., 2] *= s
    if head:
        from .head import paint_head
        bg_np = background.numpy() if isinstance(background, torch.Tensor) else background
        background = paint_head(bg_np, ss, ident)
    if resolve_backend(backend) == "numba":
        return _render_numba(scr, ss, ident, light, background, (H, W), s, textures, keep_supersampled, scale, aus)
    tris = torch.as_tensor(topo.tris)
    v = torch.as_tensor(ss)
    frags = raster.rasterize(v, tris, H * s, W * s)
    face_of = frags.pixel // (H * s * W * s)
    # shading: Lambert per vertex (Gouraud), in the y-up frame (flip the image y back)
    vup = v.clone()
    vup[..., 1] = -vup[..., 1]
    normals = vertex_normals(vup, tris)
    lt = torch.as_tensor(np.asarray(light, np.float32))
    ldir = lt[:, :3] / lt[:, :3].norm(dim=-1, keepdim=True)
    lam = (normals * ldir[:, None]).sum(-1).clamp(min=0)
    amb = lt[:, 3:4]
    shade = amb + (1 - amb) * lam  # (n, V)
    # a little view-facing specular sheen so foreheads and noses read as rounded
    half = ldir + torch.tensor([0.0, 0.0, 1.0])
    half = half / half.norm(dim=-1, keepdim=True)
    spec = (normals * half[:, None]).sum(-1).clamp(min=0) ** 24
    # eyes and teeth are glossier than skin; every vertex belongs to one material
    gloss = torch.as_tensor(_vertex_gloss())
    # one gather interpolates everything a pixel needs: u, v, shade, specular
    uvt = torch.as_tensor(topo.uv)[None].expand(n, -1, -1)
    attr = torch.cat([uvt, shade[..., None], (gloss * spec)[..., None]], -1)
    a = raster.interpolate_batched(frags, face_of, tris, attr)
    ar, al = (None, None) if aus is None else aus
    tex = texture.compose(ident, texture_res(max(H, W)), aus_right=ar, aus_left=al) if textures is None else textures
    col = raster.sample_bilinear(tex, face_of, a[:, :2])
    col = col * a[:, 2:3] + a[:, 3:4]
    bg = torch.as_tensor(background, dtype=torch.float32).reshape(n * H * s * W * s, 3).clone()
    bg[frags.pixel] = col.clamp(0, 1)
    img = bg.reshape(n, H, s, W, s, 3).mean((2, 4))
    cov = torch.zeros(n * H * s * W * s)
    cov[frags.pixel] = 1.0
    cov = cov.reshape(n, H, s, W, s).mean((2, 4))
    images = (img * 255 + 0.5).clamp(0, 255).to(torch.uint8).numpy()
    visible = _visibility(scr, ss, frags.depth.numpy(), normals[:, :G.N, 2].numpy(), (H, W), s, scale)
    return Rendered(images=images, landmarks=scr[:, :G.N, :2].astype(np.float32), visible=visible,
                    depth=scr[:, :G.N, 2].astype(np.float32), coverage=cov.numpy(),
                    supersampled=bg.reshape(n, H * s, W * s, 3) if keep_supersampled else None)


def _visibility(scr, ss, depth, normal_z, hw, s, scale) -> np.ndarray:
    """Visibility of the 468 landmarks: inside the image, front-facing and on top of the
    z-buffer ``depth`` (flat (n*H*s*W*s,) or (n, H*s, W*s))."""
    H, W = hw
    n = len(scr)
    px = np.rint(ss[:, :G.N, 0]).astype(np.int64)
    py = np.rint(ss[:, :G.N, 1]).astype(np.int64)
    inside = (px >= 0) & (px < W * s) & (py >= 0) & (py < H * s)
    flat = (np.arange(n)[:, None] * H * s + py.clip(0, H * s - 1)) * W * s + px.clip(0, W * s - 1)
    zbuf = depth.reshape(-1)[flat]
    # a vertex is hidden when something is nearer by more than ~3% of the face width
    # (steep surfaces change depth by a pixel or more within the rounding of its position)
    tol = 0.03 * s * np.asarray(scale)[:, None] * 175
    front = normal_z[:, :G.N] > -0.05
    return inside & front & (ss[:, :G.N, 2] >= zbuf - tol)


def _render_numba(scr, ss, ident, light, background, hw, s, textures, keep_supersampled, scale, aus=None) -> Rendered:
    topo = G.topology()
    H, W = hw
    bg = background.numpy() if isinstance(background, torch.Tensor) else np.asarray(background, np.float32)
    kw = {}
    if textures is not None:
        kw["textures"] = textures.numpy() if isinstance(textures, torch.Tensor) else np.asarray(textures)
    else:
        basis, const = texture.linear_basis_np(texture_res(max(H, W)))
        ar, al = (None, None) if aus is None else aus
        kw.update(basis=basis, const=const, coefs=texture.colour_coefficients(ident, ar, al))
    out = _load_numba().render_faces(ss, _topology_i32(), topo.uv, _vertex_gloss(), light, bg, (H, W), s,
                                     keep_supersampled=keep_supersampled, **kw)
    visible = _visibility(scr, ss, out["depth"], out["normal_z"], (H, W), s, scale)
    sup = torch.from_numpy(out["supersampled"]) if keep_supersampled else None
    return Rendered(images=out["images"], landmarks=scr[:, :G.N, :2].astype(np.float32), visible=visible,
                    depth=scr[:, :G.N, 2].astype(np.float32), coverage=out["coverage"], supersampled=sup)


@lru_cache(maxsize=1)
def _topology_i32() -> np.ndarray:
    return np.ascontiguousarray(G.topology().tris, np.int32)
