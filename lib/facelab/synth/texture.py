"""Face textures painted in UV space: shared feature masks (computed once per resolution)
and per-identity colours composited over them in a batch.

The atlas is square: atlas rows [0, 0.8) hold the face's frontal-projection UVs (so a mask
drawn around a vertex's UV lands on that vertex), the bottom strip holds the two eyeballs
(left squares) and the mouth interior (right half): see ``geometry.topology``.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from matplotlib.path import Path as _MplPath
from scipy.ndimage import gaussian_filter

from . import geometry as G

#: Names of the shared mask layers, in compositing order.
LAYERS = ("socket", "blush", "lips", "brows", "lashline", "nostrils", "sclera", "iris", "pupil",
          "teeth", "cavity", "tongue", "detail", "wrinkles")


def _atlas_uv(face_uv: np.ndarray) -> np.ndarray:
    return np.stack([face_uv[..., 0], face_uv[..., 1] * G.ATLAS_FACE_FRACTION], -1)


def _poly_mask(uv: np.ndarray, res: int) -> np.ndarray:
    c = (np.arange(res) + 0.5) / res
    uu, vv = np.meshgrid(c, c)
    inside = _MplPath(uv).contains_points(np.stack([uu.ravel(), vv.ravel()], -1))
    return inside.reshape(res, res).astype(np.float32)


def _polyline_dist(uv: np.ndarray, res: int, closed: bool = True) -> np.ndarray:
    """Distance (in atlas units) from every texel centre to a polyline."""
    c = (np.arange(res) + 0.5) / res
    uu, vv = np.meshgrid(c, c)
    p = np.stack([uu, vv], -1)[..., None, :]  # (res, res, 1, 2)
    a = uv
    b = np.roll(uv, -1, 0) if closed else uv[1:]
    a = a if closed else uv[:-1]
    ab = b - a
    t = np.clip(((p - a) * ab).sum(-1) / (ab * ab).sum(-1).clip(1e-12), 0, 1)
    d = np.linalg.norm(p - (a + t[..., None] * ab), axis=-1)
    return d.min(-1)


@lru_cache(maxsize=4)
def layer_masks(res: int) -> torch.Tensor:
    """(len(LAYERS), res, res) float masks in [0, 1] in atlas space."""
    topo = G.topology()
    fuv = _atlas_uv(topo.face_uv)
    sm = res / 256.0  # blur radii are given for a 256 texel atlas
    m = {}
    c = (np.arange(res) + 0.5) / res
    uu, vv = np.meshgrid(c, c)

    def gauss(center, su, sv):
        return np.exp(-((uu - center[0]) ** 2 / (2 * su ** 2) + (vv - center[1]) ** 2 / (2 * sv ** 2)))

    eye_r, eye_l = fuv[list(G.EYE_R)].mean(0), fuv[list(G.EYE_L)].mean(0)
    m["socket"] = (gauss(eye_r + [0, -0.01], 0.09, 0.05) + gauss(eye_l + [0, -0.01], 0.09, 0.05)).clip(0, 1)
    mouth = fuv[list(G.LIPS_OUTER)].mean(0)
    cheek_r = np.array([eye_r[0] - 0.02, (eye_r[1] + mouth[1]) / 2 + 0.02])
    cheek_l = np.array([eye_l[0] + 0.02, (eye_l[1] + mouth[1]) / 2 + 0.02])
    m["blush"] = gauss(cheek_r, 0.07, 0.05) + gauss(cheek_l, 0.07, 0.05)
    m["lips"] = gaussian_filter(_poly_mask(fuv[list(G.LIPS_OUTER)], res), 1.0 * sm)
    brows = np.maximum(_poly_mask(fuv[list(G.BROW_R)], res), _poly_mask(fuv[list(G.BROW_L)], res))
    # hair-like strokes: brows are denser at their lower edge and streaked, not a flat patch
    rng = np.random.default_rng(1234)
    streak = gaussian_filter(rng.random((res, res)), (0.6 * sm, 2.0 * sm))
    streak = (streak - streak.min()) / (np.ptp(streak) + 1e-9)
    m["brows"] = gaussian_filter(brows, 1.2 * sm) * (0.65 + 0.7 * streak).clip(0, 1)
    lash = np.minimum(_polyline_dist(fuv[list(G.EYE_R)], res), _polyline_dist(fuv[list(G.EYE_L)], res))
    # the upper lid carries a darker, thicker lash line than the lower one
    upper = (vv < np.interp(uu, [0, 1], [eye_r[1], eye_l[1]])).astype(np.float32)
    m["lashline"] = np.exp(-(lash / (0.006 + 0.004 * upper)) ** 2) * (0.55 + 0.45 * upper)
    nose = fuv[[98, 327, 2, 4]]
    nos_r = 0.6 * nose[0] + 0.4 * nose[2]
    nos_l = 0.6 * nose[1] + 0.4 * nose[2]
    m["nostrils"] = (gauss(nos_r + [0.0, -0.006], 0.016, 0.008) + gauss(nos_l + [0.0, -0.006], 0.016, 0.008)).clip(0, 1)

    # eyeballs: atlas squares u in [0, .25) and [.25, .5), v in [0.8, 1): disc centred at
    # (k*0.25+0.125, 0.9) with radii (0.12, 0.096) (see geometry.topology)
    h = G.ATLAS_FACE_FRACTION
    sclera = np.zeros((res, res))
    iris = np.zeros((res, res))
    pupil = np.zeros((res, res))
    for k in range(2):
        du = (uu - (k * 0.25 + 0.125)) / 0.12
        dv = (vv - (h + 0.1)) / 0.096
        r = np.sqrt(du ** 2 + dv ** 2)
        sclera = np.maximum(sclera, (r < 1.05).astype(float))
        # the disc spans 1.12 x 0.8 eye widths; an iris is ~0.42 eye widths across
        ri = np.sqrt((du * 0.56 / 0.4) ** 2 + dv ** 2) / (0.21 / 0.4)
        iris = np.maximum(iris, np.clip((1.0 - ri) / 0.08, 0, 1))
        pupil = np.maximum(pupil, np.clip((0.42 - ri) / 0.08, 0, 1))
    m["sclera"] = sclera
    m["iris"] = iris
    m["pupil"] = pupil
    # mouth interior: u in [0.52, 0.98], v rows at 0.82 + [0, .25, .75, 1] * 0.16
    mv = (vv - (h + 0.02)) / (1 - h - 0.04)
    mu = (uu - 0.52) / 0.46
    inside_mouth = (mu >= -0.02) & (mu <= 1.02) & (mv >= -0.02) & (mv <= 1.02)
    gaps = 0.5 + 0.5 * np.cos(np.clip(mu, 0, 1) * 2 * np.pi * 14) ** 8  # teeth separations
    teeth = (((mv < 0.25) | (mv > 0.75)) & inside_mouth).astype(float)
    teeth *= 1 - 0.35 * (1 - gaps) * (np.abs(mu - 0.5) < 0.36)
    teeth *= np.clip(1.0 - np.abs(mu - 0.5) / 0.5, 0, 1) ** 0.3  # molars recede into shadow
    m["teeth"] = teeth
    m["cavity"] = (inside_mouth & (mv >= 0.25) & (mv <= 0.75)).astype(float)
    m["tongue"] = m["cavity"] * np.exp(-((mu - 0.5) / 0.22) ** 2 - ((mv - 0.75) / 0.12) ** 2)
    detail = gaussian_filter(rng.standard_normal((res, res)), 1.6 * sm)
    m["detail"] = detail / (detail.std() + 1e-9)
    # forehead lines and crow's feet, used by the age parameter
    fore = gauss([0.5, 0.16 * h], 0.18, 0.06) * (0.5 + 0.5 * np.cos(vv * 2 * np.pi * 26 / h)) ** 6
    crow = (gauss(fuv[33] - [0.05, 0], 0.02, 0.03) + gauss(fuv[263] + [0.05, 0], 0.02, 0.03)) * (
        0.5 + 0.5 * np.cos(vv * 2 * np.pi * 40 + uu * 20)) ** 6
    naso = np.exp(-(np.minimum(_polyline_dist(fuv[[98, 216, 61]], res, closed=False),
                               _polyline_dist(fuv[[327, 436, 291]], res, closed=False)) / 0.008) ** 2)
    m["wrinkles"] = np.clip(fore + crow + naso, 0, 1)
    m = {k: np.where(_face_or_atlas(k, vv), v, 0.0) for k, v in m.items()}
    return torch.tensor(np.stack([m[k] for k in LAYERS]), dtype=torch.float32)


def _face_or_atlas(layer: str, vv: np.ndarray) -> np.ndarray:
    """Face layers live above the atlas strip, eye/mouth layers below it."""
    strip = vv >= G.ATLAS_FACE_FRACTION
    return strip if layer in ("sclera", "iris", "pupil", "teeth", "cavity", "tongue") else ~strip


#: Hairline heights (face-UV v at the centre of the forehead) a face can pick from.
HAIRLINES = np.linspace(0.04, 0.22, 7)


@lru_cache(maxsize=4)
def _linear_basis(res: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The atlas as a linear function of per-face colours: ``tex = const + sum_k W_k c_k``.

    Layers are composited "over" in a fixed order; with fixed masks that composite is
    linear in the colours as long as each layer's underlay is known (skin under face
    features, sclera under the iris, iris under the pupil), which lets one matrix product
    texture a whole batch. Returns W (K, res*res) and const (res*res, 3).
    """
    M = {k: layer_masks(res)[i].numpy().astype(np.float64) for i, k in enumerate(LAYERS)}
    c = (np.arange(res) + 0.5) / res
    vv, uu = np.meshgrid(c / G.ATLAS_FACE_FRACTION, c, indexing="ij")
    face = (vv < 1.0).astype(float)
    rows = [face, M["detail"] * face, M["socket"], M["wrinkles"], M["blush"], 0.9 * M["lips"],
            M["brows"], 0.85 * M["lashline"], 0.95 * M["nostrils"]]
    for hl in HAIRLINES:
        line = hl + 0.55 * (uu - 0.5) ** 2
        h = 1 / (1 + np.exp(-(line - vv) / 0.012)) * face
        rows += [h, h * np.clip(M["detail"], -1, 1)]
    iris_vis = M["iris"] * (1 - M["pupil"])
    rows.append(iris_vis * (0.8 + 0.3 * np.clip(M["detail"], -1, 1)))
    W = np.stack(rows).reshape(len(rows), -1)
    # identity-independent colours of the strip: sclera (iris left black), pupil, mouth
    const = np.zeros((res, res, 3))
    def over(img, m, col):
        return img * (1 - m[..., None]) + m[..., None] * np.asarray(col)
    const = over(const, M["sclera"], [0.93, 0.91, 0.88])
    const = over(const, M["iris"], [0.0, 0.0, 0.0])
    const = over(const, M["pupil"], [0.03, 0.03, 0.03])
    const = over(const, M["cavity"], [0.22, 0.06, 0.06])
    const = over(const, 0.9 * M["tongue"], [0.62, 0.28, 0.3])
    const = over(const, M["teeth"], [0.92, 0.9, 0.84])
    return torch.tensor(W, dtype=torch.float32), torch.tensor(const.reshape(-1, 3), dtype=torch.float32)


