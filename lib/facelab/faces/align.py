"""Similarity alignment: 5 points (eyes, nose tip, mouth corners) onto a canonical template.

The transform is the least-squares similarity of Umeyama (1991): rotation, uniform scale
and translation, never a reflection or shear, so an aligned face keeps its proportions.
Matrices are 2x3 and map image pixel coordinates (x right, y down, pixel centres on
integers) to output pixel coordinates: ``[x', y'] = M[:, :2] @ [x, y] + M[:, 2]``.
"""
from __future__ import annotations

import numpy as np

#: Five reference points in a unit square (x, y in [0, 1]): the image-left eye centre, the
#: image-right eye centre, the nose tip, the image-left and image-right mouth corners.
#: These are the proportions of the widely used 112x112 face-recognition template
#: (a tight crop: brows to chin); ``zoom`` in :func:`template_5` loosens it.
TEMPLATE_5 = np.array([
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
], dtype=np.float64) / 112.0


def _size_hw(size) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    h, w = size
    return int(h), int(w)


def template_5(size=112, zoom: float = 1.0) -> np.ndarray:
    """The (5, 2) template in pixels of a ``size`` (int or (H, W)) output.

    ``zoom < 1`` shrinks the face towards the centre (more context: hair, chin, ears);
    FER crops usually want about 0.8.
    """
    h, w = _size_hw(size)
    t = 0.5 + (TEMPLATE_5 - 0.5) * float(zoom)
    # Pixel centres: the unit square's corners are the outer edges of the corner pixels.
    return t * np.array([w, h]) - 0.5


def umeyama(src: np.ndarray, dst: np.ndarray, *, scale: bool = True,
            weights: np.ndarray | None = None) -> np.ndarray:
    """Least-squares similarity ``dst ~ s R src + t`` for (n, d) point sets; returns (d, d+1).

    Works in any dimension (2-D image points, 3-D meshes). ``R`` is a proper rotation
    (det +1): the SVD's smallest singular direction is flipped when needed, which is what
    keeps a mirrored face from being "aligned" by a reflection.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2:
        raise ValueError(f"umeyama: expected two (n, d) arrays of one shape, got {src.shape} and {dst.shape}")
    n, d = src.shape
    w = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, np.float64) / np.sum(weights)
    mu_s, mu_d = w @ src, w @ dst
    xs, xd = src - mu_s, dst - mu_d
    cov = (xd * w[:, None]).T @ xs
    u, sig, vt = np.linalg.svd(cov)
    fix = np.ones(d)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        fix[-1] = -1.0
    rot = (u * fix) @ vt
    var_s = float(w @ (xs ** 2).sum(1))
    s = float((sig * fix).sum() / var_s) if (scale and var_s > 0) else 1.0
    t = mu_d - s * rot @ mu_s
    return np.concatenate([s * rot, t[:, None]], 1)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a (d, d+1) affine matrix (or a batch (..., d, d+1)) to points (..., n, d)."""
    p = np.asarray(points, np.float64)
    m = np.asarray(matrix, np.float64)
    return np.einsum("...ij,...nj->...ni", m[..., :, :-1], p) + m[..., None, :, -1]


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a (d, d+1) affine matrix, again (d, d+1)."""
    m = np.asarray(matrix, np.float64)
    a_inv = np.linalg.inv(m[..., :, :-1])
    return np.concatenate([a_inv, -(a_inv @ m[..., :, -1:])], -1)


def warp_affine(image: np.ndarray, matrix: np.ndarray, size, *, fill: float = 0.0) -> np.ndarray:
    """Warp an (H, W) or (H, W, C) image with the 2x3 ``matrix`` into a ``size`` output.

    Bilinear sampling through torch (no OpenCV dependency); the dtype is kept (uint8 is
    rounded back). Pixels that fall outside the source get ``fill``.
    """
    import torch
    import torch.nn.functional as F

    img = np.asarray(image)
    if img.ndim not in (2, 3):
        raise ValueError(f"warp_affine: expected an (H, W) or (H, W, C) image, got shape {img.shape}")
    oh, ow = _size_hw(size)
    h, w = img.shape[:2]
    x = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))
    x = x[None, None] if img.ndim == 2 else x.permute(2, 0, 1)[None]
    # Output pixel -> source pixel, then to grid_sample's [-1, 1] (align_corners: the
    # extreme values are the centres of the corner pixels, matching our convention).
    inv = invert_affine(np.asarray(matrix, np.float64))
    v, u = np.meshgrid(np.arange(oh), np.arange(ow), indexing="ij")
    src = np.stack([u.ravel(), v.ravel()], 1) @ inv[:, :2].T + inv[:, 2]
    gx = 2 * src[:, 0] / max(w - 1, 1) - 1
    gy = 2 * src[:, 1] / max(h - 1, 1) - 1
    grid = torch.from_numpy(np.stack([gx, gy], 1).reshape(1, oh, ow, 2).astype(np.float32))
    out = F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=True) + fill
    out = out[0].permute(1, 2, 0).numpy() if img.ndim == 3 else out[0, 0].numpy()
    if img.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.astype(img.dtype if np.issubdtype(img.dtype, np.floating) else np.float32)


def five_from_68(landmarks68: np.ndarray) -> np.ndarray:
    """The template's 5 points from 68 landmarks (..., 68, 2): eye centres, nose tip, mouth corners."""
    p = np.asarray(landmarks68, np.float64)
    return np.stack([p[..., 36:42, :].mean(-2), p[..., 42:48, :].mean(-2),
                     p[..., 30, :], p[..., 48, :], p[..., 54, :]], -2)


def similarity_to_template(five_points: np.ndarray, size=224, *, zoom: float = 1.0,
                           template: np.ndarray | None = None) -> np.ndarray:
    """The 2x3 matrix taking ``five_points`` (5, 2) onto the template at ``size``."""
    pts = np.asarray(five_points, np.float64)
    if pts.shape != (5, 2):
        raise ValueError(f"expected (5, 2) points (eyes, nose, mouth corners), got {pts.shape}")
    dst = template_5(size, zoom) if template is None else np.asarray(template, np.float64)
    return umeyama(pts, dst)


def align_face(image: np.ndarray, five_points: np.ndarray, size=224, *, zoom: float = 1.0,
               template: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Warp ``image`` so that ``five_points`` land on the template; returns (crop, 2x3 matrix).

    Map landmarks into the crop with ``transform_points(landmarks, matrix)`` and back with
    ``invert_affine(matrix)``.
    """
    m = similarity_to_template(five_points, size, zoom=zoom, template=template)
    return warp_affine(np.asarray(image), m, size), m
