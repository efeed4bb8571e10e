"""AU codebook per expression, AU regions on 68 landmarks, and AU heatmaps.

Following "Guided Interpretable Facial Expression Recognition via Spatial Action Unit
Cues" (Belharbi et al., FG 2024): an expression is described by the action units the
codebook lists for it; each AU's region is a set of filled ellipses anchored at 68-point
landmarks; an AU map is box-blurred (3x3); the maps of an expression's AUs are combined
by a pixelwise max and min-max normalised. Neutral has no AUs, so its map is all zero and
it is flagged as having none (the paper skips its alignment loss).

The ellipse positions and sizes below are ours (the paper gives a few examples: AU1 at
the brows, AU6 below the eyes, AU12/15 at the mouth corners, AU25 at the lips, AU26/27
over the mouth box). Each ellipse is blurred on its own and an AU's ellipses are merged
by max, which equals blurring their union except within a pixel of where two ellipses of
one AU overlap; this lets every ellipse be drawn in a small window, vectorised over the
batch, instead of full-image maps per AU. Sizes are fractions of the face's width and height (the extent of
the 68 points in the face's own upright frame, so they follow face size and roll).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import EXPRESSIONS

#: Expression -> AUs, as the interpretable-FER paper's table (its figure of the codebook).
#:
#: * The official code's disgust list uses AU5 where the paper's table has AU10; we use
#:   the paper's (AU9 nose wrinkler + AU10 upper lip raiser is the classic disgust pair).
#: * Contempt is not in the paper (it uses 7 classes). We use the FACS prototype: AU12 and
#:   AU14 on one side only (``R`` = the subject's right, the image-left side).
AU_CODEBOOK: dict[str, tuple[str, ...]] = {
    "neutral": (),
    "happy": ("AU06", "AU12", "AU25"),
    "sad": ("AU01", "AU04", "AU06", "AU15", "AU17"),
    "surprise": ("AU01", "AU02", "AU05", "AU26", "AU27"),
    "fear": ("AU01", "AU02", "AU04", "AU05", "AU20", "AU25", "AU26", "AU27"),
    "disgust": ("AU09", "AU10", "AU16", "AU17", "AU25", "AU26"),
    "anger": ("AU04", "AU05", "AU07", "AU10", "AU17", "AU23", "AU24", "AU25", "AU26"),
    "contempt": ("AU12R", "AU14R"),
}
assert set(AU_CODEBOOK) == set(EXPRESSIONS)


@dataclass(frozen=True)
class Ellipse:
    """One filled ellipse of an AU region, in the face's upright frame.

    Centre = mean of the ``anchors`` (68-point indices) + ``offset`` (fractions of face
    width, height; +y is down). Semi-axes = ``axes`` * (face width, height) + ``box`` *
    the half-extent of the anchors (so a mouth-box ellipse grows with an open mouth).
    ``side``: "R" (subject's right = image left), "L", or "C" (midline).
    """

    anchors: tuple[int, ...]
    axes: tuple[float, float]
    offset: tuple[float, float] = (0.0, 0.0)
    box: tuple[float, float] = (0.0, 0.0)
    side: str = "C"


def _pair(r_anchor, l_anchor, axes, dx=0.0, dy=0.0):
    """A left/right pair; ``dx`` is outwards (away from the midline) on both sides."""
    return (Ellipse(tuple(r_anchor), axes, (-dx, dy), side="R"),
            Ellipse(tuple(l_anchor), axes, (dx, dy), side="L"))


_MOUTH = tuple(range(48, 60))
#: AU -> ellipses (68-point, 0-based indices).
AU_REGIONS: dict[str, tuple[Ellipse, ...]] = {
    "AU01": _pair((20, 21), (22, 23), (0.07, 0.06)),                     # inner brow raiser
    "AU02": _pair((17, 18), (25, 26), (0.07, 0.06)),                     # outer brow raiser
    "AU04": (Ellipse((21, 22), (0.07, 0.06), (0.0, 0.02)),),             # brow lowerer (glabella)
    "AU05": _pair((37, 38), (43, 44), (0.07, 0.035)),                    # upper lid raiser
    "AU06": _pair((40, 41), (46, 47), (0.09, 0.07), 0.01, 0.13),         # cheek raiser
    "AU07": _pair(range(36, 42), range(42, 48), (0.08, 0.04)),           # lid tightener
    "AU09": (Ellipse((27, 28, 29), (0.06, 0.08)),),                      # nose wrinkler
    "AU10": _pair((50,), (52,), (0.05, 0.04), 0.0, -0.03),               # upper lip raiser
    "AU11": _pair((31, 48), (35, 54), (0.04, 0.05)),                     # nasolabial deepener
    "AU12": _pair((48,), (54,), (0.07, 0.05)),                           # lip corner puller
    "AU14": _pair((48,), (54,), (0.05, 0.05), 0.03),                     # dimpler
    "AU15": _pair((48,), (54,), (0.06, 0.05), 0.0, 0.04),                # lip corner depressor
    "AU16": (Ellipse((56, 57, 58), (0.08, 0.04), (0.0, 0.02)),),         # lower lip depressor
    "AU17": (Ellipse((7, 8, 9), (0.10, 0.05), (0.0, -0.05)),),           # chin raiser
    "AU20": _pair((48,), (54,), (0.06, 0.05), 0.05),                     # lip stretcher
    "AU23": (Ellipse((50, 51, 52), (0.07, 0.03)), Ellipse((56, 57, 58), (0.07, 0.03))),  # lip tightener
    "AU24": (Ellipse((62, 66), (0.03, 0.02), box=(1.0, 1.0)),            # lip pressor (lip line)
             Ellipse((61, 63, 65, 67), (0.10, 0.03))),
    "AU25": (Ellipse((51,), (0.07, 0.04)), Ellipse((57,), (0.07, 0.04))),  # lips part
    "AU26": (Ellipse(_MOUTH, (0.02, 0.03), box=(1.0, 1.0)),),            # jaw drop: the mouth box
    "AU27": (Ellipse(_MOUTH, (0.03, 0.05), (0.0, 0.03), box=(1.1, 1.2)),),  # mouth stretch
    "AU28": (Ellipse((61, 62, 63, 65, 66, 67), (0.03, 0.03), box=(1.0, 1.0)),),  # lip suck
    "AU43": _pair(range(36, 42), range(42, 48), (0.07, 0.035)),          # eyes closed
}

# Flattened table so rasterising can loop over ellipse kinds, vectorised over the batch.
_KINDS: list[tuple[str, Ellipse]] = [(au, e) for au, es in AU_REGIONS.items() for e in es]


def _norm_au(token: str) -> tuple[str, str]:
    """'AU6', 'AU06', '6', 'AU12R' -> ('AU06', side) with side in {'', 'R', 'L'}."""
    t = token.strip().upper()
    side = ""
    if t[-1:] in ("R", "L"):
        t, side = t[:-1], t[-1]
    num = t[2:] if t.startswith("AU") else t
    if not num.isdigit():
        raise ValueError(f"not an AU name: {token!r} (expected e.g. 'AU12', or 'AU12R' for one side)")
    name = f"AU{int(num):02d}"
    if name not in AU_REGIONS:
        raise ValueError(f"no region for {name}: known AUs are {', '.join(AU_REGIONS)}")
    return name, side


def expression_aus(label) -> tuple[str, ...]:
    """An expression name or canonical id (0 neutral ... 7 contempt) -> its codebook AUs."""
    if isinstance(label, (int, np.integer)):
        if not 0 <= int(label) < len(EXPRESSIONS):
            raise ValueError(f"expression id {label} out of range 0..{len(EXPRESSIONS) - 1} ({', '.join(EXPRESSIONS)})")
        label = EXPRESSIONS[int(label)]
    key = str(label).lower()
    aliases = {"happiness": "happy", "sadness": "sad", "angry": "anger", "disgusted": "disgust",
               "fearful": "fear", "surprised": "surprise"}
    key = aliases.get(key, key)
    if key not in AU_CODEBOOK:
        raise ValueError(f"unknown expression {label!r}: expected one of {', '.join(EXPRESSIONS)}")
    return AU_CODEBOOK[key]


def codebook_aus(spec) -> tuple[str, ...]:
    """One face's AU spec -> normalised AU names (with R/L suffix where one-sided).

    ``spec``: an expression name or id, one AU name, or a tuple/list of AU names.
    """
    if isinstance(spec, (int, np.integer)):
        return expression_aus(spec)
    if isinstance(spec, str):
        try:
            return expression_aus(spec)
        except ValueError:
            spec = (spec,)
    out = []
    for tok in spec:
        name, side = _norm_au(str(tok))
        out.append(name + side)
    return tuple(out)


def _per_sample(spec, n: int) -> list[tuple[str, ...]]:
    """Broadcast a spec over n faces. A list/array of length n is per face; a tuple, a
    string or an int is one spec for all; a list of AU names of another length is one set."""
    if isinstance(spec, (str, int, np.integer, tuple, frozenset, set)):
        return [codebook_aus(tuple(spec) if isinstance(spec, (set, frozenset)) else spec)] * n
    seq = list(np.asarray(spec).tolist()) if isinstance(spec, np.ndarray) else list(spec)
    if len(seq) == n:
        return [codebook_aus(s) for s in seq]
    return [codebook_aus(tuple(seq))] * n


def _face_frame(lm: np.ndarray):
    """Per face: roll angle (outer eye corners), width and height in the upright frame."""
    e = lm[:, 45] - lm[:, 36]
    ang = np.arctan2(e[:, 1], e[:, 0])
    c, s = np.cos(ang), np.sin(ang)
    # Upright coordinates u = R(-ang) p, with R(-ang) = [[c, s], [-s, c]].
    u = c[:, None] * lm[..., 0] + s[:, None] * lm[..., 1]
    v = -s[:, None] * lm[..., 0] + c[:, None] * lm[..., 1]
    w = u.max(1) - u.min(1)
    h = v.max(1) - v.min(1)
    return ang, c, s, w, h


def au_heatmap(landmarks68: np.ndarray, aus, size=224, *, image_size=None, ellipse_scale: float = 1.0,
               blur: int = 3, return_valid: bool = False):
    """AU heatmaps for faces with 68 landmarks.

    Args:
        landmarks68: (..., 68, 2) x, y in pixels of an image of ``image_size`` (default: the
            output ``size``), so the same landmarks give the same map at any resolution.
        aus: an expression name or canonical id, an AU name, a tuple of AU names, or a
            list/array with one such entry per face (see :func:`codebook_aus`).
        size: output size, int or (H, W).
        ellipse_scale: multiplies every semi-axis.
        blur: box-filter width (odd; 1 or 0 for none), applied to each AU map.
        return_valid: also return a (...) bool array, False where a face has no AU (neutral).

    Returns:
        (..., H, W) float32 in [0, 1] (all zero where a face has no AU).
    """
    import torch

    lm = np.asarray(landmarks68, np.float64)
    if lm.shape[-2:] != (68, 2):
        raise ValueError(f"au_heatmap: expected landmarks of shape (..., 68, 2), got {lm.shape}")
    batch = lm.shape[:-2]
    lm = lm.reshape(-1, 68, 2)
    n = lm.shape[0]
    oh, ow = (size, size) if np.isscalar(size) else tuple(size)
    oh, ow = int(oh), int(ow)
    ih, iw = (oh, ow) if image_size is None else ((image_size, image_size) if np.isscalar(image_size)
                                                   else tuple(image_size))
    # Pixel centres on integers in both grids: scale about the image edge, not pixel 0.
    lm = (lm + 0.5) * np.array([ow / iw, oh / ih]) - 0.5
    blur = int(blur)
    if blur > 1 and blur % 2 == 0:
        raise ValueError(f"blur must be odd (a centred box), got {blur}")
    rb = blur // 2 if blur > 1 else 0

    specs = _per_sample(aus, n)
    ang, cos, sin, fw, fh = _face_frame(lm)
    out = torch.zeros(n * oh * ow, dtype=torch.float32)
    for au, el in _KINDS:
        # "AU12" draws both sides; "AU12R" only the subject's right (and any midline part).
        active = np.array([any(t[:4] == au and (len(t) == 4 or el.side in ("C", t[4:])) for t in sp)
                           for sp in specs])
        if not active.any():
            continue
        idx = np.nonzero(active)[0]
        pts = lm[idx][:, list(el.anchors)]                                      # (m, k, 2)
        c, s = cos[idx], sin[idx]
        pu = c[:, None] * pts[..., 0] + s[:, None] * pts[..., 1]               # upright frame
        pv = -s[:, None] * pts[..., 0] + c[:, None] * pts[..., 1]
        half = np.stack([(pu.max(1) - pu.min(1)) / 2, (pv.max(1) - pv.min(1)) / 2], 1)
        wh = np.stack([fw[idx], fh[idx]], 1)
        ax = ellipse_scale * (np.asarray(el.axes) * wh + np.asarray(el.box) * half)
        ax = np.maximum(ax, 0.5)                                               # at least a pixel
        off = np.asarray(el.offset) * wh                                       # upright frame
        cu, cv = pu.mean(1) + off[:, 0], pv.mean(1) + off[:, 1]
        cx, cy = c * cu - s * cv, s * cu + c * cv                              # back to image
        r = int(np.ceil(ax.max())) + 1
        grid = np.arange(-r - rb, r + rb + 1)
        x0, y0 = np.rint(cx).astype(np.int64), np.rint(cy).astype(np.int64)
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
        dx = t(x0[:, None] + grid[None] - cx[:, None])[:, None, :]            # (m, 1, L)
        dy = t(y0[:, None] + grid[None] - cy[:, None])[:, :, None]            # (m, L, 1)
        tc, ts = t(c)[:, None, None], t(s)[:, None, None]
        u = tc * dx + ts * dy
        v = -ts * dx + tc * dy
        inside = ((u / t(ax[:, 0])[:, None, None]) ** 2 + (v / t(ax[:, 1])[:, None, None]) ** 2 <= 1).float()
        if rb:
            # Box filter as a sum of shifted slices (the grid carries rb extra pixels a side).
            k = 2 * rb + 1
            cs = torch.nn.functional.pad(inside.cumsum(1), (0, 0, 1, 0))
            inside = cs[:, k:] - cs[:, :-k]
            cs = torch.nn.functional.pad(inside.cumsum(2), (1, 0))
            inside = (cs[:, :, k:] - cs[:, :, :-k]) / (k * k)
        core = torch.from_numpy(grid[rb:len(grid) - rb] if rb else grid)
        xs = torch.from_numpy(x0)[:, None, None] + core[None, None, :]
        ys = torch.from_numpy(y0)[:, None, None] + core[None, :, None]
        ok = (xs >= 0) & (xs < ow) & (ys >= 0) & (ys < oh)
        flat = torch.from_numpy(idx)[:, None, None] * (oh * ow) + ys.clamp(0, oh - 1) * ow + xs.clamp(0, ow - 1)
        # Maps are >= 0, so writing 0 where a pixel falls outside is a no-op under max.
        vals = torch.where(ok, inside, torch.zeros(()))
        out.scatter_reduce_(0, flat.reshape(-1), vals.reshape(-1), reduce="amax")
    maps = out.view(n, oh * ow)
    lo = maps.min(1, keepdim=True).values
    hi = maps.max(1, keepdim=True).values
    # In place: a batch of 256 maps at 224 px is 51 MB. A constant map becomes all zero.
    maps.sub_(lo).div_((hi - lo).clamp_min(1e-12))
    result = maps.view(batch + (oh, ow)).numpy()
    if return_valid:
        valid = np.array([len(sp) > 0 for sp in specs]).reshape(batch)
        return result, valid
    return result
