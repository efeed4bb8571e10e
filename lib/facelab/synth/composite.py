"""Scenes of real faces: face crops (e.g. FER2013's 48x48 grey faces) pasted onto the engine's
backgrounds, for training and testing a face detector on real faces when the dataset has no
scenes of its own. The pasted square is the exact box, its crop's label the box's label."""
from __future__ import annotations

import numpy as np

from ..boxes import box_iou
from ..config import progress
from .backgrounds import KINDS, backgrounds

__all__ = ["paste_faces"]

_GREY = np.array([0.299, 0.587, 0.114])


def paste_faces(faces: np.ndarray, labels: np.ndarray, n: int, size: int, max_faces: int,
                face_px: tuple[int, int], seed: int, *, feather: int = 3, max_iou: float = 0.02
                ) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """``n`` grey scenes of ``size`` px, each with 1..``max_faces`` crops from ``faces`` (N, h, w)
    uint8 grey, resized to a side in ``face_px`` (inclusive), pasted with a feathered edge of
    ``feather`` px (so the box is not a hard step) at places overlapping earlier boxes by IoU <
    ``max_iou`` (a face that finds no place in 20 tries is left out).

    Returns ``(images uint8 (n, size, size), boxes: n arrays (k, 4) x0 y0 x1 y1, labels: n arrays (k,))``.
    """
    from PIL import Image

    faces, labels = np.asarray(faces), np.asarray(labels)
    if faces.ndim != 3 or faces.dtype != np.uint8 or len(faces) != len(labels) or len(faces) == 0:
        raise ValueError(f"paste_faces: expected grey uint8 crops (N, h, w) with N labels, N > 0; got "
                         f"{faces.shape} {faces.dtype} and {labels.shape} labels")
    if not 1 <= face_px[0] <= face_px[1] <= size:
        raise ValueError(f"paste_faces: face_px must satisfy 1 <= min <= max <= size={size}, got {face_px}")
    r = np.random.default_rng(seed)
    bg_rng = np.random.default_rng(seed + 1)
    images = np.empty((n, size, size), np.uint8)
    all_boxes, all_labels = [], []
    ramp = np.minimum(np.arange(1, size + 2) / feather, 1.0)
    for a in progress(range(0, n, 64), desc="composing scenes"):
        m = min(64, n - a)
        bg = backgrounds(r.integers(0, len(KINDS), m), size, size, bg_rng).numpy()
        bg = (bg @ _GREY) * 255.0
        for i in range(m):
            canvas = bg[i]
            boxes, labs = [], []
            for _ in range(int(r.integers(1, max_faces + 1))):
                for _try in range(20):
                    s = int(r.integers(face_px[0], face_px[1] + 1))
                    x0, y0 = int(r.integers(0, size - s + 1)), int(r.integers(0, size - s + 1))
                    b = np.array([x0, y0, x0 + s, y0 + s], np.float32)
                    if not boxes or box_iou(b, np.array(boxes)).max() < max_iou:
                        break
                else:
                    continue
                k = int(r.integers(0, len(faces)))
                face = np.asarray(Image.fromarray(faces[k]).resize((s, s), Image.BILINEAR), np.float64)
                edge = ramp[np.minimum(np.arange(s), np.arange(s)[::-1])]
                alpha = np.minimum(edge[:, None], edge[None, :])
                canvas[y0:y0 + s, x0:x0 + s] = alpha * face + (1 - alpha) * canvas[y0:y0 + s, x0:x0 + s]
                boxes.append(b)
                labs.append(int(labels[k]))
            images[a + i] = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
            all_boxes.append(np.array(boxes, np.float32).reshape(-1, 4))
            all_labels.append(np.array(labs, np.int64))
    return images, all_boxes, all_labels
