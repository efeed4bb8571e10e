"""The public generators: ``faces`` (one face per image, with full ground truth) and
``scenes`` (0-N faces per image, for detectors).

All randomness comes from ``np.random.default_rng(seed)`` (global RNGs are never touched),
so the same arguments give the same bytes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .. import mesh as _mesh
from ..boxes import box_iou
from ..config import progress, torch_threads
from . import backgrounds as B
from . import expressions as E
from . import geometry as G
from . import identity as I
from .render import render

MIN_SIZE = 16
#: Default maximum |pitch|, |yaw|, |roll| in radians.
POSE_RANGE = (0.25, 0.45, 0.2)


@dataclass
class FaceBatch:
    """One face per image. Arrays have first axis n; coordinates are output pixels with pixel
    (r, c) centred at (x=c, y=r)."""

    images: np.ndarray          # (n, H, W, 3) uint8
    label: np.ndarray           # (n,) int: index into expressions.ALL_EXPRESSIONS (0-7 canonical); -1 for given AUs
    expression: list            # (n,) names
    aus: np.ndarray             # (n, 20) float32 ground-truth AU intensities (stronger side), mesh.AU_NAMES order
    aus_right: np.ndarray       # (n, 20) subject's right side
    aus_left: np.ndarray        # (n, 20) subject's left side
    intensity: np.ndarray       # (n,) the prototype scale k
    landmarks468: np.ndarray    # (n, 468, 2)
    landmarks68: np.ndarray     # (n, 68, 2) = landmarks468[:, mesh.MESH68]
    visibility: np.ndarray      # (n, 468) bool
    visibility68: np.ndarray    # (n, 68) bool
    pose: np.ndarray            # (n, 3) pitch, yaw, roll radians (see geometry.rotation)
    box: np.ndarray             # (n, 4) x1, y1, x2, y2 of the 468 landmarks, clipped to the image
    identity: dict              # arrays of identity parameters (identity.sample_identities)
    light: np.ndarray           # (n, 4) light direction xyz + ambient
    background: np.ndarray      # (n,) index into backgrounds.KINDS
    text: list                  # (n,) one-sentence descriptions
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)


def single_thread():
    """Run torch on one thread, then restore the previous setting (see config.torch_threads):
    on a small shared machine two OpenMP threads spin-wait on each other and make each of the
    renderer's many medium-sized ops 10-50x slower than one thread does."""
    return torch_threads(1)


def _check_n_size(n, size) -> None:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n <= 0:
        raise ValueError(f"n must be a positive int (number of samples), got {n!r}")
    if not isinstance(size, (int, np.integer)) or size < MIN_SIZE:
        raise ValueError(f"size must be an int >= {MIN_SIZE} pixels (smaller faces cannot be rasterised "
                         f"meaningfully), got {size!r}")


def _background_ids(backgrounds, n: int, rng: np.random.Generator) -> np.ndarray:
    if backgrounds in ("mixed", None):
        return rng.integers(0, len(B.KINDS), n)
    if backgrounds in B.KINDS:
        return np.full(n, B.KINDS.index(backgrounds))
    raise ValueError(f"unknown backgrounds {backgrounds!r}: expected 'mixed' or one of {', '.join(B.KINDS)}")


def _pose_words(p: np.ndarray) -> str:
    pitch, yaw, roll = np.degrees(p)
    parts = []
    if abs(yaw) >= 8:
        parts.append(f"turned {'slightly ' if abs(yaw) < 18 else ''}to image-{'right' if yaw > 0 else 'left'}")
    if abs(pitch) >= 8:
        parts.append(f"tipped {'down' if pitch > 0 else 'up'}")
    if abs(roll) >= 8:
        parts.append(f"tilted {'counter-clockwise' if roll > 0 else 'clockwise'}")
    return "facing the camera" if not parts else "head " + " and ".join(parts)


def _hair_word(ident: dict, i: int) -> str:
    if ident["has_hair"][i] < 0.5:
        return "no hair"
    rgb = ident["hair_rgb"][i]
    sat = rgb.max() - rgb.min()
    if rgb.mean() > 0.55 and sat < 0.12:
        return "grey hair"
    if rgb.mean() < 0.12:
        return "black hair"
    if rgb[0] > 0.45 and rgb[2] < 0.2:
        return "red hair" if rgb[1] < 0.35 else "blond hair"
    return "brown hair"


