"""Shared pieces of the time-based generators (``videos`` and ``dyads``): validation, event
time profiles, blinks, head drift, and rendering whole sequences through ``render.render``.

A sequence holds ``n`` clips of ``T`` frames; frame ``j`` is at time ``j / fps`` seconds.
Identity, light, background and face placement are constant within a clip; AUs and pose
change per frame.
"""
from __future__ import annotations

import numpy as np
import torch

from .. import mesh as _mesh
from . import backgrounds as B
from . import geometry as G
from . import identity as I
from .generators import _check_n_size, single_thread
from .render import render

AU = _mesh.AU_INDEX


def check_frames(frames, fps) -> None:
    if not isinstance(frames, (int, np.integer)) or isinstance(frames, bool) or frames < 2:
        raise ValueError(f"frames must be an int >= 2 (a video needs at least two frames), got {frames!r}")
    if not isinstance(fps, (int, float, np.integer, np.floating)) or not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number of frames per second, got {fps!r}")


def check_common(n, frames, fps, size) -> None:
    _check_n_size(n, size)
    check_frames(frames, fps)


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def profile(t: np.ndarray, t_start: float, t_apex: float, t_apex_end: float, t_end: float) -> np.ndarray:
    """Onset (smooth rise ``t_start -> t_apex``), apex (1 until ``t_apex_end``), offset (smooth
    fall to 0 at ``t_end``); exactly 0 outside ``(t_start, t_end)``."""
    up = smoothstep((t - t_start) / max(t_apex - t_start, 1e-9))
    down = 1 - smoothstep((t - t_apex_end) / max(t_end - t_apex_end, 1e-9))
    out = np.where(t < t_apex, up, np.where(t <= t_apex_end, 1.0, down))
    return np.where((t <= t_start) | (t >= t_end), 0.0, out)


def blink_times(duration: float, rate: float, fps: float, rng: np.random.Generator,
                min_gap: float = 0.7) -> list[tuple[float, float, float, float]]:
    """Blink (t_start, t_apex, t_apex_end, t_end) tuples at Poisson-like times (``rate`` per
    second, at least ``min_gap`` s apart). The lids close in 0.1 s, stay shut for one frame
    interval (so some frame shows the closed eye) and reopen in 0.15 s."""
    out = []
    if rate <= 0:
        return out
    hold = max(0.04, 1.0 / fps)
    t = rng.uniform(0.1, 0.6)
    while True:
        t += rng.exponential(1.0 / rate)
        t_apex = round((t + 0.1) * fps) / fps  # the lids are shut at a frame time
        s, e = t_apex - 0.1, t_apex + hold + 0.15
        if e > duration - 0.02:
            break
        out.append((s, t_apex, t_apex + hold, e))
        t = e + min_gap
    return out


#: Upper/lower lid vertex pairs (the 68-point eye landmarks 37/41, 38/40, 43/47, 44/46).
_LID_PAIRS = ((160, 144), (158, 153), (385, 380), (387, 373))
_AU43_RANGE = (0.6, 2.0)


def _lid_gap_model(shape: np.ndarray | None) -> tuple[float, np.ndarray]:
    """The mean upper-minus-lower lid height (model units) is linear in the AUs:
    ``gap = g0 + w @ aus`` for symmetric AUs. Returns (g0, w (20,))."""
    up = [u for u, _ in _LID_PAIRS]
    lo = [l for _, l in _LID_PAIRS]
    basis = G.au_side_basis()
    full = basis[:20] + basis[20:]                                 # (20, 468, 3)
    w = (full[:, up, 1] - full[:, lo, 1]).mean(1)
    rest = G.topology().base + G.mouth_closure()
    if shape is not None:
        rest = rest + np.tensordot(np.asarray(shape, np.float32), G.identity_basis(), 1)
    g0 = float((rest[up, 1] - rest[lo, 1]).mean())
    return g0, w.astype(np.float64)


def apply_blinks(aus: np.ndarray, blink_profile: np.ndarray, shape: np.ndarray | None = None) -> np.ndarray:
    """Add blinks to (T, 20) AUs in place: where the blink profile (T,) in [0, 1] is p, the
    lid raiser AU05 is relaxed to (1 - p) of itself and AU43 rises to p times the intensity
    that just shuts the lids given the other AUs of that frame (clipped to 0.6-2.0), so a
    blink closes the eye during a surprised face too and never pushes the lids through each
    other during a smile. Returns the AU43 added."""
    if not np.any(blink_profile > 0):
        return np.zeros(len(aus))
    g0, w = _lid_gap_model(shape)
    aus[:, AU["AU05"]] *= 1 - blink_profile
    rest = aus.copy()
    rest[:, AU["AU43"]] = 0
    need = np.clip((g0 + rest @ w) / -w[AU["AU43"]], *_AU43_RANGE)
    add = blink_profile * need
    aus[:, AU["AU43"]] += add
    return add


