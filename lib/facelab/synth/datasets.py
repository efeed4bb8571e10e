"""torch Datasets over the generators, cached on disk by a content hash of their parameters.

The cache lives under ``facelab.config.cache_dir()/synth``; a file is written to a
temporary name and moved into place with ``os.replace``, so concurrent or interrupted runs
never see half-written data.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..cache import atomic_write
from ..config import cache_dir
from .generators import faces, scenes

#: Bump when rendering changes so stale caches are not reused.
CACHE_VERSION = "synth-11"  # synth-2: calibrated expressions, AU boosts and shading cues; synth-3: hair, ears and neck, sad head pose; synth-4: AU25 parts the lips, refitted negative prototypes; synth-5: sad, surprise, fear, disgust, anger refitted against four critics; synth-6: darker eye whites and sockets; synth-7: sad, fear, disgust refitted over a wide AU set within mesh fold limits; synth-8: deeper nose, nasolabial, forehead and marionette cues (issue 21); synth-9: disgust's outer brows raised to AU02 4.5; synth-10: sad and happy heads tilt (roll) more, as FER2013's do; synth-11: scenes() take the expression head pose too (faces() unchanged)


def _key(kind: str, params: dict) -> str:
    blob = json.dumps({"kind": kind, "version": CACHE_VERSION, **params}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def cache_path(kind: str, params: dict) -> Path:
    d = cache_dir() / "synth"
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{kind}-{_key(kind, params)}.npz"


def _save_atomic(path: Path, arrays: dict) -> None:
    atomic_write(path, lambda f: np.savez(f, **arrays))


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


def _load_or_build(kind: str, params: dict, cache: bool, build) -> tuple[dict, Path | None]:
    path = cache_path(kind, params) if cache else None
    if path is not None and path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}, path
    arrays = build()
    if path is not None:
        _save_atomic(path, arrays)
    return arrays, path


def _frames_tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float() / 255.0


class SynthVideos(Dataset):
    """``videos(n, frames, fps, seed, size=size, **kw)`` as a Dataset of dicts: ``frames``
    (T, 3, H, W) float in [0, 1], ``aus`` (T, 20), ``pose`` (T, 3), ``landmarks68`` (T, 68, 2),
    ``caption`` (str) and ``events`` (list of dicts). Cached like :class:`SynthFaces`."""

    def __init__(self, n: int, frames: int = 16, fps: float = 25, size: int = 64, seed: int = 0,
                 cache: bool = True, **kw):
        from .videos import videos

        def build():
            b = videos(n, frames, fps, seed=seed, size=size, **kw)
            return {"frames": b.frames, "aus": b.aus, "pose": b.pose, "landmarks68": b.landmarks68,
                    "captions": np.array(b.captions), "events": np.array([json.dumps(e) for e in b.events]),
                    "has_distractor": b.has_distractor}

        params = {"n": n, "frames": frames, "fps": fps, "size": size, "seed": seed, **kw}
        self.arrays, self.path = _load_or_build("videos", params, cache, build)
        self.captions = [str(c) for c in self.arrays["captions"]]
        self.events = [json.loads(str(e)) for e in self.arrays["events"]]

    def __len__(self) -> int:
        return len(self.arrays["frames"])

    def __getitem__(self, i: int) -> dict:
        a = self.arrays
        return {"frames": _frames_tensor(a["frames"][i]), "aus": torch.from_numpy(a["aus"][i]),
                "pose": torch.from_numpy(a["pose"][i]), "landmarks68": torch.from_numpy(a["landmarks68"][i]),
                "caption": self.captions[i], "events": self.events[i]}


def _audio_key(audio):
    """A content key for the ``audio`` argument: files by path, size and mtime; arrays by hash."""
    if audio is None:
        return None
    if isinstance(audio, np.ndarray):
        return "sha256:" + hashlib.sha256(np.ascontiguousarray(audio, np.float32).tobytes()).hexdigest()
    paths = [audio] if isinstance(audio, (str, os.PathLike)) else list(audio)
    out = []
    for p in paths:
        st = os.stat(p) if os.path.exists(p) else None
        out.append([os.fspath(p), st.st_size if st else None, st.st_mtime_ns if st else None])
    return out


class SynthDyads(Dataset):
    """``dyads(n, frames, fps, audio, seed, size=size, **kw)`` as a Dataset of dicts:
    ``speaker_frames`` / ``listener_frames`` (T, 3, H, W), ``speaker_aus`` / ``listener_aus``
    (T, 20), ``speaker_pose`` / ``listener_pose`` (T, 3), ``envelope`` (T,), ``delay_frames``."""

    def __init__(self, n: int, frames: int = 50, fps: float = 25, audio=None, size: int = 64, seed: int = 0,
                 cache: bool = True, **kw):
        from .dyads import dyads

        def build():
            b = dyads(n, frames, fps, audio, seed=seed, size=size, **kw)
            return {"speaker_frames": b.speaker_frames, "listener_frames": b.listener_frames,
                    "speaker_aus": b.speaker_aus, "listener_aus": b.listener_aus, "speaker_pose": b.speaker_pose,
                    "listener_pose": b.listener_pose, "envelope": b.envelope, "audio": b.audio,
                    "delay_frames": np.array(b.delay_frames)}

        params = {"n": n, "frames": frames, "fps": fps, "audio": _audio_key(audio), "size": size, "seed": seed, **kw}
        self.arrays, self.path = _load_or_build("dyads", params, cache, build)
        self.delay_frames = int(self.arrays["delay_frames"])

    def __len__(self) -> int:
        return len(self.arrays["envelope"])

    def __getitem__(self, i: int) -> dict:
        a = self.arrays
        out = {k: torch.from_numpy(a[k][i]) for k in ("speaker_aus", "listener_aus", "speaker_pose", "listener_pose",
                                                       "envelope")}
        if a["speaker_frames"].shape[2]:
            out["speaker_frames"] = _frames_tensor(a["speaker_frames"][i])
            out["listener_frames"] = _frames_tensor(a["listener_frames"][i])
        out["delay_frames"] = self.delay_frames
        return out


class SynthSDF(Dataset):
    """SDF samples of ``n_identities`` random identities (from ``seed``) x ``expressions``:
    item ``k`` is identity ``k // len(expressions)`` showing expression ``k % len(expressions)``,
    a dict of ``points`` (P, 3), ``sdf`` (P,), ``normals`` (P, 3), ``kind`` (P,), ``uv`` (P, 2),
    ``rgb`` (P, 3), ``identity_index``, ``expression_index``, ``aus`` (20,). Normalised
    coordinates (see :func:`facelab.synth.sdf.sdf_samples`)."""

    KEYS = ("points", "sdf", "normals", "kind", "uv", "rgb")

    def __init__(self, n_identities: int = 4, expressions=("neutral",), points: int = 16384, seed: int = 0,
                 cache: bool = True, **kw):
        from . import identity as I
        from .expressions import ALL_EXPRESSIONS, resolve
        from .sdf import sdf_samples

        if not isinstance(n_identities, (int, np.integer)) or n_identities <= 0:
            raise ValueError(f"n_identities must be a positive int, got {n_identities!r}")
        exprs = [ALL_EXPRESSIONS[i] for i in resolve(list(expressions) if not isinstance(expressions, str) else expressions)]
        self.expressions = exprs

        def build():
            ident = I.sample_identities(n_identities, np.random.default_rng(seed))
            per = {k: [] for k in self.KEYS + ("aus", "scale", "center")}
            for i in range(n_identities):
                for j, e in enumerate(exprs):
                    s = sdf_samples(I.take(ident, [i]), e, points, seed=seed * 1000 + i * len(exprs) + j, **kw)
                    for k in self.KEYS + ("aus", "center"):
                        per[k].append(getattr(s, k))
                    per["scale"].append(s.scale)
            return {k: np.stack(v) for k, v in per.items()}

        params = {"n_identities": n_identities, "expressions": exprs, "points": points, "seed": seed, **kw}
        self.arrays, self.path = _load_or_build("sdf", params, cache, build)

    def __len__(self) -> int:
        return len(self.arrays["points"])

    def __getitem__(self, k: int) -> dict:
        a = self.arrays
        out = {key: torch.from_numpy(a[key][k]) for key in self.KEYS + ("aus",)}
        out["identity_index"] = k // len(self.expressions)
        out["expression_index"] = k % len(self.expressions)
        return out
