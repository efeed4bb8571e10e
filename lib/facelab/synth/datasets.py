"""torch Datasets over the generators, cached on disk by a content hash of their parameters.

The cache lives under ``facelab.config.cache_dir()/synth``; a file is written to a
temporary name and moved into place with ``os.replace``, so concurrent or interrupted runs
never see half-written data.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..config import cache_dir
from .generators import faces, scenes

#: Bump when rendering changes so stale caches are not reused.
CACHE_VERSION = "synth-1"


def _key(kind: str, params: dict) -> str:
    blob = json.dumps({"kind": kind, "version": CACHE_VERSION, **params}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def cache_path(kind: str, params: dict) -> Path:
    d = cache_dir() / "synth"
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{kind}-{_key(kind, params)}.npz"


def _save_atomic(path: Path, arrays: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class SynthFaces(Dataset):
    """``faces(n, size, expressions, seed, **kw)`` as a Dataset of dicts:
    ``image`` (3, H, W) float in [0, 1], ``label``, ``aus`` (20,), ``landmarks68`` (68, 2),
    ``box`` (4,), ``pose`` (3,). With ``cache=True`` the arrays are stored once per parameter set."""

    def __init__(self, n: int, size: int = 64, expressions=None, seed: int = 0, cache: bool = True,
                 transform=None, **kw):
        params = {"n": n, "size": size, "expressions": expressions, "seed": seed, **kw}
        self.path = cache_path("faces", params) if cache else None
        if self.path is not None and self.path.exists():
            with np.load(self.path) as z:
                self.arrays = {k: z[k] for k in z.files}
        else:
            b = faces(n, size, expressions, seed=seed, **kw)
            self.arrays = {"images": b.images, "label": b.label, "aus": b.aus, "landmarks68": b.landmarks68,
                           "box": b.box, "pose": b.pose}
            if self.path is not None:
                _save_atomic(self.path, self.arrays)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.arrays["images"])

    def __getitem__(self, i: int) -> dict:
        a = self.arrays
        img = torch.from_numpy(a["images"][i]).permute(2, 0, 1).float() / 255.0
        if self.transform is not None:
            img = self.transform(img)
        return {"image": img, "label": int(a["label"][i]), "aus": torch.from_numpy(a["aus"][i]),
                "landmarks68": torch.from_numpy(a["landmarks68"][i]), "box": torch.from_numpy(a["box"][i]),
                "pose": torch.from_numpy(a["pose"][i])}


class SynthScenes(Dataset):
    """``scenes(...)`` as a Dataset: ``image`` (3, H, W), ``boxes`` (k, 4), ``labels`` (k,)."""

    def __init__(self, n: int, size=160, max_faces: int = 4, seed: int = 0, cache: bool = True, **kw):
        params = {"n": n, "size": size, "max_faces": max_faces, "seed": seed, **kw}
        self.path = cache_path("scenes", params) if cache else None
        if self.path is not None and self.path.exists():
            with np.load(self.path) as z:
                arr = {k: z[k] for k in z.files}
        else:
            b = scenes(n, size, max_faces, seed=seed, **kw)
            counts = np.array([len(x) for x in b.boxes])
            arr = {"images": b.images, "counts": counts,
                   "boxes": np.concatenate(b.boxes) if counts.sum() else np.zeros((0, 4), np.float32),
                   "labels": np.concatenate(b.labels) if counts.sum() else np.zeros(0, np.int64)}
            if self.path is not None:
                _save_atomic(self.path, arr)
        self.images = arr["images"]
        starts = np.concatenate([[0], np.cumsum(arr["counts"])])
        self.boxes = [arr["boxes"][starts[i]:starts[i + 1]] for i in range(len(self.images))]
        self.labels = [arr["labels"][starts[i]:starts[i + 1]] for i in range(len(self.images))]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        img = torch.from_numpy(self.images[i]).permute(2, 0, 1).float() / 255.0
        return {"image": img, "boxes": torch.from_numpy(self.boxes[i]), "labels": torch.from_numpy(self.labels[i])}
