"""Backgrounds (plain, noise, clutter) as float images in [0, 1], batched in torch."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

KINDS = ("plain", "noise", "clutter")


def backgrounds(kinds: np.ndarray, height: int, width: int, rng: np.random.Generator) -> torch.Tensor:
    """(n, H, W, 3) backgrounds; ``kinds`` (n,) holds indices into :data:`KINDS`.

    Drawn at a quarter of the pixels and upsampled: a slightly defocused background is
    realistic and costs a fraction of the face.
    """
    fast = _numba_backgrounds(np.asarray(kinds), height, width, rng)
    if fast is not None:
        return fast
    small = _background_small(np.asarray(kinds), max(8, height // 2), max(8, width // 2), rng)
    up = F.interpolate(small.permute(0, 3, 1, 2), size=(height, width), mode="bilinear", align_corners=False)
    return up.permute(0, 2, 3, 1).contiguous()


def _numba_backgrounds(kinds: np.ndarray, height: int, width: int, rng: np.random.Generator):
    """The same backgrounds from the same random draws, evaluated by a compiled kernel
    (:mod:`facelab.synth.raster_numba`, one image per thread); None without numba."""
    from .render import _load_numba
    mod = _load_numba()
    if mod is None:
        return None
    n = len(kinds)
    h, w = max(8, height // 2), max(8, width // 2)
    # draw exactly what _background_small / _clutter draw, in the same order
    c0 = rng.uniform(0.1, 0.9, (n, 3)).astype(np.float32)
    c1 = np.clip(c0 + rng.normal(0, 0.12, (n, 3)).astype(np.float32), 0, 1)
    ang = rng.uniform(0, 2 * np.pi, n).astype(np.float32)
    noisy = int((kinds == 1).sum())
    grids, amps = [], (0.25, 0.12, 0.06)
    if noisy:
        for cells in (4, 12, min(40, h // 2)):
            g = rng.standard_normal((noisy, 3, cells, cells)).astype(np.float32)
            grids.append(g[:, :1] + np.float32(0.35) * g)
    m, shapes = int((kinds == 2).sum()), 14
    sh, col = np.zeros((0, shapes, 5)), np.zeros((0, shapes, 3), np.float32)
    if m:
        cx, cy = rng.uniform(0, 1, (m, shapes)), rng.uniform(0, 1, (m, shapes))
        rx, ry = rng.uniform(0.03, 0.3, (m, shapes)), rng.uniform(0.03, 0.3, (m, shapes))
        kind = rng.integers(0, 3, (m, shapes))
        col = rng.uniform(0.05, 0.95, (m, shapes, 3)).astype(np.float32)
        sh = np.stack([cx, cy, rx, ry, kind], -1).astype(np.float32).astype(np.float64)
    out = mod.backgrounds(kinds, c0, c1, ang, grids, amps[:len(grids)], sh, col, (h, w), (height, width))
    return torch.from_numpy(out)


def _background_small(kinds: np.ndarray, height: int, width: int, rng: np.random.Generator) -> torch.Tensor:
    n = len(kinds)
    yy = torch.linspace(0, 1, height)[:, None]
    xx = torch.linspace(0, 1, width)[None, :]
    # every kind starts from a colour with a soft linear gradient (studio backdrop)
    c0 = torch.as_tensor(rng.uniform(0.1, 0.9, (n, 3)), dtype=torch.float32)
    c1 = (c0 + torch.as_tensor(rng.normal(0, 0.12, (n, 3)), dtype=torch.float32)).clamp(0, 1)
    ang = torch.as_tensor(rng.uniform(0, 2 * np.pi, n), dtype=torch.float32)
    t = (torch.cos(ang)[:, None, None] * xx + torch.sin(ang)[:, None, None] * yy)
    t = (t - t.amin((1, 2), keepdim=True)) / (t.amax((1, 2), keepdim=True) - t.amin((1, 2), keepdim=True) + 1e-6)
    img = c0[:, None, None] * (1 - t[..., None]) + c1[:, None, None] * t[..., None]
    kinds = np.asarray(kinds)
    noisy = np.nonzero(kinds == 1)[0]
    if len(noisy):
        # smooth multi-scale colour noise (upsampled random grids)
        acc = torch.zeros(len(noisy), 3, height, width)
        for cells, amp in ((4, 0.25), (12, 0.12), (min(40, height // 2), 0.06)):
            g = torch.as_tensor(rng.standard_normal((len(noisy), 3, cells, cells)), dtype=torch.float32)
            g = g[:, :1] + 0.35 * g  # mostly brightness texture, a little colour (walls, foliage)
            acc += amp * F.interpolate(g, size=(height, width), mode="bilinear", align_corners=False)
        img[noisy] = (img[noisy] + acc.permute(0, 2, 3, 1)).clamp(0, 1)
    clut = np.nonzero(kinds == 2)[0]
    if len(clut):
        img[clut] = _clutter(img[clut], rng)
    return img


def _clutter(img: torch.Tensor, rng: np.random.Generator, shapes: int = 14) -> torch.Tensor:
    """Paint random rectangles, ellipses and bars over (m, H, W, 3) images (vectorised over shapes)."""
    m, h, w, _ = img.shape
    yy = torch.linspace(0, 1, h)[None, None, :, None]
    xx = torch.linspace(0, 1, w)[None, None, None, :]
    cx = torch.as_tensor(rng.uniform(0, 1, (m, shapes, 1, 1)), dtype=torch.float32)
    cy = torch.as_tensor(rng.uniform(0, 1, (m, shapes, 1, 1)), dtype=torch.float32)
    rx = torch.as_tensor(rng.uniform(0.03, 0.3, (m, shapes, 1, 1)), dtype=torch.float32)
    ry = torch.as_tensor(rng.uniform(0.03, 0.3, (m, shapes, 1, 1)), dtype=torch.float32)
    kind = torch.as_tensor(rng.integers(0, 3, (m, shapes, 1, 1)))
    dx, dy = (xx - cx) / rx, (yy - cy) / ry
    ell = (dx ** 2 + dy ** 2) < 1
    rect = (dx.abs() < 1) & (dy.abs() < 1)
    bar = (dx.abs() < 0.12) & (dy.abs() < 3)
    mask = torch.where(kind == 0, ell, torch.where(kind == 1, rect, bar))  # (m, S, H, W)
    col = torch.as_tensor(rng.uniform(0.05, 0.95, (m, shapes, 3)), dtype=torch.float32)
    # later shapes cover earlier ones: find the last shape covering each pixel
    idx = torch.arange(1, shapes + 1)[None, :, None, None]
    top = (mask * idx).amax(1)  # (m, H, W), 0 = none
    colp = torch.cat([torch.zeros(m, 1, 3), col], 1)
    painted = torch.gather(colp, 1, top.reshape(m, -1, 1).expand(-1, -1, 3)).reshape(m, h, w, 3)
    return torch.where((top > 0)[..., None], painted, img)
