"""RAF-DB basic (Li, Deng and Du, CVPR 2017): aligned faces, and original images with boxes.

* :class:`RAFDB` - ``Image/aligned/*_aligned.jpg`` (100x100) with ``EmoLabel/list_patition_label.txt``;
  items ``(image, canonical label)``, seven classes.
* :class:`RAFDBDetection` - ``Image/original/*.jpg`` with ``Annotation/boundingbox`` boxes (and
  landmarks from ``Annotation/auto`` or ``manual``), for detectors; items ``(image, boxes, labels)``.

The label file's name is spelled ``patition`` by the publisher; the reader uses that spelling.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from ..config import BASIC7
from .base import DetectionDataset, FileImageDataset, LoadReport, layout_error, require_file

#: RAF-DB basic label ids (1 Surprise, 2 Fear, 3 Disgust, 4 Happiness, 5 Sadness, 6 Anger,
#: 7 Neutral) -> canonical ids.
RAFDB_TO_CANONICAL = {1: 3, 2: 4, 3: 5, 4: 1, 5: 2, 6: 6, 7: 0}
RAFDB_NAMES = {1: "Surprise", 2: "Fear", 3: "Disgust", 4: "Happiness", 5: "Sadness", 6: "Anger",
               7: "Neutral"}
LABEL_FILE = Path("EmoLabel") / "list_patition_label.txt"
SPLITS = ("train", "test")

TREE = """\
<root>/                                   the RAF-DB "basic" folder
  EmoLabel/list_patition_label.txt        lines "train_00001.jpg 5" (1 Surprise, 2 Fear, 3 Disgust,
                                          4 Happiness, 5 Sadness, 6 Anger, 7 Neutral)
  Image/aligned/train_00001_aligned.jpg   (RAFDB)
  Image/original/train_00001.jpg          (RAFDBDetection)
  Annotation/boundingbox/train_00001_boundingbox.txt   "x1 y1 x2 y2"
  Annotation/auto/train_00001_auto_ldmk.txt            optional: one "x y" per line
  Annotation/manual/train_00001_manu_ldmk.txt          optional: one "x y" per line
"""


def _resolve_root(root: str | os.PathLike) -> Path:
    """The folder holding EmoLabel/; accepts the release's parent folder (``.../basic``) too."""
    root = Path(root).expanduser()
    if not (root / LABEL_FILE).is_file() and (root / "basic" / LABEL_FILE).is_file():
        return root / "basic"
    return root


def read_label_list(root: Path, split: str | None, report: LoadReport, dataset: str
                    ) -> list[tuple[str, int]]:
    """``(image name, canonical id)`` of ``split`` from list_patition_label.txt; bad lines counted."""
    if split is not None and split not in SPLITS:
        raise layout_error(dataset, root, f"unknown split {split!r}: expected train, test or None", TREE)
    if not root.is_dir():
        raise layout_error(dataset, root, "root folder does not exist", TREE)
    path = require_file(root / LABEL_FILE, dataset, root, TREE)
    out: list[tuple[str, int]] = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            try:
                name, raw = parts[0], int(parts[1])
                label = RAFDB_TO_CANONICAL[raw]
            except (IndexError, ValueError, KeyError):
                report.corrupt.append(f"{LABEL_FILE} line {lineno}: {line.strip()!r}")
                continue
            if split is not None and not name.startswith(split + "_"):
                report.exclude("other split")
                continue
            out.append((name, label))
    if not out:
        raise layout_error(dataset, root, f"no {split or ''} entries in {path}", TREE)
    return out


