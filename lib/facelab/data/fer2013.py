"""FER2013 (Goodfellow et al., ICML 2013 challenge) and its FERPlus relabelling (Barsoum et al. 2016).

Three forms are read as published:

* :class:`FER2013Folder` - the image-folder copy ``<root>/<split>/<class>/*.jpg``;
* :class:`FER2013CSV` - the Kaggle ``fer2013.csv`` (``emotion,pixels,Usage``);
* :class:`FERPlus` - ``fer2013new.csv`` vote counts on the same images, with majority-vote or
  probability labels over eight classes.

All three default to ``mode="L"``: FER2013 is 48x48 grey; pass ``mode="RGB"`` for 3-channel models.
"""
from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ..config import BASIC7, EXPRESSIONS, ConfigError, cache_dir
from .base import (FaceDataset, FileImageDataset, LoadReport, _save_npz_atomic, check_image,
                   folder_samples, layout_error, open_image, require_dir)

#: FER2013 emotion ids (0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad, 5 Surprise, 6 Neutral) -> canonical.
FER2013_TO_CANONICAL = {0: 6, 1: 5, 2: 4, 3: 1, 4: 2, 5: 3, 6: 0}
#: Class folder names of the image-folder layout -> canonical names.
FER2013_FOLDERS = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happy",
                   "neutral": "neutral", "sad": "sad", "surprise": "surprise"}
#: ``Usage`` values of fer2013.csv, and the split names that select them.
FER2013_USAGE = {"train": "Training", "training": "Training",
                 "publictest": "PublicTest", "val": "PublicTest", "valid": "PublicTest",
                 "privatetest": "PrivateTest", "test": "PrivateTest"}
#: Vote columns of fer2013new.csv (FERPlus) -> canonical names; ``unknown`` and ``NF`` are not classes.
FERPLUS_COLUMNS = {"neutral": "neutral", "happiness": "happy", "surprise": "surprise",
                   "sadness": "sad", "anger": "anger", "disgust": "disgust", "fear": "fear",
                   "contempt": "contempt"}
FERPLUS_NONCLASS = ("unknown", "NF")

FER2013_SIDE = 48

FOLDER_TREE = """\
<root>/
  <split>/                  e.g. train, publictest (or test, val)
    angry/  *.jpg
    disgust/ fear/ happy/ neutral/ sad/ surprise/
"""
CSV_TREE = """\
fer2013.csv                 header: emotion,pixels,Usage
  emotion  0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad, 5 Surprise, 6 Neutral
  pixels   2304 space-separated grey values (48x48, row-major)
  Usage    Training | PublicTest | PrivateTest
"""
FERPLUS_TREE = """\
fer2013new.csv              header: Usage,Image name,neutral,happiness,surprise,sadness,anger,
                                    disgust,fear,contempt,unknown,NF  (one row per fer2013.csv row)
plus the images: fer2013.csv (fer2013_csv=...) or a folder of the named PNGs (image_dir=...,
                 searched in image_dir/ and image_dir/FER2013{Train,Valid,Test}/)
"""


class FER2013Folder(FileImageDataset):
    """FER2013 as ``<root>/<split>/<class>/*.jpg``; items are ``(PIL image, canonical label)``.

    >>> ds = FER2013Folder(root, "train", in_memory=True)      # doctest: +SKIP
    >>> ds.class_counts()["happy"]                               # doctest: +SKIP
    7215
    """

    name = "FER2013"

    def __init__(self, root: str | os.PathLike, split: str = "train", *,
                 transform: Callable | None = None, mode: str | None = "L", verify: str = "quick",
                 in_memory: bool = False) -> None:
        super().__init__(transform=transform, mode=mode, verify=verify, in_memory=in_memory)
        root = Path(root).expanduser()
        self.root, self.split = root, split
        require_dir(root, self.name, root, FOLDER_TREE)
        split_dir = _find_dir(root, split)
        if split_dir is None:
            subdirs = sorted(p.name for p in root.iterdir() if p.is_dir())
            hint = (" - root looks like a split folder itself: pass its parent"
                    if {s.lower() for s in subdirs} & set(FER2013_FOLDERS) else "")
            raise layout_error(self.name, root, f"no split folder {split!r} (found {subdirs}){hint}",
                               FOLDER_TREE)
        samples = folder_samples(split_dir, FER2013_FOLDERS, dataset=self.name, tree=FOLDER_TREE,
                                 report=self._report)
        self._set_samples(samples)
        self.classes = BASIC7
        self._finish()


