"""AffectNet (Mollahosseini et al., 2017), in its two published forms.

* :class:`AffectNet` - the per-image release ``{train_set,val_set}/images/<id>.jpg`` with
  ``annotations/<id>_exp.npy`` (and ``_val``, ``_aro``, ``_lnd``);
* :class:`AffectNetCSV` - the original release ``training.csv`` / ``validation.csv`` over
  ``Manually_Annotated_Images/``.

AffectNet's own ids are the canonical order (0 Neutral ... 7 Contempt). Ids 8 (None),
9 (Uncertain) and 10 (Non-Face) are not expressions: those samples are excluded and counted in
``report().excluded``. ``num_classes=7`` also drops contempt. Items are ``(image, label)``;
``annotation(i)`` gives valence, arousal, landmarks (and the CSV's face box) of sample ``i``.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Callable

import numpy as np

from ..config import BASIC7, EXPRESSIONS, ConfigError
from .base import FileImageDataset, layout_error, list_images

#: AffectNet expression ids -> canonical ids (the same order: AffectNet's is the canonical one).
AFFECTNET_TO_CANONICAL = {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 7}
#: Ids that are not an expression, with the reason recorded in the report.
AFFECTNET_EXCLUDED = {8: "none (8)", 9: "uncertain (9)", 10: "non-face (10)"}
SPLIT_DIRS = {"train": "train_set", "val": "val_set"}
SPLIT_CSVS = {"train": "training.csv", "val": "validation.csv"}
CSV_COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
               "facial_landmarks", "expression", "valence", "arousal")
CSV_IMAGE_DIRS = ("Manually_Annotated_Images", "Manually_Annotated/Manually_Annotated_Images")

TREE = """\
<root>/
  train_set/
    images/0.jpg ...
    annotations/0_exp.npy  (expression id 0-10)   0_val.npy 0_aro.npy 0_lnd.npy (optional)
  val_set/
    images/  annotations/
"""
CSV_TREE = """\
<root>/
  training.csv  validation.csv     columns: subDirectory_filePath, face_x, face_y, face_width,
                                   face_height, facial_landmarks, expression, valence, arousal
  Manually_Annotated_Images/<subDirectory_filePath>   e.g. 689/737db2....jpg