def head_drift(T: int, fps: float, amplitude: float, rng: np.random.Generator, n_waves: int = 2) -> np.ndarray:
    """(T, 3) slow head motion: a few random sinusoids per axis (0.1-0.5 Hz), pitch/yaw/roll
    amplitudes ``amplitude * (1, 1.5, 0.5)`` radians in total."""
    t = np.arange(T) / fps
    out = np.zeros((T, 3))
    for ax, a in enumerate((1.0, 1.5, 0.5)):
        w = rng.dirichlet(np.ones(n_waves)) * amplitude * a
        f = rng.uniform(0.1, 0.5, n_waves)
        ph = rng.uniform(0, 2 * np.pi, n_waves)
        out[:, ax] = (w[:, None] * np.sin(2 * np.pi * f[:, None] * t[None] + ph[:, None])).sum(0)
    return out


def light_for(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.stack([rng.uniform(-0.7, 0.7, n), rng.uniform(-0.2, 0.8, n), np.ones(n),
                     rng.uniform(0.3, 0.5, n)], -1).astype(np.float32)


def render_sequences(slots: list[dict], size: tuple[int, int], bg_ids: np.ndarray, bg_seed: int,
                     supersample: int = 2, batch_size: int = 64) -> tuple[np.ndarray, list[np.ndarray]]:
    """Render ``n`` clips of ``T`` frames, each with one or more faces ("slots", painted in order).

    Each slot is a dict: ``aus`` (n, T, 20) (or ``aus_right``/``aus_left``), ``pose`` (n, T, 3),
    ``ident`` (identity dict, first axis n), ``scale`` (n,), ``center`` (n, T, 2),
    ``light`` (n, 4) and optionally ``present`` (n,) bool (absent faces are not drawn).
    Returns frames (n, T, H, W, 3) uint8 and per slot the (n, T, 468, 2) landmarks.
    """
    H, W = size
    s = int(supersample)
    n, T = slots[0]["pose"].shape[:2]
    bg = B.backgrounds(np.asarray(bg_ids), H * s, W * s, np.random.default_rng(bg_seed))  # one per clip
    meshes = []
    for sl in slots:
        ar = sl.get("aus_right", sl.get("aus"))
        al = sl.get("aus_left", sl.get("aus"))
        shape = np.repeat(sl["ident"]["shape"], T, 0)
        meshes.append(G.face_meshes(ar.reshape(n * T, 20), al.reshape(n * T, 20), shape))
    frames = np.zeros((n * T, H, W, 3), np.uint8)
    lms = [np.zeros((n * T, G.N, 2), np.float32) for _ in slots]
    with torch.inference_mode(), single_thread():
        for a in range(0, n * T, batch_size):
            idx = np.arange(a, min(n * T, a + batch_size))
            vid = idx // T
            canvas = bg[torch.as_tensor(vid)]
            active = [k for k, sl in enumerate(slots) if sl.get("present") is None or sl["present"][vid].any()]
            for j, k in enumerate(active):
                sl = slots[k]
                present = np.ones(len(idx), bool) if sl.get("present") is None else sl["present"][vid]
                center = sl["center"].reshape(n * T, 2)[idx].copy()
                center[~present] = -10.0 * max(H, W)  # off-canvas: nothing is drawn
                r = render(meshes[k][idx], I.take(sl["ident"], vid), sl["pose"].reshape(n * T, 3)[idx],
                           sl["scale"][vid], center, sl["light"][vid], canvas, (H, W), supersample=s,
                           keep_supersampled=j < len(active) - 1)
                lm = r.landmarks
                if j < len(active) - 1:
                    canvas = r.supersampled
                else:
                    frames[idx] = r.images
                # landmarks of absent faces are reported where they would be, not off-canvas
                if (~present).any():
                    lm = lm.copy()
                    lm[~present] = np.nan
                lms[k][idx] = lm
    return frames.reshape(n, T, H, W, 3), [l.reshape(n, T, G.N, 2) for l in lms]
