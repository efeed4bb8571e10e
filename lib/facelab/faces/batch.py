"""Faces in batches: 5-point alignment of many faces, and 68 FaceMesh landmarks on many face
crops with a budget, a mean-shape fallback, a content-addressed cache and threads.

Notebooks that train on landmarks (05's AU heatmaps, and any reader of real crops) call these
instead of writing the loops themselves.
"""
from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

from ..config import progress
from .align import align_face, five_from_68, transform_points

__all__ = ["align_batch", "mesh68_crops", "landmarks_with_fallback"]

MESH_INPUT = 192   # FaceMesh's input size: crops are resized to it


def align_batch(images: np.ndarray, landmarks68: np.ndarray, size: int, *, zoom: float = 0.9
                ) -> tuple[np.ndarray, np.ndarray]:
    """Warp each face (N, H, W, 3) so that its 5 points (from its 68) land on the template of
    ``size`` px; the 68 points move with it. Returns ``(images (N, size, size, 3) uint8, points)``."""
    images, landmarks68 = np.asarray(images), np.asarray(landmarks68, np.float32)
    if images.ndim != 4 or landmarks68.shape != (len(images), 68, 2):
        raise ValueError(f"align_batch: expected images (N, H, W, 3) and landmarks (N, 68, 2), got "
                         f"{images.shape} and {landmarks68.shape}")
    out_img = np.empty((len(images), size, size, 3), np.uint8)
    out_lm = np.empty_like(landmarks68)
    for i, (im, lm) in enumerate(zip(images, landmarks68)):
        out_img[i], m = align_face(im, five_from_68(lm), size, zoom=zoom)
        out_lm[i] = transform_points(lm, m)
    return out_img, out_lm


def _digest(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()[:24]


def mesh68_crops(faces: np.ndarray, *, min_score: float = 0.5, threads: int = 1, cache: bool = True
                 ) -> tuple[np.ndarray, np.ndarray]:
    """FaceMesh on whole face crops (N, s, s, 3) uint8 (the crop is the face, as FER2013's or
    RAF-DB's aligned images): ``(points (N, 68, 2) in crop pixels, ok (N,) bool)``.

    A face is ``ok`` when the mesh's presence score is at least ``min_score`` and every point lies
    in the crop (2 px slack). Cached by a hash of the pixels (``facelab.cache``); ``threads``
    workers, each with its own TFLite interpreter."""
    faces = np.asarray(faces)
    if faces.ndim != 4 or faces.shape[-1] != 3 or faces.dtype != np.uint8:
        raise ValueError(f"mesh68_crops: expected (N, s, s, 3) uint8 crops, got {faces.shape} {faces.dtype}")
    if len(faces) == 0:
        return np.zeros((0, 68, 2), np.float32), np.zeros(0, bool)

    def compute():
        import torch

        from .landmarks import FaceMesh, to68

        local = threading.local()

        def one(img):
            if not hasattr(local, "mesh"):
                local.mesh = FaceMesh()
            big = np.asarray(torch.nn.functional.interpolate(
                torch.from_numpy(img).permute(2, 0, 1)[None].float(), size=MESH_INPUT, mode="bilinear",
                align_corners=False)[0].permute(1, 2, 0).clamp(0, 255).byte())
            pts, score = local.mesh.predict(big, np.array([8.0, 8.0, MESH_INPUT - 8.0, MESH_INPUT - 8.0]))
            lm = to68(pts[:, :2]) * (img.shape[0] / MESH_INPUT)
            ok = score >= min_score and lm.min() >= -2 and lm.max() <= img.shape[0] + 2
            return lm.astype(np.float32), bool(ok)

        with ThreadPoolExecutor(max(1, int(threads))) as ex:
            res = list(progress(ex.map(one, faces), total=len(faces), desc="landmarks"))
        return np.stack([r[0] for r in res]), np.array([r[1] for r in res], bool)

    from .. import cache as _cache

    return _cache.cached("facemesh68_crops", ["v1", _digest(faces), faces.shape, min_score], compute, enabled=cache)


def landmarks_with_fallback(faces: np.ndarray, budget: int, *, mean_shape: np.ndarray | None = None,
                            fallback_shape: Callable[[], np.ndarray] | None = None, seed: int = 0,
                            threads: int = 1, min_score: float = 0.5) -> dict:
    """68 points for every face: FaceMesh on up to ``budget`` faces (a seeded choice when there
    are more), and a mean shape for the rest and for the failures.

    The mean shape is ``mean_shape`` when given (e.g. the training split's, for a test split), else
    the mean of the faces that succeeded, else ``fallback_shape()``. Returns
    ``{"lm" (N, 68, 2), "lm_ok" (N,), "mean_shape" (68, 2), "landmarked": how many were tried}``."""
    n = len(faces)
    if budget < 0:
        raise ValueError(f"landmarks_with_fallback: budget must be >= 0, got {budget}")
    idx = np.arange(n) if budget >= n else np.sort(np.random.default_rng(seed).choice(n, budget, replace=False))
    lm = np.zeros((n, 68, 2), np.float32)
    ok = np.zeros(n, bool)
    if len(idx):
        lm[idx], ok[idx] = mesh68_crops(np.asarray(faces)[idx], min_score=min_score, threads=threads)
    if mean_shape is None:
        if ok.any():
            mean_shape = lm[ok].mean(0)
        elif fallback_shape is not None:
            mean_shape = np.asarray(fallback_shape(), np.float32)
        else:
            raise ValueError("landmarks_with_fallback: no face was landmarked and no mean_shape or fallback_shape given")
    lm[~ok] = mean_shape
    return {"lm": lm, "lm_ok": ok, "mean_shape": np.asarray(mean_shape, np.float32), "landmarked": int(len(idx))}
