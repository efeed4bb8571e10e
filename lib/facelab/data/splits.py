"""Guarding a protocol against a degraded split.

Our FER2013 copy's ``train`` split is heavily blurred (median Laplacian variance ~6 against ~2000
for ``publictest``). A model trained there and tested on the sharp split learns the blur, not the
expressions: on an H200, notebook 04's close-set models reached 0.17-0.31 accuracy on publictest
and notebook 01's detector 0.017 mAP. :func:`resplit_if_degraded` measures both splits and, when
they differ more than ``ratio`` times in sharpness, sets the training split aside and cuts the
evaluation split into two stratified, seeded halves, so that training and testing see the same kind
of image. Whoever uses it must report that it happened (``info["resplit"]``).
"""
from __future__ import annotations

import numpy as np

from ..metrics import laplacian_variance

__all__ = ["median_sharpness", "resplit_if_degraded"]


def median_sharpness(images, n: int | None = 300) -> float:
    """Median Laplacian variance of all images ((N, H, W) or (N, H, W, 3)), or of ``n`` evenly
    spaced ones when there are more (``n=None``: always all)."""
    images = np.asarray(images)
    if len(images) == 0:
        raise ValueError("median_sharpness: no images")
    if n is not None and len(images) > n:
        images = images[np.linspace(0, len(images) - 1, n).round().astype(int)]
    return float(np.median(laplacian_variance(images)))


def resplit_if_degraded(train_images, train_labels, eval_images, eval_labels, *, seed: int,
                        ratio: float = 10.0):
    """``(train_images, train_labels, eval_images, eval_labels, info)``, re-split when needed.

    ``info`` = ``{"sharpness": {"train": s_train, "eval": s_eval}, "resplit": bool}``. When
    ``max(s) >= ratio * min(s)``, the returned train / eval sets are the two halves of the
    evaluation split, per class (the odd image of a class goes to the evaluation half), drawn
    with ``seed``; otherwise the inputs come back unchanged.
    """
    tr_x, tr_y = np.asarray(train_images), np.asarray(train_labels)
    ev_x, ev_y = np.asarray(eval_images), np.asarray(eval_labels)
    if len(tr_x) != len(tr_y) or len(ev_x) != len(ev_y):
        raise ValueError(f"resplit_if_degraded: images and labels differ in length "
                         f"(train {len(tr_x)} vs {len(tr_y)}, eval {len(ev_x)} vs {len(ev_y)})")
    if ratio <= 1:
        raise ValueError(f"resplit_if_degraded: ratio must be > 1, got {ratio!r}")
    sharp = {"train": median_sharpness(tr_x), "eval": median_sharpness(ev_x)}
    degraded = max(sharp.values()) >= ratio * max(min(sharp.values()), 1e-12)
    info = {"sharpness": sharp, "resplit": bool(degraded)}
    if not degraded:
        return tr_x, tr_y, ev_x, ev_y, info
    rng = np.random.default_rng(seed)
    first = np.zeros(len(ev_y), bool)
    for c in np.unique(ev_y):
        idx = np.flatnonzero(ev_y == c)
        first[rng.permutation(idx)[: len(idx) // 2]] = True
    return ev_x[first], ev_y[first], ev_x[~first], ev_y[~first], info
