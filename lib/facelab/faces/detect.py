"""Face detection with MTCNN (Zhang et al. 2016), whose weights ship in ``facenet-pytorch``.

We only use ``facenet_pytorch.models.mtcnn``: the three small networks and their cascade.
The package is installed with ``--no-deps`` (its metadata pins old torch versions), so
this module touches nothing else of it. Its ``detect`` returns object-dtype arrays on new
numpy; :func:`detect` turns them into plain float arrays sorted by score.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np


class Detections(NamedTuple):
    """``boxes`` (n, 4) x0, y0, x1, y1; ``scores`` (n,); ``points`` (n, 5, 2): image-left eye,
    image-right eye, nose tip, image-left and image-right mouth corners (pixels)."""

    boxes: np.ndarray
    scores: np.ndarray
    points: np.ndarray


def _empty() -> Detections:
    return Detections(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2), np.float32))


def load_rgb(image) -> np.ndarray:
    """A path, PIL image or (H, W, 3) array -> (H, W, 3) uint8 RGB array."""
    from PIL import Image

    if isinstance(image, (str, Path)):
        with Image.open(image) as im:
            return np.asarray(im.convert("RGB"))
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, -1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {arr.shape}")
    arr = arr[..., :3]
    if arr.dtype != np.uint8:
        # Floats in [0, 1] are the other common convention; anything else is clipped.
        arr = np.clip(arr * (255.0 if arr.max(initial=0) <= 1.0 else 1.0), 0, 255).round().astype(np.uint8)
    return arr


@lru_cache(maxsize=4)
def _mtcnn(min_face_size: int, device: str):
    try:
        from facenet_pytorch.models.mtcnn import MTCNN
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("facelab.faces.detect needs facenet-pytorch (its MTCNN weights): "
                          "pip install --no-deps facenet-pytorch") from e
    # keep_all: every face, not only the largest; post_process is for its crops, unused here.
    return MTCNN(keep_all=True, min_face_size=min_face_size, device=device, post_process=False)


def detect(image, *, min_score: float = 0.9, min_face_size: int = 20, device: str = "cpu") -> Detections:
    """Detect faces in one RGB image (path, PIL image or (H, W, 3) array).

    Returns :class:`Detections` sorted by descending score; empty arrays when none.
    """
    import torch

    rgb = load_rgb(image)
    with torch.no_grad():
        boxes, scores, points = _mtcnn(int(min_face_size), str(device)).detect(rgb, landmarks=True)
    if boxes is None or len(boxes) == 0:
        return _empty()
    boxes = np.asarray(np.asarray(boxes).tolist(), np.float32).reshape(-1, 4)
    scores = np.asarray(np.asarray(scores).tolist(), np.float32).reshape(-1)
    points = np.asarray(np.asarray(points).tolist(), np.float32).reshape(-1, 5, 2)
    keep = scores >= min_score
    order = np.argsort(-scores[keep], kind="stable")
    return Detections(boxes[keep][order], scores[keep][order], points[keep][order])