def _find_dir(root: Path, name: str) -> Path | None:
    for child in sorted(root.iterdir()):
        if child.is_dir() and child.name.lower() == name.lower():
            return child
    return None


def _resolve_csv(path: str | os.PathLike, filename: str, dataset: str, tree: str) -> Path:
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / filename
    if not p.is_file():
        raise layout_error(dataset, path, f"missing file {p}", tree)
    return p


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:24]


def _read_csv_rows(path: Path, dataset: str, required: tuple[str, ...], tree: str) -> list[dict]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise layout_error(dataset, path, "the CSV file is empty", tree) from None
        missing = [c for c in required if c not in header]
        if missing:
            raise layout_error(dataset, path, f"CSV columns {missing} missing (header: {header})", tree)
        return [dict(zip(header, row)) for row in reader]


def _parse_pixels(text: str) -> np.ndarray | None:
    values = text.split()
    if len(values) != FER2013_SIDE * FER2013_SIDE:
        return None
    try:
        arr = np.asarray(values, dtype=np.int32)
    except ValueError:
        return None
    if arr.min() < 0 or arr.max() > 255:
        return None
    return arr.astype(np.uint8).reshape(FER2013_SIDE, FER2013_SIDE)


class _ArrayDataset(FaceDataset):
    """Images held as a uint8 array ``(N, 48, 48)``; items convert to ``mode`` on the fly."""

    images: np.ndarray

    def load_image(self, index: int) -> Image.Image:
        return self._convert(Image.fromarray(self.images[index], mode="L"))

    def as_arrays(self, **_: object) -> tuple[np.ndarray, np.ndarray]:
        """``(images uint8 (N,48,48), labels int64 (N,))``; the CSV already is the array."""
        return self.images, self.labels


