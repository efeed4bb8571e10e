"""Metrics shared by the notebooks. Pure numpy, so they run anywhere and are easy to test."""
from __future__ import annotations

import numpy as np


def _labels(y) -> np.ndarray:
    try:
        import torch

        if isinstance(y, torch.Tensor):
            y = y.detach().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    return np.asarray(y)


def accuracy(y_true, y_pred) -> float:
    y_true, y_pred = _labels(y_true), _labels(y_pred)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"accuracy: expected two equal-length, non-empty label arrays; got {y_true.shape}, {y_pred.shape}")
    return float((y_true == y_pred).mean())


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Rows are true classes, columns predictions."""
    y_true, y_pred = _labels(y_true).astype(int), _labels(y_pred).astype(int)
    cm = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def per_class_accuracy(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Recall per class (NaN for a class absent from ``y_true``)."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diag(cm) / cm.sum(1)


def macro_f1(y_true, y_pred, n_classes: int | None = None) -> float:
    """Unweighted mean of per-class F1 over the classes present in ``y_true`` or ``y_pred``."""
    y_true, y_pred = _labels(y_true).astype(int), _labels(y_pred).astype(int)
    n = n_classes or int(max(y_true.max(), y_pred.max()) + 1)
    cm = confusion_matrix(y_true, y_pred, n)
    tp = np.diag(cm).astype(float)
    fp, fn = cm.sum(0) - tp, cm.sum(1) - tp
    present = (cm.sum(0) + cm.sum(1)) > 0
    denom = 2 * tp + fp + fn
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1e-12), 0.0)
    return float(f1[present].mean())


def auroc(scores_pos, scores_neg) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties count half.

    Computed from ranks (Mann-Whitney U), exact and O(n log n).
    """
    pos, neg = np.asarray(scores_pos, float).ravel(), np.asarray(scores_neg, float).ravel()
    if pos.size == 0 or neg.size == 0:
        raise ValueError("auroc: need at least one positive and one negative score")
    allv = np.concatenate([pos, neg])
    order = np.argsort(allv, kind="mergesort")
    ranks = np.empty(allv.size, float)
    sorted_v = allv[order]
    # average ranks over ties
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_v)) + 1]
    ends = np.r_[starts[1:], allv.size]
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    u = ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2
    return float(u / (pos.size * neg.size))


def fpr_at_tpr(scores_pos, scores_neg, tpr: float = 0.95) -> float:
    """False-positive rate at the first ROC point whose true-positive rate reaches ``tpr``
    (higher score = positive).

    The ROC points are the distinct scores taken as thresholds ``t`` (a sample is called positive
    when its score is ``>= t``, so tied scores enter together), from the highest down; the result is
    the FPR of the highest threshold with ``TPR >= tpr``, i.e. scikit-learn's
    ``fpr[np.searchsorted(tpr_curve, tpr, side="left")]`` on ``roc_curve(..., drop_intermediate=False)``.
    """
    pos, neg = np.asarray(scores_pos, float).ravel(), np.asarray(scores_neg, float).ravel()
    if pos.size == 0 or neg.size == 0:
        raise ValueError("fpr_at_tpr: need at least one positive and one negative score")
    if not 0.0 <= tpr <= 1.0:
        raise ValueError(f"fpr_at_tpr: tpr must be in [0, 1], got {tpr}")
    if np.isnan(pos).any() or np.isnan(neg).any():
        raise ValueError("fpr_at_tpr: scores contain NaN")
    thresholds = np.unique(np.concatenate([pos, neg]))[::-1]          # distinct, high to low
    # counts of scores >= each threshold; the leading 0 is the point "nothing called positive"
    tps = np.r_[0, pos.size - np.searchsorted(np.sort(pos), thresholds, side="left")]
    fps = np.r_[0, neg.size - np.searchsorted(np.sort(neg), thresholds, side="left")]
    i = int(np.searchsorted(tps / pos.size, tpr, side="left"))        # TPR curve ends at 1.0
    return float(fps[i] / neg.size)


def cosine(a, b, eps: float = 1e-8) -> np.ndarray:
    """Cosine similarity between flattened maps along the last dims, batched over the first."""
    a, b = _labels(a).astype(np.float64), _labels(b).astype(np.float64)
    a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + eps)


def laplacian_variance(images) -> np.ndarray:
    """Per-image sharpness: the variance of the 4-neighbour Laplacian (higher = sharper).

    ``images``: (N, H, W) grey or (N, H, W, 3) colour (averaged to grey), any numeric dtype.
    Used to compare dataset splits (e.g. a blurred FER2013 ``train`` copy vs a sharp ``publictest``).
    """
    x = np.asarray(images)
    if x.ndim == 4 and x.shape[-1] == 3:
        x = x.astype(np.float32).mean(-1)
    if x.ndim != 3 or min(x.shape[1:]) < 3:
        raise ValueError(f"laplacian_variance expects (N, H, W) or (N, H, W, 3) images of at least 3x3, "
                         f"got shape {np.shape(images)}")
    f = x.astype(np.float32)
    lap = f[:, 1:-1, :-2] + f[:, 1:-1, 2:] + f[:, :-2, 1:-1] + f[:, 2:, 1:-1] - 4 * f[:, 1:-1, 1:-1]
    return lap.reshape(len(f), -1).var(1)
