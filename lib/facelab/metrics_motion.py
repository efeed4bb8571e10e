"""Listener-motion metrics as the DIM code (Tran, Chang, Siniukov, Soleymani, ECCV 2024) defines them.

Motion vectors follow DIM's EMOCA layout, 56 numbers per frame: ``[pose 6 | exp 50]`` where pose
is the global head rotation (3) then the jaw rotation (3). DiTaiListener reports every metric on
``exp`` and ``pose`` separately. With ``gt``/``pred`` lists of (T_i, 56) listener sequences and
``speaker`` the matching speaker sequences:

* **FD**: the Frechet distance between the Gaussian statistics (mean, ``np.cov``) of the
  predicted and the true frames of ONE sequence, then averaged over sequences;
* **P-FD** (paired FD): the same on ``[speaker | listener]`` concatenated along features, so it
  also scores whether the listener moves *with* the speaker;
* **MSE**: mean squared error per sequence, averaged;
* **SI-Div**: k-means (k = 40 for exp, 20 for pose, ``random_state=0``) fitted on all
  ground-truth frames, the predicted frames assigned to its clusters, and the entropy (log2, with
  ``+1e-6`` inside the log) of that histogram;
* **Var**: the per-dimension variance over frames, summed over dimensions, averaged over
  sequences (the DIM evaluation script's ``np.sum(np.var(x, axis=0))``);
* **rPCC**: ``|pcc(gt, speaker) - pcc(pred, speaker)|`` with the Pearson correlation taken over
  the flattened sequence, averaged over sequences.

The Frechet distance itself is :func:`facelab.metrics_gen.frechet_distance_stats` (an
eigendecomposition route; it equals DIM's ``scipy.linalg.sqrtm`` formula on PSD covariances and
needs no ``eps`` retry on singular ones).
"""
from __future__ import annotations

import numpy as np

from .metrics_gen import frechet_distance_stats

#: DIM's layout: columns of each part in a 56-d motion vector.
POSE = slice(0, 6)
EXP = slice(6, 56)
PARTS = {"exp": EXP, "pose": POSE}
#: k of SI-Div's k-means per part (DIM).
SID_K = {"exp": 40, "pose": 20}
MOTION_DIM = 56


def _seqs(x, name: str) -> list[np.ndarray]:
    """A list of (T_i, 56) float64 arrays from an (n, T, 56) array or a list of (T_i, 56)."""
    if isinstance(x, np.ndarray) and x.ndim == 3:
        x = list(x)
    if isinstance(x, np.ndarray) and x.ndim == 2:
        x = [x]
    out = []
    for i, s in enumerate(x):
        s = np.asarray(s, np.float64)
        if s.ndim != 2 or s.shape[1] != MOTION_DIM:
            raise ValueError(f"{name}[{i}]: expected a (frames, {MOTION_DIM}) motion array in DIM's "
                             f"[pose 6 | exp 50] layout, got shape {s.shape}")
        if s.shape[0] < 2:
            raise ValueError(f"{name}[{i}]: a sequence needs at least 2 frames, got {s.shape[0]}")
        if not np.isfinite(s).all():
            raise ValueError(f"{name}[{i}]: contains NaN or inf")
        out.append(s)
    if not out:
        raise ValueError(f"{name}: no sequences")
    return out


def _pairs(gt, pred, speaker=None):
    g, p = _seqs(gt, "gt"), _seqs(pred, "pred")
    if len(g) != len(p):
        raise ValueError(f"gt has {len(g)} sequences but pred has {len(p)}")
    s = _seqs(speaker, "speaker") if speaker is not None else [None] * len(g)
    if len(s) != len(g):
        raise ValueError(f"speaker has {len(s)} sequences but gt has {len(g)}")
    out = []
    for i, (a, b, c) in enumerate(zip(g, p, s)):
        n = min(len(a), len(b), len(c) if c is not None else len(a))   # DIM crops to the shortest
        out.append((a[:n], b[:n], None if c is None else c[:n]))
    return out


def _stats(x: np.ndarray):
    return x.mean(0), np.atleast_2d(np.cov(x, rowvar=False))


def fd(gt, pred, part: str = "exp") -> float:
    """Frechet distance per sequence on ``part`` ("exp" or "pose"), averaged over sequences."""
    cols = PARTS[part]
    return float(np.mean([frechet_distance_stats(*_stats(b[:, cols]), *_stats(a[:, cols]))
                          for a, b, _ in _pairs(gt, pred)]))


