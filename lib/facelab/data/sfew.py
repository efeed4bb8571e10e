"""SFEW 2.0 (Dhall et al., EmotiW 2015): movie frames of seven expressions.

* :class:`SFEW` - the class-folder release ``{Train,Val}/<Emotion>/*.png``; items ``(image, label)``.
* :class:`SFEWDetection` - YOLOX-style list files (as used by FER-YOLO-Mamba), one image per line
  ``path x1,y1,x2,y2,cls [x1,y1,x2,y2,cls ...]`` with ``cls`` in the YOLO class order
  Angry, Disgust, Fear, Happy, Neutral, Sad, Surprise = 0..6; items ``(image, boxes, labels)``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from ..config import BASIC7, EXPRESSIONS
from .base import (DetectionDataset, FileImageDataset, LoadReport, canonical_id, find_child,
                   folder_samples, layout_error)

#: SFEW class folders -> canonical names.
SFEW_FOLDERS = {"Angry": "anger", "Disgust": "disgust", "Fear": "fear", "Happy": "happy",
                "Neutral": "neutral", "Sad": "sad", "Surprise": "surprise"}
#: YOLO class ids of the detection lists (alphabetical Angry..Surprise) -> canonical ids.
SFEW_YOLO_TO_CANONICAL = {0: 6, 1: 5, 2: 4, 3: 1, 4: 0, 5: 2, 6: 3}
SPLITS = ("Train", "Val")

TREE = """\
<root>/
  Train/
    Angry/*.png  Disgust/  Fear/  Happy/  Neutral/  Sad/  Surprise/
  Val/
    Angry/ ... Surprise/
"""
LIST_TREE = """\
<list file>   one image per line: path x1,y1,x2,y2,cls [x1,y1,x2,y2,cls ...]
              cls: 0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Neutral, 5 Sad, 6 Surprise
<image_root>/ the images, when the list's paths are from another machine (matched by
              relative path, then by file name)
"""


class SFEW(FileImageDataset):
    """SFEW 2.0 class folders; ``split`` is ``"Train"`` or ``"Val"`` (any case)."""

    name = "SFEW"

    def __init__(self, root: str | os.PathLike, split: str = "Train", *,
                 transform: Callable | None = None, mode: str | None = "RGB", verify: str = "quick",
                 in_memory: bool = False) -> None:
        super().__init__(transform=transform, mode=mode, verify=verify, in_memory=in_memory)
        root = Path(root).expanduser()
        self.root, self.split = root, split
        if not root.is_dir():
            raise layout_error(self.name, root, "root folder does not exist", TREE)
        if split.lower() not in {s.lower() for s in SPLITS}:
            raise layout_error(self.name, root, f"unknown split {split!r}: expected Train or Val", TREE)
        split_dir = find_child(root, split)
        if split_dir is None or not split_dir.is_dir():
            raise layout_error(self.name, root, f"missing folder {root / split}", TREE)
        self._set_samples(folder_samples(split_dir, SFEW_FOLDERS, dataset=self.name, tree=TREE,
                                         report=self._report))
        self.classes = BASIC7
        self._finish()


def _parse_box(token: str) -> tuple[list[float], int] | None:
    parts = token.split(",")
    if len(parts) != 5:
        return None
    try:
        coords = [float(v) for v in parts[:4]]
        cls = int(float(parts[4]))
    except ValueError:
        return None
    return coords, cls


def read_detection_list(path: str | os.PathLike, report: LoadReport | None = None
                        ) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Parse a YOLOX list: ``[(image path, boxes (K,4) float32, class ids (K,) int64), ...]``.

    Box tokens are read from the end of the line, so paths with spaces survive. Lines without a
    box give ``K = 0`` (the caller decides; :class:`SFEWDetection` counts and skips them). Lines
    with a malformed box token are counted as corrupt in ``report``.
    """
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            tokens = line.split()
            if not tokens:
                continue
            boxes, classes = [], []
            while len(tokens) > 1 and "," in tokens[-1]:
                parsed = _parse_box(tokens[-1])
                if parsed is None:
                    break
                boxes.append(parsed[0])
                classes.append(parsed[1])
                tokens.pop()
            if len(tokens) > 1 and "," in tokens[-1]:
                if report is not None:
                    report.corrupt.append(f"{Path(path).name} line {lineno}: {line.strip()[:80]!r}")
                continue
            out.append((" ".join(tokens), np.asarray(boxes[::-1], dtype=np.float32).reshape(-1, 4),
                        np.asarray(classes[::-1], dtype=np.int64)))
    return out


class SFEWDetection(DetectionDataset):
    """A detection list file (``path x1,y1,x2,y2,cls ...`` per line); items ``(image, boxes, labels)``.

    ``labels`` are canonical ids through ``class_map`` (default: SFEW's YOLO order); boxes are
    ``x1, y1, x2, y2`` pixels. Lines with no box are counted (``report().excluded``) and skipped
    unless ``keep_empty=True`` (background images for detector training). ``image_root`` re-roots
    paths written on another machine.
    """

    name = "SFEW detection"

    def __init__(self, list_file: str | os.PathLike, image_root: str | os.PathLike | None = None, *,
                 class_map: Mapping[int, int | str] = SFEW_YOLO_TO_CANONICAL, keep_empty: bool = False,
                 transform: Callable | None = None, joint_transform: Callable | None = None,
                 mode: str | None = "RGB", verify: str = "quick") -> None:
        super().__init__(transform=transform, joint_transform=joint_transform, mode=mode, verify=verify)
        list_file = Path(list_file).expanduser()
        if not list_file.is_file():
            raise layout_error(self.name, list_file, f"missing list file {list_file}", LIST_TREE)
        root = Path(image_root).expanduser() if image_root is not None else None
        if root is not None and not root.is_dir():
            raise layout_error(self.name, root, f"image_root {root} does not exist", LIST_TREE)
        self.list_file, self.image_root = list_file, root
        lut = {int(k): canonical_id(v) for k, v in class_map.items()}
        entries = read_detection_list(list_file, self._report)
        if not entries and not self._report.corrupt:
            raise layout_error(self.name, list_file, "the list file has no lines", LIST_TREE)
        samples = []
        for raw_path, boxes, cls in entries:
            if len(boxes) == 0:
                self._report.exclude("line without a box")
                if not keep_empty:
                    continue
            unknown = sorted(set(cls.tolist()) - set(lut))
            if unknown:
                self._report.corrupt.append(f"{raw_path}: class ids {unknown} not in class_map")
                continue
            labels = np.asarray([lut[int(c)] for c in cls], dtype=np.int64)
            samples.append((self._resolve(raw_path), boxes, labels))
        self._set_detections(samples)
        self.classes = BASIC7 if all(v < len(BASIC7) for v in lut.values()) else EXPRESSIONS
        self._finish()

    def _resolve(self, raw: str) -> Path:
        p = Path(raw)
        if self.image_root is None:
            return p if p.is_absolute() else self.list_file.parent / p
        if not p.is_absolute() and (self.image_root / p).exists():
            return self.image_root / p
        if p.is_absolute() and p.exists():
            return p
        return self.image_root / p.name