class RAFDB(FileImageDataset):
    """RAF-DB basic, aligned 100x100 faces; items are ``(PIL image, canonical label)``.

    ``split``: ``"train"``, ``"test"`` or ``None`` (both), taken from the file-name prefix.
    """

    name = "RAF-DB"

    def __init__(self, root: str | os.PathLike, split: str | None = "train", *,
                 transform: Callable | None = None, mode: str | None = "RGB", verify: str = "quick",
                 in_memory: bool = False) -> None:
        super().__init__(transform=transform, mode=mode, verify=verify, in_memory=in_memory)
        self.root, self.split = _resolve_root(root), split
        entries = read_label_list(self.root, split, self._report, self.name)
        image_dir = self.root / "Image" / "aligned"
        if not image_dir.is_dir():
            raise layout_error(self.name, self.root, f"missing folder {image_dir}", TREE)
        self._set_samples([(image_dir / f"{Path(n).stem}_aligned{Path(n).suffix}", lab)
                           for n, lab in entries])
        self.classes = BASIC7
        self._finish()


def read_box(path: Path) -> np.ndarray:
    """A RAF-DB bounding-box file: ``x1 y1 x2 y2`` (floats, whitespace-separated) -> (4,) float32."""
    values = np.asarray(path.read_text().split()[:4], dtype=np.float32)
    if values.shape != (4,):
        raise ValueError(f"{path}: expected 4 numbers")
    return values


def read_points(path: Path) -> np.ndarray:
    """Landmark lines ``x y`` -> (P, 2) float32; lines that are not exactly two numbers (the
    attribute lines of ``*_attri.txt`` files) are ignored."""
    pts = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                pts.append((float(parts[0]), float(parts[1])))
            except ValueError:
                continue
    return np.asarray(pts, dtype=np.float32).reshape(-1, 2)


class RAFDBDetection(DetectionDataset):
    """RAF-DB basic original images for detection; items ``(image, boxes (1,4), labels (1,))``.

    Boxes are ``x1, y1, x2, y2`` in original-image pixels (never pair them with the aligned
    100x100 crops). ``landmarks="auto"`` or ``"manual"`` also fills ``.landmarks`` (one
    ``(P, 2)`` array per image, ``None`` where the file is absent). An image or box file that is
    missing is skipped and counted.
    """

    name = "RAF-DB detection"
    per_sample = ("boxes", "box_labels", "landmarks")

    def __init__(self, root: str | os.PathLike, split: str | None = "train", *,
                 landmarks: str | None = None, transform: Callable | None = None,
                 joint_transform: Callable | None = None, mode: str | None = "RGB",
                 verify: str = "quick") -> None:
        super().__init__(transform=transform, joint_transform=joint_transform, mode=mode, verify=verify)
        if landmarks not in (None, "auto", "manual"):
            raise layout_error(self.name, root, f"landmarks={landmarks!r}: expected 'auto', "
                               "'manual' or None", TREE)
        self.root, self.split = _resolve_root(root), split
        entries = read_label_list(self.root, split, self._report, self.name)
        image_dir = self.root / "Image" / "original"
        box_dir = self.root / "Annotation" / "boundingbox"
        for folder in (image_dir, box_dir):
            if not folder.is_dir():
                raise layout_error(self.name, self.root, f"missing folder {folder}", TREE)
        lmk_dir = self.root / "Annotation" / landmarks if landmarks else None
        if lmk_dir is not None and not lmk_dir.is_dir():
            raise layout_error(self.name, self.root, f"missing folder {lmk_dir}", TREE)

        samples, points = [], []
        for name, label in entries:
            stem = Path(name).stem
            box_file = box_dir / f"{stem}_boundingbox.txt"
            try:
                box = read_box(box_file)
            except FileNotFoundError:
                self._report.missing.append(str(box_file))
                continue
            except ValueError:
                self._report.corrupt.append(str(box_file))
                continue
            samples.append((image_dir / name, box[None], np.asarray([label])))
            if lmk_dir is not None:
                found = sorted(lmk_dir.glob(f"{stem}_*.txt"))
                points.append(read_points(found[0]) if found else None)
        kept = self._set_detections(samples)
        self.landmarks = [points[k] for k in kept] if lmk_dir is not None else None
        self.classes = BASIC7
        self._finish()
