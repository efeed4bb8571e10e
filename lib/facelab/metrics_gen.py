"""Metrics for generated images: the Frechet distance between two feature sets.

FID (Heusel et al. 2017) is this distance in the pool features of an ImageNet Inception-v3.
facelab never downloads weights, so notebooks compute it in the feature space of a model they
trained (e.g. an FER classifier trained on real faces) and must say so: such a number is an
"FD in <model> features", not comparable to published FID values.

    d^2 = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2})

``Tr((S_a S_b)^{1/2})`` is computed as ``Tr((S_a^{1/2} S_b S_a^{1/2})^{1/2})`` (same eigenvalues), the
square root of a symmetric PSD matrix, by eigendecomposition: no ``scipy.linalg.sqrtm`` (whose
``disp`` argument is gone in SciPy 1.18) and no complex residue for near-singular covariances.
"""
from __future__ import annotations

import numpy as np


def gaussian_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and covariance (d, d) of an (n, d) feature array (n >= 2)."""
    f = _as_2d(features, "features")
    return f.mean(0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (round-off negatives -> 0)."""
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(sigma_a, sigma_b) -> float:
    """``Tr((S_a S_b)^{1/2})`` for two covariance (symmetric PSD) matrices."""
    sa, sb = np.asarray(sigma_a, np.float64), np.asarray(sigma_b, np.float64)
    ra = _psd_sqrt(sa)
    m = ra @ ((sb + sb.T) / 2) @ ra
    w = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(w, 0.0, None)).sum())


def frechet_distance_stats(mu_a, sigma_a, mu_b, sigma_b, eps: float = 0.0) -> float:
    """Frechet distance between N(mu_a, sigma_a) and N(mu_b, sigma_b).

    ``eps`` (default 0) adds ``eps * I`` to both covariances; the eigendecomposition route needs no
    regularisation for singular covariances, so it is only there for comparisons with tools that add it.
    """
    mu_a, mu_b = np.atleast_1d(np.asarray(mu_a, np.float64)), np.atleast_1d(np.asarray(mu_b, np.float64))
    sa, sb = np.atleast_2d(np.asarray(sigma_a, np.float64)), np.atleast_2d(np.asarray(sigma_b, np.float64))
    if mu_a.shape != mu_b.shape or sa.shape != sb.shape or sa.shape != (mu_a.size, mu_a.size):
        raise ValueError(f"frechet_distance_stats: shapes do not match: mu {mu_a.shape}/{mu_b.shape}, "
                         f"sigma {sa.shape}/{sb.shape}")
    if not all(np.isfinite(x).all() for x in (mu_a, mu_b, sa, sb)):
        raise ValueError("frechet_distance_stats: means or covariances contain NaN or inf")
    if eps:
        sa, sb = sa + eps * np.eye(sa.shape[0]), sb + eps * np.eye(sb.shape[0])
    diff = mu_a - mu_b
    d = float(diff @ diff + np.trace(sa) + np.trace(sb) - 2 * trace_sqrt_product(sa, sb))
    return max(d, 0.0)


def frechet_distance(features_a, features_b) -> float:
    """Frechet distance between Gaussians fitted to two (n, d) feature sets (same d)."""
    a, b = _as_2d(features_a, "features_a"), _as_2d(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"frechet_distance: feature widths differ ({a.shape[1]} vs {b.shape[1]})")
    return frechet_distance_stats(*gaussian_stats(a), *gaussian_stats(b))


def _as_2d(x, name: str) -> np.ndarray:
    try:
        import torch

        if isinstance(x, torch.Tensor):
            x = x.detach().float().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"{name}: expected an (n, d) array with n >= 2, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return x
