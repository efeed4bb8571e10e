"""The head painter of :mod:`facelab.synth.head` as a compiled per-pixel kernel (numba).

Same shapes, order and formulas as :func:`facelab.synth.head._paint_numpy`, one face per
thread (``prange``), each writing only its own image: the result does not depend on the
number of threads. Importing this module imports numba (see ``facelab.config.import_numba_module``).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = ["paint_heads"]


@njit(cache=True, inline="always")
def _inside(d, soft):
    t = min(max(0.5 - d / soft, 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


@njit(cache=True, parallel=True)
def paint_heads(bg, prm, soft, lowest_by_length):
    """Paint into ``bg`` (n, H, W, 3) float32 in place; ``prm`` from ``head.head_params``."""
    n, H, W, _ = bg.shape
    for i in prange(n):
        cx, cy, upx, upy, rx, ry, w, h = prm[i, 0], prm[i, 1], prm[i, 2], prm[i, 3], prm[i, 4], prm[i, 5], prm[i, 6], prm[i, 7]
        length = int(prm[i, 8])
        bald = prm[i, 9] > 0.5
        lowest = lowest_by_length[length]
        pu = 2.0 / w
        # beyond these every shape's alpha is exactly 0 (half a soft edge past its border)
        u_max = 1.25 + soft * pu
        v_max = 1.5 + soft * 2.0 / h
        for y in range(H):
            for x in range(W):
                dx, dy = x - cx, y - cy
                u = (dx * rx + dy * ry) / (w / 2)
                v = (dx * upx + dy * upy) / (h / 2)
                if abs(u) > u_max or v > v_max:
                    continue
                r, g, b = float(bg[i, y, x, 0]), float(bg[i, y, x, 1]), float(bg[i, y, x, 2])
                # neck
                neck_d = max(abs(u) - (0.56 + 0.06 * min(max(-v - 1.0, 0.0), 2.0)), v + 0.35)
                a = _inside(neck_d / pu, soft)
                if a > 0.0:
                    sh = min(max(0.55 + 0.12 * min(max(-v - 1.0, 0.0), 2.0), 0.0), 1.0)
                    r = r * (1 - a) + a * prm[i, 10] * sh
                    g = g * (1 - a) + a * prm[i, 11] * sh
                    b = b * (1 - a) + a * prm[i, 12] * sh
                # skull / hair
                ell = math.sqrt((u / 1.22) ** 2 + ((v - 0.3) / 1.2) ** 2) - 1.0
                if bald:
                    hair_d = max(ell, -0.1 - v)
                elif length < 2:
                    hair_d = max(ell, lowest - v)
                else:
                    hair_d = min(ell, max(max(abs(u) - 1.2, v - 0.3), max(lowest - v, 0.55 - abs(u))))
                a = _inside(hair_d / pu, soft)
                if a > 0.0:
                    grad = min(max(0.8 + 0.2 * v, 0.55), 1.1)
                    k = 0.85 if bald else 1.0
                    base = 10 if bald else 13
                    r = r * (1 - a) + a * min(max(prm[i, base] * k * grad, 0.0), 1.0)
                    g = g * (1 - a) + a * min(max(prm[i, base + 1] * k * grad, 0.0), 1.0)
                    b = b * (1 - a) + a * min(max(prm[i, base + 2] * k * grad, 0.0), 1.0)
                # ears
                if length < 2 or bald:
                    for side in (-1.0, 1.0):
                        ear_d = math.sqrt(((u - side * 1.02) / 0.13) ** 2 + ((v + 0.05) / 0.27) ** 2) - 1.0
                        a = _inside(ear_d / (pu / 0.13), soft)
                        if a > 0.0:
                            r = r * (1 - a) + a * prm[i, 10] * 0.78
                            g = g * (1 - a) + a * prm[i, 11] * 0.78
                            b = b * (1 - a) + a * prm[i, 12] * 0.78
                bg[i, y, x, 0] = r
                bg[i, y, x, 1] = g
                bg[i, y, x, 2] = b
