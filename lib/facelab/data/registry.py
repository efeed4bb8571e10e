"""One entry point for every reader, and the splits notebooks need.

``facelab.data.open("fer2013", root, "train")`` returns the same reader object as
``FER2013Folder(root, "train")``; notebooks name a dataset by a string parameter, so they go
through this table instead of keeping their own. Keyword arguments go to the reader.
:func:`load_arrays` reads a split into uint8 arrays at one size (with progress), and
:func:`stratified_split` / :func:`per_class_subset` cut labelled sets the same way everywhere.
"""
from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from ..config import ConfigError

__all__ = ["READERS", "open", "load_arrays", "stratified_split", "per_class_subset"]


def _readers() -> dict[str, tuple[Callable[..., Any], bool]]:
    # name -> (reader class, takes a split); imported here so the table lists the real classes
    from . import (CK48Folder, CKPlus, FaceScapeTU, FER2013CSV, SFEW, AffectNet, AffectNetCSV, FER2013Folder, Landmarks300W,
                   RAFDB, RAFDBDetection, SFEWDetection)

    return {"fer2013": (FER2013Folder, True), "fer2013_csv": (FER2013CSV, True), "rafdb": (RAFDB, True),
            "rafdb_detection": (RAFDBDetection, True), "affectnet": (AffectNet, True),
            "affectnet_csv": (AffectNetCSV, True), "sfew": (SFEW, True), "sfew_detection": (SFEWDetection, False),
            "ckplus": (CKPlus, False), "ck48": (CK48Folder, False), "landmarks300w": (Landmarks300W, False),
            "facescape": (FaceScapeTU, False)}


READERS = tuple(sorted(("fer2013", "fer2013_csv", "rafdb", "rafdb_detection", "affectnet", "affectnet_csv",
                        "sfew", "sfew_detection", "ckplus", "ck48", "landmarks300w", "facescape")))


def open(name: str, root: str | os.PathLike, split: str | None = None, **kwargs):  # noqa: A001 (the issue's name)
    """The reader for dataset ``name`` at ``root`` (its official layout), split ``split``.

    Datasets without splits (CK+, CK+48, 300-W, an SFEW detection list) take ``split=None``."""
    table = _readers()
    if name not in table:
        raise ConfigError(f"dataset {name!r}: expected one of {', '.join(READERS)}")
    reader, has_split = table[name]
    if root is None:
        raise ConfigError(f"dataset {name!r}: no root given (the folder in {reader.__name__}'s official layout)")
    if not has_split:
        if split not in (None, "all"):
            raise ConfigError(f"dataset {name!r} has no splits; got split={split!r} (pass None)")
        return reader(root, **kwargs)
    return reader(root, split, **kwargs) if split is not None else reader(root, **kwargs)


def load_arrays(ds, size: int | None = None, *, classes=None, limit: int | None = None, seed: int = 0,
                rgb: bool = True, desc: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (n, size, size, 3|), labels int64 (n,))`` of a reader.

    ``classes``: keep only these canonical ids; ``limit``: a seeded random subset of that many
    (sorted, so file order is kept); ``size``: bilinear resize (None: the stored size, which must
    then be one size for all). Images are decoded one by one with a progress bar."""
    from PIL import Image
    from tqdm.auto import tqdm

    labels = np.asarray(ds.labels, np.int64)
    keep = np.arange(len(labels)) if classes is None else np.flatnonzero(np.isin(labels, list(classes)))
    if limit is not None and len(keep) > limit:
        keep = np.sort(np.random.default_rng(seed).choice(keep, int(limit), replace=False))
    images = []
    for i in tqdm(keep, desc=desc or f"reading {getattr(ds, 'name', type(ds).__name__)}", leave=False):
        img = ds.load_image(int(i))
        img = img.convert("RGB" if rgb else "L")
        if size is not None:
            img = img.resize((size, size), Image.BILINEAR)
        images.append(np.asarray(img, np.uint8))
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise ValueError(f"load_arrays: images differ in size {sorted(shapes)[:3]}...; pass size=")
    empty = (0, size or 0, size or 0, 3) if rgb else (0, size or 0, size or 0)
    return (np.stack(images) if images else np.zeros(empty, np.uint8)), labels[keep]


def stratified_split(labels, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(first, second)``: per class, a seeded ``fraction`` of its items (rounded down,
    at least one when the class has two or more) go to ``first``, the rest to ``second``."""
    labels = np.asarray(labels)
    if not 0 < fraction < 1:
        raise ValueError(f"stratified_split: fraction must be in (0, 1), got {fraction!r}")
    rng = np.random.default_rng(seed)
    first, second = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(len(idx) * fraction)
        if len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        first.append(idx[:k])
        second.append(idx[k:])
    return np.sort(np.concatenate(first)).astype(np.int64), np.sort(np.concatenate(second)).astype(np.int64)


def per_class_subset(labels, max_per_class: int, seed: int | None = None) -> np.ndarray:
    """Sorted indices of at most ``max_per_class`` items of every class: the first ones in file
    order (``seed=None``) or a seeded random choice."""
    labels = np.asarray(labels)
    if int(max_per_class) < 1:
        raise ValueError(f"per_class_subset: max_per_class must be >= 1, got {max_per_class!r}")
    rng = None if seed is None else np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        keep.append(idx[:max_per_class] if rng is None else rng.permutation(idx)[:max_per_class])
    return np.sort(np.concatenate(keep)).astype(np.int64)
