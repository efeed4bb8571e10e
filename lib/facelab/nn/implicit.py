"""Implicit surfaces: differentiable sphere tracing, mesh extraction, ray-cast ground truth, metrics.

Generic over the surface: every function takes ``sdf_fn(points (P, 3)) -> (P,)`` (and, for
colour, ``albedo_fn(points) -> (P, 3)``), so notebook 06's morphable model, a toy sphere in a
test and the avatar editor all render through the same code.

* :func:`camera_rays` - a pinhole camera on a circle around the origin (yaw about +y, looking at
  the origin; the face frame of ``facelab.synth.sdf``: x right, y up, z towards the viewer).
* :func:`sphere_trace` - march rays with no gradient, then the IDR surface point
  ``x = x0 - v (f(x0; θ) - f(x0; θ0)) / (∇f(x0) · v)`` (Yariv et al. 2020, eq. 3), which is x0
  in value but carries the gradient of the surface position with respect to every parameter
  and latent code; plus a soft silhouette ``sigmoid(-alpha * min_t f)`` along the ray.
* :func:`render` - Lambert shading ``albedo * (ambient + diffuse * max(0, n · l))`` of the
  traced surface, with its normal ``∇f / |∇f|`` (double-backward, so shading also trains codes).
* :func:`raycast_mesh` - exact ray-triangle intersection of a triangle mesh (ground-truth images).
* :func:`extract_mesh` - marching cubes of an SDF on an ``res``^3 grid (scikit-image).
* :func:`chamfer` - Chamfer-L1 and normal consistency between two oriented point sets.
* :func:`psnr`, :func:`ssim` - image metrics on [0, 1] images.
* :func:`load_scan`, :func:`scan_sdf_samples` - an OBJ scan and SDF samples around an open mask,
  signed by the closest triangle's normal (an open surface has no inside for a winding test).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

LIGHT = (0.3, 0.4, 1.0)


class ImplicitError(ValueError):
    """A scan, resolution or code size facelab's implicit tools cannot use; the message says why."""


def check_resolution(res: int, lo: int = 8, hi: int = 512, what: str = "resolution") -> int:
    if not isinstance(res, (int, np.integer)) or isinstance(res, bool) or not lo <= res <= hi:
        raise ImplicitError(f"{what}={res!r}: expected an int in [{lo}, {hi}]")
    return int(res)


