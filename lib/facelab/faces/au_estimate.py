"""AU intensities from landmarks by inverting py-feat's AU-to-mesh model (an ESTIMATE).

The model (:class:`facelab.mesh.AUMeshModel`) is linear: mesh = neutral + sum_i a_i D_i
(+ pose terms). Given observed landmarks we alternate two least-squares steps:

1. align the observation to the model's current mesh with a similarity transform
   (Umeyama: rotation, scale, translation absorb head pose, face size and position);
2. solve for the 20 AU intensities with bounds [0, 5] (bounded-variable least squares:
   non-negative, clipped at 5) on the aligned residual from the neutral mesh, jointly with
   a free linearised similarity correction.

This is not an AU detector. It is only as good as the model is a true description of a
face: on meshes the model itself makes it recovers most AUs (see the tests), while on real
faces identity shape and landmark error leak into it, and AUs whose displacements are
nearly collinear in 2-D (e.g. some lid and lip AUs) trade off against each other.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..mesh import AU_NAMES, MESH68, N_VERTICES, au_mesh_model
from .align import transform_points, umeyama

N_AUS = len(AU_NAMES)


@lru_cache(maxsize=1)
def _basis() -> tuple[np.ndarray, np.ndarray]:
    """(23, 468, 3) displacement per input (20 AUs, pitch, yaw, roll) and the (468, 3) neutral."""
    m = au_mesh_model()
    basis = m.coef.reshape(-1, 3, 478).transpose(0, 2, 1)[:, :N_VERTICES].astype(np.float64)
    neutral = m.intercept.reshape(3, 478).T[:N_VERTICES].astype(np.float64)
    return basis, neutral


def _vertex_index(n: int) -> np.ndarray:
    if n == N_VERTICES:
        return np.arange(N_VERTICES)
    if n == 68:
        return np.asarray(MESH68)
    raise ValueError(f"estimate_aus: expected 468 mesh points or 68 300-W points, got {n}")


def estimate_aus(landmarks: np.ndarray, *, y_down: bool = True, fit_pose: bool = False, iters: int = 4,
                 return_pose: bool = False):
    """Estimate the 20 AU intensities (order :data:`facelab.mesh.AU_NAMES`, values in [0, 5]).

    Args:
        landmarks: (..., 468, d) face-mesh points or (..., 68, d) 300-W points, d = 2 or 3.
        y_down: image convention (y down; for 3-D, z away from the viewer, as MediaPipe's
            mesh). The model's frame is y up, z towards the viewer; False means the input
            is already in that frame (e.g. ``au_mesh_model().mesh(aus)``).
        fit_pose: also solve for the model's pitch/yaw/roll inputs (unbounded). Helps on
            turned heads in 2-D; costs some AU accuracy on frontal ones.
        iters: alignment / solve alternations (2-4 converge on model meshes).
        return_pose: also return the (..., 3) pose estimate (zeros unless ``fit_pose``).

    Returns:
        (..., 20) float32 AU intensities (an estimate; see the module docstring).
    """
    from scipy.optimize import lsq_linear

    x = np.asarray(landmarks, np.float64)
    if x.ndim < 2 or x.shape[-1] not in (2, 3):
        raise ValueError(f"estimate_aus: expected (..., n, 2 or 3) landmarks, got shape {x.shape}")
    batch, (n, d) = x.shape[:-2], x.shape[-2:]
    idx = _vertex_index(n)
    basis, neutral = _basis()
    k = N_AUS + (3 if fit_pose else 0)
    a_mat = basis[:k, idx, :d].reshape(k, n * d).T          # (n*d, k)
    mu = neutral[idx, :d]
    # Nuisance columns: a small similarity change around the aligned state is linear in
    # translation, scale and rotation. Solving them jointly with the AUs (free, not
    # bounded) keeps an AU's similarity-like part (e.g. a jaw drop moving the centroid)
    # from being absorbed by the alignment alone, which biased the AU estimates.
    nuis = _similarity_columns(mu)
    full = np.concatenate([a_mat, nuis], 1)
    q = full.shape[1]
    # Least squares through the QR factors: ||A x - r|| = ||R x - Q'r|| + const, so each
    # bounded solve is on a small (q x q) system instead of (n*d x q).
    qm, rm = np.linalg.qr(full)
    lo = np.r_[np.zeros(N_AUS), np.full(q - N_AUS, -np.inf)]
    hi = np.r_[np.full(N_AUS, 5.0), np.full(q - N_AUS, np.inf)]
    flip = np.ones(d)
    if y_down:
        flip[1:] = -1.0  # y (and z) flipped: a proper rotation in 3-D, a mirror fixed up in 2-D
    flat = x.reshape(-1, n, d) * flip
    out = np.zeros((flat.shape[0], k))
    for j, obs in enumerate(flat):
        theta = np.zeros(k)
        for _ in range(max(1, iters)):
            target = mu + (a_mat @ theta).reshape(n, d)
            aligned = transform_points(obs, umeyama(obs, target))
            resid = (aligned - mu).ravel()
            theta = lsq_linear(rm, qm.T @ resid, bounds=(lo, hi), method="bvls").x[:k]
        out[j] = theta
    aus = np.clip(out[:, :N_AUS], 0.0, 5.0).astype(np.float32).reshape(batch + (N_AUS,))
    if return_pose:
        pose = np.zeros((out.shape[0], 3)) if not fit_pose else out[:, N_AUS:]
        return aus, pose.astype(np.float32).reshape(batch + (3,))
    return aus


def _similarity_columns(mu: np.ndarray) -> np.ndarray:
    """(n*d, q) linearised similarity around ``mu`` (n, d): translations, scale, rotations."""
    n, d = mu.shape
    c = mu - mu.mean(0)
    cols = [np.tile(np.eye(d)[i], (n, 1)) for i in range(d)]
    cols.append(c)
    if d == 2:
        cols.append(np.stack([-c[:, 1], c[:, 0]], 1))
    else:
        cols.extend(np.cross(np.eye(3)[i], c) for i in range(3))
    return np.stack([col.ravel() for col in cols], 1)