def describe(ident: dict, i: int, expression: str, k: float, pose: np.ndarray) -> str:
    """One sentence: age, skin, hair, expression (with strength) and head pose."""
    strength = "subtle" if k < 0.5 else ("clear" if k < 0.85 else "strong")
    expr = expression.replace("_", " ")
    if expression == "custom":
        what = "a custom set of action units"
    else:
        what = "a neutral expression" if expression == "neutral" else f"a {strength} {expr} expression"
    age = int(round(float(ident["age"][i])))
    return (f"A {age}-year-old person with {I.skin_word(float(ident['tone'][i]))} skin and "
            f"{_hair_word(ident, i)} shows {what}, {_pose_words(pose)}.")


def _light(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.stack([rng.uniform(-0.9, 0.9, n), rng.uniform(-0.3, 0.9, n), np.ones(n),
                     rng.uniform(0.25, 0.5, n)], -1).astype(np.float32)


#: Head-pose distributions :func:`faces` knows.
POSE_DISTS = ("uniform", "laplace")


def _sample_pose(rng: np.random.Generator, n: int, pose_range: np.ndarray, dist: str) -> np.ndarray:
    """(n, 3) pitch, yaw, roll: uniform in +-range, or Laplace with the uniform's interquartile
    range (scale range / (2 ln 2)) clipped at +-2 range."""
    if dist == "uniform":
        return (rng.uniform(-1, 1, (n, 3)) * pose_range).astype(np.float32)
    if dist == "laplace":
        return np.clip(rng.laplace(0.0, 1.0, (n, 3)) / (2 * np.log(2)), -2, 2).astype(np.float32) * pose_range
    raise ValueError(f"unknown pose_dist {dist!r}: expected one of {', '.join(POSE_DISTS)}")


def faces(n: int, size: int = 112, expressions=None, seed: int = 0, *, pose_range=POSE_RANGE,
          backgrounds: str = "mixed", intensity=(0.6, 1.0), asymmetry: float = 0.12, jitter: float = 0.15,
          face_scale=(0.62, 0.8), aus: np.ndarray | None = None, identities: dict | None = None,
          supersample: int = 2, batch_size: int = 64, center_offset=(0.0, 0.0), head: bool = True,
          pose_dist: str = "uniform") -> FaceBatch:
    """``n`` centred faces of ``size`` x ``size`` pixels with exact ground truth.

    expressions: names or ids from ``expressions.ALL_EXPRESSIONS`` (None: the 8 canonical
    ones, drawn uniformly); each face gets a new random identity (or ``identities``, a dict
    as from ``identity.sample_identities``), pose uniform in +-``pose_range`` (pitch, yaw,
    roll radians; ``pose_dist="laplace"``: Laplace-distributed with the same interquartile range,
    mostly frontal with a long tail, clipped at twice the range, as real photos are: see
    ``realism.FER_POSE_RANGE``), a random light and a background ("plain", "noise", "clutter" or
    "mixed").
    ``aus`` (n, 20) in [0, 5] bypasses the expression sampler (label -1, "custom").
    ``head`` paints hair, ears and neck behind the face mesh (:mod:`facelab.synth.head`;
    False: the bare face mask of engine versions before synth-3).
    Face width is ``face_scale`` of the image width; the face's pivot sits at the image centre
    plus ``center_offset`` (x, y as fractions of the width; y down) plus a +-4% jitter.
    Deterministic for ``seed``.
    """
    _check_n_size(n, size)
    labels_pool = E.resolve(expressions)
    rng = np.random.default_rng(seed)
    if aus is not None:
        aus = _mesh.check_aus(np.asarray(aus, np.float32), where="faces(aus=...)")
        if aus.shape != (n, 20):
            raise ValueError(f"faces(aus=...): expected shape ({n}, 20), got {aus.shape}")
        labels = np.full(n, -1)
        right = left = aus_gt = aus
        k = np.ones(n, np.float32)
    else:
        labels = labels_pool[rng.integers(0, len(labels_pool), n)]
        right, left, aus_gt, k = E.sample_aus(labels, rng, intensity, asymmetry, jitter)
    ident = I.sample_identities(n, rng) if identities is None else identities
    if len(ident["shape"]) != n:
        raise ValueError(f"identities holds {len(ident['shape'])} identities, expected n={n}")
    pose = _sample_pose(rng, n, np.asarray(pose_range, np.float32), pose_dist)
    pose = E.head_pose(pose, labels, k)  # the head position that goes with the expression (FACS head codes)
    frac = rng.uniform(*face_scale, n)
    scale = (frac * size / 175.0).astype(np.float32)
    center = (size / 2 + (np.asarray(center_offset, np.float32) + rng.uniform(-0.04, 0.04, (n, 2))) * size
              ).astype(np.float32)
    light = _light(n, rng)
    bg_ids = _background_ids(backgrounds, n, rng)
    bg_seed = int(rng.integers(0, 2**63))
    meshes = G.face_meshes(right, left, ident["shape"])
    out = _render_chunks(meshes, ident, pose, scale, center, light, bg_ids, size, supersample, batch_size, bg_seed,
                         (right, left), head)
    names = ["custom" if l < 0 else E.ALL_EXPRESSIONS[l] for l in labels]
    lm = out["landmarks"]
    box = np.concatenate([lm.min(1), lm.max(1)], -1).clip(0, size - 1).astype(np.float32)
    text = [describe(ident, i, names[i], float(k[i]), pose[i]) for i in range(n)]
    return FaceBatch(images=out["images"], label=labels.astype(np.int64), expression=names, aus=aus_gt,
                     aus_right=right, aus_left=left, intensity=k, landmarks468=lm,
                     landmarks68=lm[:, _mesh.MESH68], visibility=out["visible"],
                     visibility68=out["visible"][:, _mesh.MESH68], pose=pose, box=box, identity=ident,
                     light=light, background=bg_ids, text=text, meta={"seed": seed, "size": size})


def _render_chunks(meshes, ident, pose, scale, center, light, bg_ids, size, supersample, batch_size, bg_seed,
                   aus=None, head=False):
    n = len(meshes)
    imgs, lms, vis = [], [], []
    bg_rng = np.random.default_rng(bg_seed)
    with torch.inference_mode(), single_thread():
        for a in progress(range(0, n, batch_size), desc=f"rendering {n} faces"):
            sl = slice(a, min(n, a + batch_size))
            bg = B.backgrounds(bg_ids[sl], size * supersample, size * supersample, bg_rng)
            r = render(meshes[sl], I.take(ident, sl), pose[sl], scale[sl], center[sl], light[sl], bg, size,
                       supersample=supersample, aus=None if aus is None else (aus[0][sl], aus[1][sl]), head=head)
            imgs.append(r.images)
            lms.append(r.landmarks)
            vis.append(r.visible)
    return {"images": np.concatenate(imgs), "landmarks": np.concatenate(lms), "visible": np.concatenate(vis)}


# ---------------------------------------------------------------- scenes
@dataclass
class SceneBatch:
    """Images with 0..max_faces faces each. ``boxes[i]`` is (k_i, 4) x1, y1, x2, y2 pixels,
    ``labels[i]`` (k_i,) expression ids, ``landmarks68[i]`` (k_i, 68, 2), ``poses[i]`` (k_i, 3)
    pitch, yaw, roll radians (the expression's head position included, as in :func:`faces`)."""

    images: np.ndarray
    boxes: list
    labels: list
    landmarks68: list
    poses: list
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)