def paired_fd(gt, pred, speaker, part: str = "exp") -> float:
    """P-FD: per-sequence FD of ``[speaker | listener]`` (features concatenated), averaged."""
    cols = PARTS[part]
    vals = []
    for a, b, s in _pairs(gt, pred, speaker):
        ref = np.concatenate([s[:, cols], a[:, cols]], 1)
        gen = np.concatenate([s[:, cols], b[:, cols]], 1)
        vals.append(frechet_distance_stats(*_stats(ref), *_stats(gen)))
    return float(np.mean(vals))


def mse(gt, pred, part: str = "exp") -> float:
    cols = PARTS[part]
    return float(np.mean([np.mean((b[:, cols] - a[:, cols]) ** 2) for a, b, _ in _pairs(gt, pred)]))


def si_div(gt, pred, part: str = "exp", k: int | None = None) -> float:
    """SI-Div: entropy (bits) of the predicted frames' histogram over k-means clusters of the GT frames."""
    from sklearn.cluster import KMeans

    cols = PARTS[part]
    k = SID_K[part] if k is None else int(k)
    g = np.concatenate([a[:, cols] for a in _seqs(gt, "gt")])
    p = np.concatenate([b[:, cols] for b in _seqs(pred, "pred")])
    if len(g) < k:
        raise ValueError(f"si_div: k-means with k={k} needs at least {k} ground-truth frames, got {len(g)}")
    km = KMeans(n_clusters=k, random_state=0, n_init="auto").fit(g)
    hist = np.bincount(km.predict(p), minlength=k) / len(p)
    return float(-(hist * np.log2(hist + 1e-6)).sum())


def variance(seqs, part: str = "exp") -> float:
    """Sum over dimensions of the per-frame variance, averaged over sequences."""
    cols = PARTS[part]
    return float(np.mean([np.var(s[:, cols], axis=0).sum() for s in _seqs(seqs, "seqs")]))


def _pcc(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x.ravel() - x.mean(), y.ravel() - y.mean()
    den = np.sqrt((x ** 2).sum() * (y ** 2).sum())
    return float((x * y).sum() / den) if den > 0 else 0.0   # a constant sequence correlates with nothing


def rpcc(gt, pred, speaker, part: str = "exp") -> float:
    """``|pcc(gt, speaker) - pcc(pred, speaker)|`` over flattened sequences, averaged."""
    cols = PARTS[part]
    return float(np.mean([abs(_pcc(a[:, cols], s[:, cols]) - _pcc(b[:, cols], s[:, cols]))
                          for a, b, s in _pairs(gt, pred, speaker)]))


def all_metrics(gt, pred, speaker, *, sid: bool = True) -> dict[str, float]:
    """Every metric above on exp and pose: ``{"fd_exp", "fd_pose", "pfd_exp", ..., "rpcc_pose"}``."""
    out = {}
    for part in ("exp", "pose"):
        out[f"fd_{part}"] = fd(gt, pred, part)
        out[f"pfd_{part}"] = paired_fd(gt, pred, speaker, part)
        out[f"mse_{part}"] = mse(gt, pred, part)
        if sid:
            out[f"sid_{part}"] = si_div(gt, pred, part)
        out[f"var_{part}"] = variance(pred, part)
        out[f"rpcc_{part}"] = rpcc(gt, pred, speaker, part)
    return out


def seam_jump(video, borders, radius: int = 0) -> float:
    """How hard a long video jumps where two generated segments meet.

    ``video`` (N, T, ...) frames or motion; for each border ``b`` (the first frame of a new
    segment) the largest RMS change between consecutive frames ``x[j] - x[j-1]`` for ``j`` in
    ``[b - radius, b + radius]`` (``radius`` = half the frames an editor regenerated, so a jump
    moved to the edge of the edited span still counts), averaged over borders and videos.
    """
    x = np.asarray(video, np.float64)
    if x.ndim < 2:
        raise ValueError(f"seam_jump: expected (N, T, ...) sequences, got shape {x.shape}")
    x = x.reshape(x.shape[0], x.shape[1], -1)
    d = np.sqrt(((x[:, 1:] - x[:, :-1]) ** 2).mean(-1))          # d[:, j-1] = rms(x[j] - x[j-1])
    vals = []
    for b in borders:
        lo, hi = max(1, b - radius), min(x.shape[1] - 1, b + radius)
        if lo > hi:
            raise ValueError(f"seam_jump: border {b} is outside 1..{x.shape[1] - 1}")
        vals.append(d[:, lo - 1:hi].max(1))
    return float(np.mean(vals))
