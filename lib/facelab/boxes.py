"""Axis-aligned boxes ``(x0, y0, x1, y1)`` in pixels: the one pairwise IoU every layer uses
(scene composition in ``facelab.synth``, tracking in ``facelab.faces``, detection AP in
``facelab.metrics_det``). The differentiable IoU of the detector's loss, on tensors, is
``facelab.nn.yolox.bboxes_iou``."""
from __future__ import annotations

import numpy as np

__all__ = ["box_iou"]


def box_iou(a, b) -> np.ndarray:
    """Pairwise IoU, shape (N, M), of N boxes ``a`` and M boxes ``b`` (anything reshaping to
    (-1, 4)); degenerate boxes (x1 < x0) have zero area."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)
