"""The rest of the head behind the face mesh: hair, ears and neck, painted into the background.

The mesh is a face mask (forehead to chin, cheek to cheek). Real face crops such as FER2013's
(48 px, the face filling the frame) show dark hair framing the forehead and the sides, ears
at eye level and the neck below the jaw; a mask floating on a background is a cue no real
face carries, and a model trained on masks learns it (issue 21: a CNN trained on the engine
read most real faces as one class). So before the mesh is rasterised, :func:`paint_head`
paints, in the face's own frame (from its projected landmarks, so pose and roll follow):

* the skull: an ellipse a little wider than the face and reaching above it, in the hair
  colour (skin colour, slightly darker, for the ~8% of identities without hair); three hair
  lengths (short: to the ears, medium: to the jaw, long: past the chin on both sides) picked
  from the identity's ``hairline`` draw, so no new random numbers are drawn;
* ears at eye-to-nose height just outside the cheeks (hidden by long hair);
* the neck below the jaw, in shadow (the jaw and chin shade it).

Shapes have soft edges (a smoothstep over ~1.5 supersampled pixels) and a vertical shading
gradient; everything stays behind the face, which the rasteriser draws on top.
"""
from __future__ import annotations

import numpy as np

#: Mesh vertices that frame the face: forehead top, chin, subject-right and -left cheek edge.
TOP, CHIN, CHEEK_R, CHEEK_L = 10, 152, 234, 454
HAIR_LENGTHS = ("short", "medium", "long")


def hair_length(ident: dict) -> np.ndarray:
    """(n,) index into :data:`HAIR_LENGTHS`, a deterministic function of the identity's
    ``hairline`` draw (uniform, so the three lengths are about equally common)."""
    h = np.asarray(ident["hairline"], np.float64)
    return (np.floor(h * 1e4) % 3).astype(np.int64)


def _smooth_inside(d: np.ndarray, soft: float) -> np.ndarray:
    """1 inside (d < 0), 0 outside, a smoothstep of width ``soft`` across d = 0."""
    t = np.clip(0.5 - d / soft, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def head_params(points: np.ndarray, ident: dict) -> np.ndarray:
    """(n, 17) float64 per-face parameters of :func:`paint_head`: centre (2), up (2), across (2)
    unit vectors, face width and height (2), hair length, bald flag, skin RGB, hair RGB."""
    p = np.asarray(points, np.float64)[..., :2]
    top, chin, cr, cl = p[:, TOP], p[:, CHIN], p[:, CHEEK_R], p[:, CHEEK_L]
    centre = (top + chin) / 2
    up = top - chin
    h = np.linalg.norm(up, axis=1).clip(min=1e-3)
    up = up / h[:, None]
    right = np.stack([-up[:, 1], up[:, 0]], 1)  # unit vector across the face
    w = np.abs(((cl - cr) * right).sum(1)).clip(min=1e-3)
    bald = (np.asarray(ident["has_hair"], np.float64) < 0.5).astype(np.float64)
    return np.concatenate([centre, up, right, w[:, None], h[:, None], hair_length(ident)[:, None].astype(np.float64),
                           bald[:, None], np.asarray(ident["skin_rgb"], np.float64),
                           np.asarray(ident["hair_rgb"], np.float64)], 1)


#: Soft edge width in pixels.
SOFT = 1.5
#: Lowest point (v units, chin at -1) of short, medium and long hair.
HAIR_LOWEST = (-0.15, -0.75, -1.9)


def paint_head(background: np.ndarray, points: np.ndarray, ident: dict, backend: str = "auto") -> np.ndarray:
    """``background`` (n, H, W, 3) float in [0, 1] with hair, ears and neck painted in, for
    faces whose projected mesh vertices are ``points`` (n, V, >= 2) in the same pixel grid.
    Returns a new float32 array. ``backend``: "numba" (a compiled per-pixel kernel,
    :mod:`facelab.synth.head_numba`), "numpy", or "auto" (numba when it imports); both give
    the same image up to float rounding."""
    bg = np.array(background, np.float32, copy=True)
    prm = head_params(points, ident)
    if backend != "numpy":
        from facelab.config import import_numba_module
        mod = import_numba_module("facelab.synth.head_numba")
        if mod is not None:
            mod.paint_heads(bg, prm, SOFT, np.asarray(HAIR_LOWEST, np.float64))
            return bg
        if backend == "numba":
            raise RuntimeError("paint_head(backend='numba'): numba is not available")
    _paint_numpy(bg, prm)
    return bg


def _paint_numpy(bg: np.ndarray, prm: np.ndarray) -> None:
    """The reference implementation (vectorised over pixels, one face at a time)."""
    n, H, W, _ = bg.shape
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    for i in range(n):
        cx, cy, upx, upy, rx, ry, w, h, length, bald = prm[i, :10]
        skin, hair = prm[i, 10:13], prm[i, 13:16]
        dx, dy = xs - cx, ys - cy
        u = (dx * rx + dy * ry) / (w / 2)   # -1..1 cheek to cheek
        v = (dx * upx + dy * upy) / (h / 2)  # -1 chin .. 1 forehead top
        pu = 2 / w                           # one pixel in u units
        out = bg[i]
        # neck: a column below the jaw, narrowing slightly, in the jaw's shadow
        neck_d = np.maximum(np.abs(u) - (0.56 + 0.06 * np.clip(-v - 1, 0, 2)), v + 0.35)
        a = _smooth_inside(neck_d / pu, SOFT)[..., None]
        shade = np.clip(0.55 + 0.12 * np.clip(-v - 1.0, 0, 2), 0, 1)[..., None]
        out[:] = out * (1 - a) + a * skin * shade
        # skull / hair: an ellipse wider than the face, its top ~h/4 above the hairline
        ell = np.sqrt((u / 1.22) ** 2 + ((v - 0.3) / 1.2) ** 2) - 1
        lowest = HAIR_LOWEST[int(length)]
        if bald:
            hair_d = np.maximum(ell, -0.1 - v)
        elif length < 2:
            hair_d = np.maximum(ell, lowest - v)
        else:  # long: two strands down the sides past the chin
            hair_d = np.minimum(ell, np.maximum(np.maximum(np.abs(u) - 1.2, v - 0.3), np.maximum(lowest - v, 0.55 - np.abs(u))))
        a = _smooth_inside(hair_d / pu, SOFT)[..., None]
        col = skin * 0.85 if bald else hair
        grad = np.clip(0.8 + 0.2 * v, 0.55, 1.1)[..., None]  # lit from above, darker low down
        out[:] = out * (1 - a) + a * np.clip(col * grad, 0, 1)
        # ears, unless long hair covers them
        if length < 2 or bald:
            for side in (-1.0, 1.0):
                ear_d = np.sqrt(((u - side * 1.02) / 0.13) ** 2 + ((v + 0.05) / 0.27) ** 2) - 1
                a = _smooth_inside(ear_d / (pu / 0.13), SOFT)[..., None]
                out[:] = out * (1 - a) + a * skin * 0.78