def _fer_csv_arrays(path: Path, dataset: str, report: LoadReport, cache: bool
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All rows of fer2013.csv as ``(images, fer ids, usage, row numbers)``; bad rows counted.

    Parsing 36k rows of text takes seconds, so the result is cached under ``cache_dir()/data``
    by the CSV's sha256 (written atomically).
    """
    cache_path = cache_dir() / "data" / f"fer2013csv-{_file_digest(path)}.npz"
    loaded = _load_npz_full(cache_path) if cache else None
    if loaded is None:
        rows = _read_csv_rows(path, dataset, ("emotion", "pixels"), CSV_TREE)
        images, ids, usage, rownum, bad = [], [], [], [], []
        for i, row in enumerate(rows):
            arr = _parse_pixels(row.get("pixels", ""))
            try:
                emotion = int(row["emotion"])
            except (TypeError, ValueError):
                emotion = -1
            if arr is None or emotion not in FER2013_TO_CANONICAL:
                bad.append(i)
                continue
            images.append(arr)
            ids.append(emotion)
            usage.append((row.get("Usage") or "").strip())
            rownum.append(i)
        loaded = {"images": np.stack(images) if images else np.zeros((0, 48, 48), np.uint8),
                  "ids": np.asarray(ids, dtype=np.int64), "usage": np.asarray(usage, dtype=str),
                  "rows": np.asarray(rownum, dtype=np.int64), "bad": np.asarray(bad, dtype=np.int64),
                  "n_rows": np.asarray(len(rows))}
        if cache:
            _save_npz_atomic(cache_path, **loaded)
    report.n_listed = int(loaded["n_rows"])
    report.corrupt.extend(f"{path.name} line {int(i) + 2}" for i in loaded["bad"])  # +2: header, 1-based
    return loaded["images"], loaded["ids"], loaded["usage"], loaded["rows"]


def _load_npz_full(path: Path) -> dict[str, np.ndarray] | None:
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception:  # a damaged cache entry is rebuilt, never trusted
        path.unlink(missing_ok=True)
        return None


def _usage_for(split: str | None, dataset: str) -> str | None:
    if split is None:
        return None
    key = split.replace("_", "").replace("-", "").lower()
    if key not in FER2013_USAGE:
        raise ConfigError(f"{dataset}: unknown split {split!r}: expected one of "
                          f"{', '.join(sorted(FER2013_USAGE))} or None for all rows")
    return FER2013_USAGE[key]


class FER2013CSV(_ArrayDataset):
    """FER2013 from the Kaggle ``fer2013.csv``; items are ``(PIL image, canonical label)``.

    ``path`` is the CSV or a folder holding ``fer2013.csv``. ``split``: ``train`` (Training),
    ``publictest``/``val`` (PublicTest), ``privatetest``/``test`` (PrivateTest), or ``None``
    (every row). Rows with a bad pixel string or emotion id are counted as corrupt. The whole
    CSV is held in memory (about 80 MB); ``.images`` is the uint8 ``(N, 48, 48)`` array.
    """

    name = "FER2013 csv"

    def __init__(self, path: str | os.PathLike, split: str | None = "train", *,
                 transform: Callable | None = None, mode: str | None = "L", cache: bool = True) -> None:
        super().__init__(transform=transform, mode=mode)
        self.path = _resolve_csv(path, "fer2013.csv", self.name, CSV_TREE)
        usage_name = _usage_for(split, self.name)
        self.split = split
        images, ids, usage, rows = _fer_csv_arrays(self.path, self.name, self._report, cache)
        if usage_name is not None:
            if not (usage != "").any():
                raise layout_error(self.name, self.path, "no Usage column, so no split: "
                                   "pass split=None", CSV_TREE)
            keep = usage == usage_name
            self._report.exclude("other splits", int((~keep).sum()))
            images, ids, rows = images[keep], ids[keep], rows[keep]
        self.images = images
        self.rows = rows
        self.labels = np.asarray([FER2013_TO_CANONICAL[int(i)] for i in ids], dtype=np.int64)
        self.classes = BASIC7
        self._finish()


class FERPlus(FaceDataset):
    """FERPlus labels (``fer2013new.csv``) over the FER2013 images.

    Give the images as ``fer2013_csv`` (rows align one to one with the label CSV) or as
    ``image_dir`` (the ``fer*.png`` files the label CSV names). Vote columns map to canonical
    ids by :data:`FERPLUS_COLUMNS`; eight classes (contempt included).

    Labels (votes are the 10 counts, ``unknown`` and ``NF`` last; with ``drop_single_votes``,
    an emotion with one vote is treated as annotator noise and zeroed first, as the FERPlus
    authors recommend):

    * ``label_mode="majority"`` - the class holding more than half of the remaining votes;
      rows whose winner is ``unknown``/``NF`` or that have no majority are excluded and counted.
      Items are ``(image, int label)``.
    * ``label_mode="probability"`` - the 8 emotion votes normalised to sum to one, for rows whose
      top vote is an emotion. Items are ``(image, float32 array (8,))`` in canonical order.

    ``.labels`` is the top emotion in both modes; ``.probs`` the ``(N, 8)`` distributions.
    """

    name = "FERPlus"

    def __init__(self, labels_csv: str | os.PathLike, *, fer2013_csv: str | os.PathLike | None = None,
                 image_dir: str | os.PathLike | None = None, split: str | None = "train",
                 label_mode: str = "majority", drop_single_votes: bool = True,
                 transform: Callable | None = None, mode: str | None = "L", cache: bool = True) -> None:
        super().__init__(transform=transform, mode=mode)
        if label_mode not in ("majority", "probability"):
            raise ConfigError(f"label_mode={label_mode!r}: expected 'majority' or 'probability'")
        if (fer2013_csv is None) == (image_dir is None):
            raise ConfigError("FERPlus: give exactly one image source, fer2013_csv=... or image_dir=...")
        self.label_mode = label_mode
        self.split = split
        self.labels_csv = _resolve_csv(labels_csv, "fer2013new.csv", self.name, FERPLUS_TREE)
        vote_cols = tuple(FERPLUS_COLUMNS) + FERPLUS_NONCLASS
        rows = _read_csv_rows(self.labels_csv, self.name, ("Usage", "Image name") + vote_cols,
                              FERPLUS_TREE)
        usage_name = _usage_for(split, self.name)
        report = self._report
        report.n_listed = len(rows)

        if fer2013_csv is not None:
            src = _resolve_csv(fer2013_csv, "fer2013.csv", self.name, FERPLUS_TREE)
            images, _, _, src_rows = _fer_csv_arrays(src, "FER2013 csv", LoadReport("FER2013"), cache)
            by_row = {int(r): k for k, r in enumerate(src_rows)}
        else:
            image_root = Path(image_dir).expanduser()
            require_dir(image_root, self.name, image_root, FERPLUS_TREE)

        col_to_id = [EXPRESSIONS.index(FERPLUS_COLUMNS[c]) for c in FERPLUS_COLUMNS]
        kept_images, labels, probs = [], [], []
        self.files: list[Path] = []
        for i, row in enumerate(rows):
            if usage_name is not None and row["Usage"].strip() != usage_name:
                report.exclude("other splits")
                continue
            name = row["Image name"].strip()
            if not name:
                report.exclude("no image (removed by FERPlus)")
                continue
            try:
                votes = np.asarray([float(row[c] or 0) for c in vote_cols], dtype=np.float64)
            except ValueError:
                report.corrupt.append(f"{self.labels_csv.name} line {i + 2}")
                continue
            result = ferplus_target(votes, label_mode, drop_single_votes)
            if isinstance(result, str):
                report.exclude(result)
                continue
            if fer2013_csv is not None:
                if i not in by_row:
                    report.corrupt.append(f"fer2013.csv line {i + 2} (bad pixels or emotion)")
                    continue
                kept_images.append(images[by_row[i]])
            else:
                path = _find_ferplus_image(image_root, name)
                if path is None:
                    report.missing.append(str(image_root / name))
                    continue
                if check_image(path, "quick") is not None:
                    report.corrupt.append(str(path))
                    continue
                self.files.append(path)
            canon = np.zeros(len(EXPRESSIONS), dtype=np.float32)
            canon[col_to_id] = result
            probs.append(canon)
            labels.append(int(np.argmax(canon)))
        self.images = np.stack(kept_images) if kept_images else None
        self.labels = np.asarray(labels, dtype=np.int64)
        self.probs = np.stack(probs) if probs else np.zeros((0, len(EXPRESSIONS)), np.float32)
        self.classes = EXPRESSIONS
        self._finish()

    def load_image(self, index: int) -> Image.Image:
        if self.images is not None:
            return self._convert(Image.fromarray(self.images[index], mode="L"))
        return open_image(self.files[index], self.mode)

    def __getitem__(self, index: int):
        image, label = super().__getitem__(index)
        if self.label_mode == "probability":
            return image, self.probs[index].copy()
        return image, label


def ferplus_target(votes: np.ndarray, label_mode: str, drop_single_votes: bool = True
                   ) -> np.ndarray | str:
    """The 8 emotion weights (FERPlus column order) of one row, or why the row is excluded.

    ``votes``: the 10 counts (8 emotions, unknown, NF). Majority gives a one-hot vector.
    """
    v = np.asarray(votes, dtype=np.float64).copy()
    if drop_single_votes:
        v[v <= 1] = 0.0
    total = v.sum()
    if total <= 0:
        return "no votes left"
    top = int(np.argmax(v))
    if top >= len(FERPLUS_COLUMNS):
        return "voted unknown or not a face"
    if label_mode == "majority":
        if v[top] <= total / 2:
            return "no majority"
        onehot = np.zeros(len(FERPLUS_COLUMNS))
        onehot[top] = 1.0
        return onehot
    emotions = v[: len(FERPLUS_COLUMNS)]
    return emotions / emotions.sum()


def _find_ferplus_image(root: Path, name: str) -> Path | None:
    for sub in ("", "FER2013Train", "FER2013Valid", "FER2013Test"):
        p = root / sub / name if sub else root / name
        if p.is_file():
            return p
    return None