def scenes(n: int, size=160, max_faces: int = 4, seed: int = 0, *, min_faces: int = 0, expressions=None,
           face_frac=(0.12, 0.5), max_iou: float = 0.15, pose_range=POSE_RANGE, backgrounds: str = "mixed",
           supersample: int = 2, batch_size: int = 32) -> SceneBatch:
    """``n`` images of ``size`` (int or (H, W)) with ``min_faces..max_faces`` faces each, at
    widths ``face_frac`` of the shorter side, placed fully inside the image and overlapping
    earlier faces' boxes by at most ``max_iou``; bigger faces are nearer (drawn last)."""
    hw = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    _check_n_size(n, min(hw))
    if not isinstance(max_faces, (int, np.integer)) or max_faces < 0 or not 0 <= min_faces <= max_faces:
        raise ValueError(f"need 0 <= min_faces <= max_faces (ints), got min_faces={min_faces!r}, max_faces={max_faces!r}")
    H, W = hw
    rng = np.random.default_rng(seed)
    pool = E.resolve(expressions)
    counts = rng.integers(min_faces, max_faces + 1, n)
    slots = max(int(counts.max()), 1) if n else 1
    # place faces: rejection sampling on approximate boxes (face ~175 x 195 model units)
    scale = np.zeros((n, slots), np.float32)
    center = np.full((n, slots, 2), -10.0 * max(H, W), np.float32)
    for i in range(n):
        boxes = []
        for j in range(counts[i]):
            for _ in range(30):
                w = rng.uniform(*face_frac) * min(H, W)
                h = w * 1.15
                cx, cy = rng.uniform(w / 2 + 1, W - w / 2 - 1), rng.uniform(h / 2 + 1, H - h / 2 - 1)
                b = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
                if not boxes or box_iou(b, np.array(boxes)).max() <= max_iou:
                    boxes.append(b)
                    scale[i, j] = w / 175.0 * 0.95
                    center[i, j] = (cx, cy)
                    break
        # smaller (farther) faces first so nearer ones are painted over them
    order = np.argsort(scale, 1)
    scale = np.take_along_axis(scale, order, 1)
    center = np.take_along_axis(center, order[..., None], 1)
    labels = pool[rng.integers(0, len(pool), (n, slots))]
    right, left, _, k = E.sample_aus(labels.reshape(-1), rng)
    ident = I.sample_identities(n * slots, rng)
    pose = _sample_pose(rng, n * slots, np.asarray(pose_range, np.float32), "uniform")
    pose = E.head_pose(pose, labels.reshape(-1), k)  # as in faces(): a sad face looks down here too
    light = _light(n * slots, rng)
    bg_ids = _background_ids(backgrounds, n, rng)
    bg_rng = np.random.default_rng(int(rng.integers(0, 2**63)))
    meshes = G.face_meshes(right, left, ident["shape"]).reshape(n, slots, G.N, 3)
    pose, light = pose.reshape(n, slots, 3), light.reshape(n, slots, 4)
    s = supersample
    images, out_boxes, out_labels, out_lm, out_pose = [], [], [], [], []
    with torch.inference_mode(), single_thread():
        for a in range(0, n, batch_size):
            sl = np.arange(a, min(n, a + batch_size))
            canvas = B.backgrounds(bg_ids[sl], H * s, W * s, bg_rng)
            lm_all = []
            for j in range(slots):
                idx = sl * slots + j
                r = render(meshes[sl, j], I.take(ident, idx), pose[sl, j], scale[sl, j], center[sl, j],
                           light[sl, j], canvas, (H, W), supersample=s, keep_supersampled=True,
                           aus=(right[idx], left[idx]))
                canvas = r.supersampled
                lm_all.append(r.landmarks)
            img = canvas.reshape(len(sl), H, s, W, s, 3).mean((2, 4))
            images.append((img * 255 + 0.5).clamp(0, 255).to(torch.uint8).numpy())
            for k, i in enumerate(sl):
                present = scale[i] > 0
                lms = np.stack([lm_all[j][k] for j in range(slots)])[present]
                bx = np.concatenate([lms.min(1), lms.max(1)], -1) if len(lms) else np.zeros((0, 4))
                bx[:, [0, 2]] = bx[:, [0, 2]].clip(0, W - 1)
                bx[:, [1, 3]] = bx[:, [1, 3]].clip(0, H - 1)
                out_boxes.append(bx.astype(np.float32))
                out_labels.append(labels[i][present].astype(np.int64))
                out_lm.append(lms[:, _mesh.MESH68].astype(np.float32))
                out_pose.append(pose[i][present].astype(np.float32))
    return SceneBatch(images=np.concatenate(images), boxes=out_boxes, labels=out_labels, landmarks68=out_lm,
                      poses=out_pose, meta={"seed": seed, "size": hw})