"""


def _split_key(split: str, table: dict[str, str], dataset: str) -> str:
    key = {"training": "train", "validation": "val", "valid": "val"}.get(split.lower(), split.lower())
    if key not in table:
        raise ConfigError(f"{dataset}: unknown split {split!r}: expected one of {', '.join(table)}")
    return key


def _label_or_reason(raw: int, num_classes: int) -> int | str:
    if raw in AFFECTNET_EXCLUDED:
        return AFFECTNET_EXCLUDED[raw]
    if raw not in AFFECTNET_TO_CANONICAL:
        return f"unknown id ({raw})"
    label = AFFECTNET_TO_CANONICAL[raw]
    if label >= num_classes:
        return "contempt (7-class reader)"
    return label


def _check_num_classes(num_classes: int) -> tuple[str, ...]:
    if num_classes not in (7, 8):
        raise ConfigError(f"num_classes={num_classes}: expected 8 (with contempt) or 7")
    return EXPRESSIONS if num_classes == 8 else BASIC7


def _npy_scalar(path: Path) -> float:
    # The release stores each value as a 0-d array of a *string* ('3', '-0.176'); float() takes both.
    return float(np.load(path, allow_pickle=False).item())


class AffectNet(FileImageDataset):
    """AffectNet per-image release: ``<root>/{train_set,val_set}/images|annotations``.

    ``split``: ``"train"`` or ``"val"`` (the val set is the usual test set). The expression of
    each image comes from ``annotations/<id>_exp.npy``; an image without one is excluded and
    counted, a label without its image is counted as missing.
    """

    name = "AffectNet"
    per_sample = ("ids",)

    def __init__(self, root: str | os.PathLike, split: str = "train", *, num_classes: int = 8,
                 transform: Callable | None = None, mode: str | None = "RGB", verify: str = "quick",
                 in_memory: bool = False) -> None:
        super().__init__(transform=transform, mode=mode, verify=verify, in_memory=in_memory)
        self.classes = _check_num_classes(num_classes)
        root = Path(root).expanduser()
        self.root = root
        self.split = _split_key(split, SPLIT_DIRS, self.name)
        split_dir = root / SPLIT_DIRS[self.split]
        if not root.is_dir():
            raise layout_error(self.name, root, "root folder does not exist", TREE)
        for sub in ("images", "annotations"):
            if not (split_dir / sub).is_dir():
                raise layout_error(self.name, root, f"missing folder {split_dir / sub}", TREE)
        self.annotation_dir = split_dir / "annotations"
        images = {p.stem: p for p in list_images(split_dir / "images")}
        exp_files = sorted(self.annotation_dir.glob("*_exp.npy"))
        if not exp_files:
            raise layout_error(self.name, root, f"no *_exp.npy files in {self.annotation_dir}", TREE)
        samples = []
        labelled = set()
        for exp in exp_files:
            sid = exp.name[: -len("_exp.npy")]
            labelled.add(sid)
            try:
                raw = int(_npy_scalar(exp))
            except (OSError, ValueError, TypeError):
                self._report.corrupt.append(str(exp))
                continue
            result = _label_or_reason(raw, num_classes)
            if isinstance(result, str):
                self._report.exclude(result)
                continue
            samples.append((images.get(sid, split_dir / "images" / f"{sid}.jpg"), result))
        unlabelled = len(set(images) - labelled)
        if unlabelled:
            self._report.exclude("image without _exp.npy", unlabelled)
        self._set_samples(samples)
        self.ids = [p.stem for p in self.files]
        self._finish()

    def annotation(self, index: int) -> dict[str, object]:
        """``{"valence", "arousal", "landmarks" (68,2) float32}`` of sample ``index``; None where absent."""
        sid = self.ids[index]
        out: dict[str, object] = {}
        for key, suffix in (("valence", "_val"), ("arousal", "_aro")):
            p = self.annotation_dir / f"{sid}{suffix}.npy"
            out[key] = _npy_scalar(p) if p.is_file() else None
        p = self.annotation_dir / f"{sid}_lnd.npy"
        out["landmarks"] = (np.asarray(np.load(p, allow_pickle=False), dtype=np.float32).reshape(-1, 2)
                            if p.is_file() else None)
        return out


class AffectNetCSV(FileImageDataset):
    """AffectNet original release: ``training.csv`` / ``validation.csv`` + ``Manually_Annotated_Images``.

    ``crop_face=True`` crops each image to its ``face_x, face_y, face_width, face_height`` box.
    ``.boxes`` holds those boxes as ``x1, y1, x2, y2``. A CSV without a header row is read in the
    published column order.
    """

    name = "AffectNet csv"
    per_sample = ("boxes", "_raw")

    def __init__(self, root: str | os.PathLike, split: str = "train", *, num_classes: int = 8,
                 crop_face: bool = False, image_dir: str | os.PathLike | None = None,
                 transform: Callable | None = None, mode: str | None = "RGB", verify: str = "quick",
                 in_memory: bool = False) -> None:
        super().__init__(transform=transform, mode=mode, verify=verify, in_memory=in_memory)
        self.classes = _check_num_classes(num_classes)
        root = Path(root).expanduser()
        self.root, self.crop_face = root, crop_face
        self.split = _split_key(split, SPLIT_CSVS, self.name)
        if not root.is_dir():
            raise layout_error(self.name, root, "root folder does not exist", CSV_TREE)
        csv_path = root / SPLIT_CSVS[self.split]
        if not csv_path.is_file():
            raise layout_error(self.name, root, f"missing file {csv_path}", CSV_TREE)
        if image_dir is not None:
            images_root = Path(image_dir).expanduser()
        else:
            images_root = next((root / d for d in CSV_IMAGE_DIRS if (root / d).is_dir()), None)
        if images_root is None or not images_root.is_dir():
            raise layout_error(self.name, root, f"missing folder {root / CSV_IMAGE_DIRS[0]}", CSV_TREE)

        samples, extras = [], []
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            first = next(reader, None)
            if first is None:
                raise layout_error(self.name, root, f"{csv_path} is empty", CSV_TREE)
            header = [h.strip() for h in first]
            if header[0] == CSV_COLUMNS[0]:
                missing = [c for c in CSV_COLUMNS if c not in header]
                if missing:
                    raise layout_error(self.name, root, f"{csv_path.name} lacks columns {missing}", CSV_TREE)
                rows = reader
            else:
                header = list(CSV_COLUMNS)
                rows = [first, *reader]
            col = {name: header.index(name) for name in CSV_COLUMNS}
            for lineno, row in enumerate(rows, 2):
                try:
                    raw = int(float(row[col["expression"]]))
                    x, y, w, h = (float(row[col[k]]) for k in ("face_x", "face_y", "face_width",
                                                                  "face_height"))
                    rel = row[col["subDirectory_filePath"]].strip()
                except (IndexError, ValueError):
                    self._report.corrupt.append(f"{csv_path.name} line {lineno}")
                    continue
                result = _label_or_reason(raw, num_classes)
                if isinstance(result, str):
                    self._report.exclude(result)
                    continue
                samples.append((images_root / rel, result))
                extras.append(((x, y, x + w, y + h), row[col["valence"]], row[col["arousal"]],
                               row[col["facial_landmarks"]]))
        if not samples and not self._report.excluded:
            raise layout_error(self.name, root, f"no rows in {csv_path}", CSV_TREE)
        kept = self._set_samples(samples)
        self.boxes = np.asarray([extras[k][0] for k in kept], dtype=np.float32).reshape(-1, 4)
        self._raw = [extras[k][1:] for k in kept]
        self._finish()

    def load_image(self, index: int):
        image = super().load_image(index)
        if self.crop_face and self._arrays is None:
            x1, y1, x2, y2 = (float(v) for v in self.boxes[index])
            image = image.crop((round(x1), round(y1), round(x2), round(y2)))
        return image

    def as_arrays(self, **kwargs):
        if self.crop_face and self._arrays is None:
            raise ConfigError(f"{self.name}: as_arrays() stores whole images; crop_face=True "
                              "crops them on the fly, so use it without in_memory")
        return super().as_arrays(**kwargs)

    def annotation(self, index: int) -> dict[str, object]:
        """``{"box" (4,) x1y1x2y2, "valence", "arousal", "landmarks" (68,2) float32}`` of sample ``index``."""
        valence, arousal, landmarks = self._raw[index]
        pts = [float(v) for v in str(landmarks).replace(",", ";").split(";") if v.strip()]
        return {"box": self.boxes[index].copy(),
                "valence": float(valence) if valence not in ("", None) else None,
                "arousal": float(arousal) if arousal not in ("", None) else None,
                "landmarks": np.asarray(pts, dtype=np.float32).reshape(-1, 2) if pts else None}