# ------------------------------------------------------------------ cameras
def camera_rays(res: int, yaw_deg: float = 0.0, pitch_deg: float = 0.0, dist: float = 2.8,
                fov_deg: float = 40.0, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Origins and unit directions (res*res, 3) of a pinhole camera looking at the origin.
    Pixel rows run top to bottom (image convention)."""
    check_resolution(res)
    y, p = math.radians(yaw_deg), math.radians(pitch_deg)
    eye = torch.tensor([dist * math.sin(y) * math.cos(p), dist * math.sin(p), dist * math.cos(y) * math.cos(p)])
    fwd = -eye / eye.norm()
    right = torch.linalg.cross(fwd, torch.tensor([0.0, 1.0, 0.0]))
    right = right / right.norm()
    up = torch.linalg.cross(right, fwd)
    s = math.tan(math.radians(fov_deg) / 2)
    c = (torch.arange(res, dtype=torch.float32) + 0.5) / res * 2 - 1
    yy, xx = torch.meshgrid(-c, c, indexing="ij")
    d = fwd + s * (xx.reshape(-1, 1) * right + yy.reshape(-1, 1) * up)
    d = d / d.norm(dim=1, keepdim=True)
    o = eye.expand_as(d)
    return o.to(device).contiguous(), d.to(device).contiguous()


# ------------------------------------------------------------------ sphere tracing
def sphere_trace(sdf_fn: Callable, origins: torch.Tensor, dirs: torch.Tensor, *, steps: int = 32,
                 radius: float = 1.3, eps: float = 2e-3, step_scale: float = 0.9, alpha: float = 60.0,
                 differentiable: bool = True) -> dict:
    """Trace rays into the zero level set of ``sdf_fn``. Returns ``x`` (R, 3) surface points
    (IDR-differentiable on hits), ``hit`` (R,) bool, ``mask`` (R,) soft silhouette in (0, 1)."""
    b = (origins * dirs).sum(1)
    c = (origins * origins).sum(1) - radius ** 2
    disc = b * b - c
    t = (-b - disc.clamp_min(0).sqrt()).clamp_min(0)
    t_far = -b + disc.clamp_min(0).sqrt()
    alive = disc > 0
    mins = []
    with torch.no_grad():
        for i in range(steps):
            x = origins + t[:, None] * dirs
            f = sdf_fn(x)
            t = torch.where(alive, t + step_scale * f.clamp_min(-0.05), t)
            alive = alive & (t < t_far) & (f.abs() > eps * 0.1)
        x0 = origins + t[:, None] * dirs
        f0 = sdf_fn(x0)
        hit = (disc > 0) & (f0.abs() < eps * 5) & (t < t_far)
    out = {"hit": hit, "t": t}
    if not differentiable:
        out["x"], out["mask"] = x0, hit.float()
        return out
    # soft silhouette from the minimum of f over a few points along the ray (positions detached)
    ts = torch.linspace(0, 1, 12, device=origins.device)
    t0 = (-b - disc.clamp_min(0).sqrt()).clamp_min(0)
    tt = t0[:, None] + (t_far - t0).clamp_min(0)[:, None] * ts[None]
    tt = torch.cat([tt, t[:, None]], 1)
    pts = (origins[:, None] + tt[..., None] * dirs[:, None]).detach()
    fmin = sdf_fn(pts.reshape(-1, 3)).reshape(len(t), -1).min(1).values
    out["mask"] = torch.where(disc > 0, torch.sigmoid(-alpha * fmin), torch.zeros_like(fmin))
    xh = x0[hit].detach().requires_grad_(True)
    if len(xh):
        with torch.enable_grad():
            fh = sdf_fn(xh)
            g = torch.autograd.grad(fh.sum(), xh, create_graph=False)[0].detach()
        fh2 = sdf_fn(x0[hit].detach())
        dv = (g * dirs[hit]).sum(1, keepdim=True)
        dv = torch.where(dv.abs() < 1e-3, torch.full_like(dv, -1e-3), dv)
        xs = x0[hit].detach() - dirs[hit] * (fh2 - fh2.detach())[:, None] / dv
        x = x0.detach().clone()
        x = x.index_put((hit.nonzero()[:, 0],), xs)
    else:
        x = x0.detach()
    out["x"] = x
    return out


def sdf_normals(sdf_fn: Callable, x: torch.Tensor, create_graph: bool = True) -> torch.Tensor:
    """Unit gradient of ``sdf_fn`` at x (differentiable in the parameters with create_graph)."""
    with torch.enable_grad():
        if not x.requires_grad:
            x = x.detach().requires_grad_(True)
        f = sdf_fn(x)
        g = torch.autograd.grad(f.sum(), x, create_graph=create_graph)[0]
    return F.normalize(g, dim=-1)


def render(sdf_fn: Callable, albedo_fn: Callable, res: int = 64, yaw_deg: float = 0.0, *, pitch_deg: float = 0.0,
           steps: int = 32, ambient: float = 0.35, diffuse: float = 0.75, background: float = 0.0,
           differentiable: bool = True, device=None) -> dict:
    """Lambert render of an SDF with colour ``albedo_fn``. Returns ``image`` (res, res, 3),
    ``mask`` (res, res) soft silhouette, ``hit`` (res, res) bool."""
    o, d = camera_rays(res, yaw_deg, pitch_deg, device=device)
    tr = sphere_trace(sdf_fn, o, d, steps=steps, differentiable=differentiable)
    hit = tr["hit"]
    img = torch.full((len(o), 3), float(background), device=o.device)
    if hit.any():
        xh = tr["x"][hit]
        n = sdf_normals(sdf_fn, xh, create_graph=differentiable)
        if not differentiable:
            n = n.detach()
        light = F.normalize(torch.tensor(LIGHT, device=o.device), dim=0)
        shade = ambient + diffuse * (n @ light).clamp_min(0)
        rgb = albedo_fn(xh) * shade[:, None]
        img = img.index_put((hit.nonzero()[:, 0],), rgb)
    return {"image": img.reshape(res, res, 3), "mask": tr["mask"].reshape(res, res), "hit": hit.reshape(res, res)}


# ------------------------------------------------------------------ ground-truth meshes
def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    c = vertices[triangles]
    fn = np.cross(c[:, 1] - c[:, 0], c[:, 2] - c[:, 0])
    vn = np.zeros_like(vertices, dtype=np.float64)
    for k in range(3):
        np.add.at(vn, triangles[:, k], fn)
    return vn / np.linalg.norm(vn, axis=1, keepdims=True).clip(1e-12)


def raycast_mesh(vertices: np.ndarray, triangles: np.ndarray, res: int = 64, yaw_deg: float = 0.0, *,
                 pitch_deg: float = 0.0, chunk: int = 512) -> dict:
    """Nearest ray-triangle hit per pixel (Moller-Trumbore, vectorised). Returns ``hit`` (res, res),
    ``tri`` (res, res) triangle index (-1 on a miss), ``bary`` (res, res, 3), ``points`` (res, res, 3)."""
    o, d = camera_rays(res, yaw_deg, pitch_deg)
    o, d = o.numpy().astype(np.float64), d.numpy().astype(np.float64)
    c = vertices[triangles].astype(np.float64)
    a, e1, e2 = c[:, 0], c[:, 1] - c[:, 0], c[:, 2] - c[:, 0]
    n = len(o)
    best_t, best_tri = np.full(n, np.inf), np.full(n, -1)
    best_uv = np.zeros((n, 2))
    for s in range(0, n, chunk):
        dd, oo = d[s:s + chunk, None], o[s:s + chunk, None]
        p = np.cross(dd, e2[None])
        det = (e1[None] * p).sum(-1)
        ok = np.abs(det) > 1e-12
        inv = 1 / np.where(ok, det, 1)
        tv = oo - a[None]
        u = (tv * p).sum(-1) * inv
        q = np.cross(tv, e1[None])
        v = (dd * q).sum(-1) * inv
        t = (e2[None] * q).sum(-1) * inv
        good = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 1e-6)
        t = np.where(good, t, np.inf)
        j = t.argmin(1)
        r = np.arange(len(j))
        best_t[s:s + chunk], best_tri[s:s + chunk] = t[r, j], np.where(np.isfinite(t[r, j]), j, -1)
        best_uv[s:s + chunk] = np.stack([u[r, j], v[r, j]], 1)
    hit = best_tri >= 0
    bary = np.stack([1 - best_uv.sum(1), best_uv[:, 0], best_uv[:, 1]], 1)
    pts = o + np.where(hit, best_t, 0)[:, None] * d
    return {"hit": hit.reshape(res, res), "tri": best_tri.reshape(res, res), "bary": bary.reshape(res, res, 3),
            "points": pts.reshape(res, res, 3)}


def shade_mesh(vertices, triangles, albedo: np.ndarray, cast: dict, *, ambient: float = 0.35,
               diffuse: float = 0.75, background: float = 0.0) -> np.ndarray:
    """Lambert image of a ray-cast mesh: ``albedo`` (res, res, 3) per pixel (from the caller's
    texture lookup), smooth vertex normals, the same light as :func:`render`."""
    vn = vertex_normals(vertices, triangles)
    hit, tri, bary = cast["hit"], cast["tri"], cast["bary"]
    n = (vn[triangles[np.where(hit, tri, 0)]] * bary[..., None]).sum(-2)
    n /= np.linalg.norm(n, axis=-1, keepdims=True).clip(1e-12)
    light = np.asarray(LIGHT) / np.linalg.norm(LIGHT)
    shade = ambient + diffuse * np.clip(n @ light, 0, None)
    img = np.where(hit[..., None], albedo * shade[..., None], background)
    return img.astype(np.float32)


# ------------------------------------------------------------------ meshes and metrics
def sdf_grid(sdf_fn: Callable, res: int = 32, bound: float = 1.0, chunk: int = 32768, device=None) -> np.ndarray:
    check_resolution(res, 8, 512, "marching-cubes resolution")
    g = torch.linspace(-bound, bound, res, device=device)
    pts = torch.stack(torch.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    with torch.no_grad():
        vals = torch.cat([sdf_fn(pts[i:i + chunk]) for i in range(0, len(pts), chunk)])
    return vals.reshape(res, res, res).cpu().numpy()


def extract_mesh(sdf_fn: Callable, res: int = 32, bound: float = 1.0, device=None) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) and triangles (F, 3) of the zero level set by marching cubes (scikit-image)."""
    try:
        from skimage.measure import marching_cubes
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImplicitError("extract_mesh needs scikit-image (pip install scikit-image)") from e
    vol = sdf_grid(sdf_fn, res, bound, device=device)
    if vol.min() > 0 or vol.max() < 0:
        raise ImplicitError(f"the SDF has no zero crossing in [-{bound}, {bound}]^3 (min {vol.min():.3f}, max {vol.max():.3f})")
    step = 2 * bound / (res - 1)
    v, f, _, _ = marching_cubes(vol, 0.0, spacing=(step, step, step))
    return (v - bound).astype(np.float64), f.astype(np.int64)


def sample_surface(vertices: np.ndarray, triangles: np.ndarray, n: int, rng: np.random.Generator):
    """Area-weighted points (n, 3) and their face normals (n, 3) on a triangle mesh."""
    c = vertices[triangles]
    fn = np.cross(c[:, 1] - c[:, 0], c[:, 2] - c[:, 0])
    area = np.linalg.norm(fn, axis=1)
    tri = rng.choice(len(area), n, p=area / area.sum())
    r1, r2 = np.sqrt(rng.random(n)), rng.random(n)
    w = np.stack([1 - r1, r1 * (1 - r2), r1 * r2], 1)
    pts = (w[:, :, None] * c[tri]).sum(1)
    return pts, fn[tri] / area[tri, None].clip(1e-12)


def chamfer(p: np.ndarray, pn: np.ndarray, q: np.ndarray, qn: np.ndarray, one_sided: bool = False) -> dict:
    """Chamfer-L1 (mean of the two mean nearest distances) and normal consistency (mean |n_p · n_q|
    of nearest pairs). ``one_sided``: only p -> q (for a partial scan p)."""
    from scipy.spatial import cKDTree

    d_pq, i_pq = cKDTree(q).query(p)
    nc_pq = np.abs((pn * qn[i_pq]).sum(1))
    if one_sided:
        return {"chamfer_l1": float(d_pq.mean()), "normal_consistency": float(nc_pq.mean())}
    d_qp, i_qp = cKDTree(p).query(q)
    nc_qp = np.abs((qn * pn[i_qp]).sum(1))
    return {"chamfer_l1": float((d_pq.mean() + d_qp.mean()) / 2),
            "normal_consistency": float((nc_pq.mean() + nc_qp.mean()) / 2)}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def ssim(a: np.ndarray, b: np.ndarray, sigma: float = 1.5) -> float:
    """Mean SSIM of two (H, W, 3) images in [0, 1] (Gaussian window, Wang et al. 2004 constants)."""
    from scipy.ndimage import gaussian_filter

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    out = []
    for k in range(a.shape[-1]):
        x, y = a[..., k], b[..., k]
        mx, my = gaussian_filter(x, sigma), gaussian_filter(y, sigma)
        sxx = gaussian_filter(x * x, sigma) - mx * mx
        syy = gaussian_filter(y * y, sigma) - my * my
        sxy = gaussian_filter(x * y, sigma) - mx * my
        out.append(((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2)))
    return float(np.mean(out))


# ------------------------------------------------------------------ real scans
def load_scan(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) and triangles (F, 3) of a Wavefront OBJ (polygons fanned into triangles)."""
    path = Path(path)
    if not path.is_file():
        raise ImplicitError(f"scan {str(path)!r} does not exist: expected a Wavefront .obj mesh")
    verts, faces = [], []
    try:
        with open(path, "r", encoding="utf-8", errors="strict") as fh:
            for line in fh:
                if line.startswith("v "):
                    verts.append([float(x) for x in line.split()[1:4]])
                elif line.startswith("f "):
                    idx = [int(tok.split("/")[0]) for tok in line.split()[1:]]
                    faces.extend([idx[0], idx[i], idx[i + 1]] for i in range(1, len(idx) - 1))
    except (UnicodeDecodeError, ValueError) as e:
        raise ImplicitError(f"scan {str(path)!r} is not a Wavefront .obj mesh ({type(e).__name__}: {e})") from None
    if len(verts) < 3 or not faces:
        raise ImplicitError(f"scan {str(path)!r} holds {len(verts)} vertices and {len(faces)} faces: "
                            "expected a Wavefront .obj triangle mesh (v and f lines)")
    v = np.asarray(verts, np.float64)
    f = np.asarray(faces, np.int64)
    f = np.where(f < 0, f + len(v), f - 1)
    if f.min() < 0 or f.max() >= len(v):
        raise ImplicitError(f"scan {str(path)!r} has face indices outside its {len(v)} vertices")
    return v, f


def scan_sdf_samples(vertices: np.ndarray, triangles: np.ndarray, n: int, rng: np.random.Generator,
                     sigma: float = 0.02) -> dict:
    """Surface and near-surface samples of an open scan with signed distances. The sign is that of
    (x - closest point) · (closest triangle's normal): a winding/inside test is meaningless on an
    open mask. Normals must point out of the face (towards the viewer)."""
    from scipy.spatial import cKDTree

    from ..synth.sdf import closest_point_on_triangles

    surf, sn = sample_surface(vertices, triangles, n, rng)
    near = surf + rng.standard_normal(surf.shape) * sigma
    c = vertices[triangles]
    cent = c.mean(1)
    _, cand = cKDTree(cent).query(near, k=min(8, len(cent)))
    cand = cand.reshape(len(near), -1)
    cc = c[cand]
    cp, _ = closest_point_on_triangles(np.broadcast_to(near[:, None], cand.shape + (3,)), cc[..., 0, :],
                                       cc[..., 1, :], cc[..., 2, :])
    d2 = ((cp - near[:, None]) ** 2).sum(-1)
    j = d2.argmin(1)
    r = np.arange(len(near))
    tri = cand[r, j]
    fn = np.cross(c[:, 1] - c[:, 0], c[:, 2] - c[:, 0])
    fn /= np.linalg.norm(fn, axis=1, keepdims=True).clip(1e-12)
    sgn = np.sign(((near - cp[r, j]) * fn[tri]).sum(1))
    sd = np.sqrt(d2[r, j]) * np.where(sgn == 0, 1, sgn)
    return {"surface": surf, "surface_normals": sn, "near": near, "near_sdf": sd}