@lru_cache(maxsize=4)
def linear_basis_np(res: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_linear_basis` as contiguous float32 numpy arrays (for the compiled renderer)."""
    W, const = _linear_basis(res)
    return np.ascontiguousarray(W.numpy()), np.ascontiguousarray(const.numpy())


def colour_coefficients(ident: dict) -> np.ndarray:
    """(n, K, 3) per-face colours for the rows of :func:`_linear_basis`."""
    skin = np.asarray(ident["skin_rgb"], np.float32)
    col = lambda k: np.asarray(ident[k], np.float32)  # noqa: E731
    agef = np.clip((col("age") - 20) / 60, 0, 1)[:, None]
    red = np.array([0.85, 0.35, 0.35], np.float32)
    rows = [skin, col("skin_detail")[:, None] * skin, -0.18 * (0.6 + agef) * skin, -0.25 * agef * skin,
            col("blush")[:, None] * (skin * red * 1.15 - skin), col("lip_rgb") - skin,
            col("brow_density")[:, None] * (col("brow_rgb") - skin), -0.75 * skin, -0.8 * skin]
    level = np.abs(col("hairline")[:, None] - HAIRLINES[None]).argmin(1)
    hair = col("hair_rgb")
    for j in range(len(HAIRLINES)):
        on = ((level == j) & (col("has_hair") > 0.5)).astype(np.float32)[:, None]
        rows += [on * (hair - skin), on * 0.15 * hair]
    rows.append(col("iris_rgb"))
    return np.stack(rows, 1)


def compose(ident: dict, res: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Per-face atlases (n, res, res, 3) float in [0, 1] from identity colour parameters."""
    W, const = _linear_basis(res)
    C = torch.as_tensor(colour_coefficients(ident), device=device)  # (n, K, 3)
    tex = torch.matmul(C.transpose(1, 2), W.to(device)).transpose(1, 2) + const.to(device)
    return tex.clamp(0, 1).reshape(len(C), res, res, 3)
