"""CK+ (Lucey et al., CVPR-W 2010): posed sequences from neutral to a labelled peak.

* :class:`CKPlus` - the official release ``cohn-kanade-images/Sxxx/yyy/*.png`` with
  ``Emotion/Sxxx/yyy/*_emotion.txt`` (one float code 0-7) and optional ``FACS/.../*_facs.txt``;
  only sequences with an emotion file are labelled. The labelled frame is the one the emotion
  file is named after (the sequence's last, its peak); ``peak_frames=3`` takes the last three,
  ``include_neutral=True`` adds each labelled sequence's first frame as neutral.
* :class:`CK48Folder` - the widespread "CK+48" crops, ``<root>/<class>/*.png``.

Both use all eight canonical classes (CK+ has contempt). Items are ``(image, label)``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from ..config import EXPRESSIONS
from .base import FileImageDataset, folder_samples, layout_error, list_images

#: CK+ emotion codes (0 neutral, 1 anger, 2 contempt, 3 disgust, 4 fear, 5 happy, 6 sadness,
#: 7 surprise) -> canonical ids.
CKPLUS_TO_CANONICAL = {0: 0, 1: 6, 2: 7, 3: 5, 4: 4, 5: 1, 6: 2, 7: 3}
#: CK+48 class folders -> canonical names (``neutral`` appears in some copies).
CK48_FOLDERS = {"anger": "anger", "contempt": "contempt", "disgust": "disgust", "fear": "fear",
                "happy": "happy", "sadness": "sad", "surprise": "surprise", "neutral": "neutral"}

TREE = """\
<root>/
  cohn-kanade-images/S005/001/S005_001_00000001.png ... S005_001_00000011.png
  Emotion/S005/001/S005_001_00000011_emotion.txt   one float: 0 neutral, 1 anger, 2 contempt,
                                                   3 disgust, 4 fear, 5 happy, 6 sadness, 7 surprise
  FACS/S005/001/S005_001_00000011_facs.txt         optional: lines "AU intensity"
"""
CK48_TREE = """\
<root>/
  anger/*.png  contempt/  disgust/  fear/  happy/  sadness/  surprise/
"""


def read_emotion(path: str | os.PathLike) -> int:
    """The emotion code of a ``*_emotion.txt`` file (stored as a float, e.g. ``3.0000000e+00``)."""
    return int(round(float(Path(path).read_text().split()[0])))


def read_facs(path: str | os.PathLike) -> dict[str, float]:
    """A ``*_facs.txt`` file as ``{"AU01": intensity, ...}`` (intensity 0 means "not coded")."""
    out: dict[str, float] = {}
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2:
            au, intensity = float(parts[0]), float(parts[1])
            out[f"AU{int(round(au)):02d}"] = intensity
    return out


class CKPlus(FileImageDataset):
    """CK+ official layout; see the module docstring for which frames become samples.

    ``.sequences`` names each sample's ``Sxxx/yyy`` and ``.subjects`` its ``Sxxx``; with
    ``facs=True`` ``.facs[i]`` is the sequence's AU dict for peak frames and ``{}`` for neutral
    frames.
    """

    name = "CK+"
    per_sample = ("sequences", "subjects", "facs")

    def __init__(self, root: str | os.PathLike, *, peak_frames: int = 1, include_neutral: bool = False,
                 facs: bool = False, transform: Callable | None = None, mode: str | None = "RGB",
                 verify: str = "quick", in_memory: bool = False) -> None:
        super().__init__(transform=transform, mode=mode, verify=verify, in_memory=in_memory)
        if peak_frames < 1:
            raise ValueError(f"peak_frames must be >= 1, got {peak_frames}")
        root = Path(root).expanduser()
        if not (root / "Emotion").is_dir() and (root / "CK+" / "Emotion").is_dir():
            root = root / "CK+"
        self.root = root
        if not root.is_dir():
            raise layout_error(self.name, root, "root folder does not exist", TREE)
        image_root, emotion_root = root / "cohn-kanade-images", root / "Emotion"
        for folder in (image_root, emotion_root):
            if not folder.is_dir():
                raise layout_error(self.name, root, f"missing folder {folder}", TREE)
        facs_root = root / "FACS"
        if facs and not facs_root.is_dir():
            raise layout_error(self.name, root, f"facs=True but missing folder {facs_root}", TREE)

        emotion_files = sorted(emotion_root.glob("*/*/*_emotion.txt"))
        if not emotion_files:
            raise layout_error(self.name, root, f"no */*/*_emotion.txt files in {emotion_root}", TREE)
        samples, extras = [], []
        labelled = set()
        for emo in emotion_files:
            seq = emo.parent.relative_to(emotion_root)
            labelled.add(seq.as_posix())
            try:
                label = CKPLUS_TO_CANONICAL[read_emotion(emo)]
            except (ValueError, IndexError, KeyError):
                self._report.corrupt.append(str(emo))
                continue
            seq_dir = image_root / seq
            frames = list_images(seq_dir) if seq_dir.is_dir() else []
            if not frames:
                self._report.missing.append(str(seq_dir))
                continue
            peak_name = emo.name[: -len("_emotion.txt")]
            peak_idx = next((i for i, f in enumerate(frames) if f.stem == peak_name), len(frames) - 1)
            aus: dict[str, float] = {}
            if facs:
                facs_file = facs_root / seq / f"{peak_name}_facs.txt"
                aus = read_facs(facs_file) if facs_file.is_file() else {}
            first_peak = max(0, peak_idx - peak_frames + 1)
            if include_neutral and first_peak > 0:
                samples.append((frames[0], 0))
                extras.append((seq.as_posix(), {}))
            for f in frames[first_peak: peak_idx + 1]:
                samples.append((f, label))
                extras.append((seq.as_posix(), aus))
        unlabelled = sum(1 for d in image_root.glob("*/*") if d.is_dir()
                         and d.relative_to(image_root).as_posix() not in labelled)
        if unlabelled:
            self._report.exclude("sequence without an emotion label", unlabelled)
        kept = self._set_samples(samples)
        self.sequences = [extras[k][0] for k in kept]
        # CK+ is evaluated with subject-independent folds; this is what to group by.
        self.subjects = np.asarray([seq.split("/")[0] for seq in self.sequences])
        self.facs = [extras[k][1] for k in kept] if facs else None
        self.classes = EXPRESSIONS
        self._finish()


class CK48Folder(FileImageDataset):
    """CK+48 class folders (anger, contempt, disgust, fear, happy, sadness, surprise)."""

    name = "CK+48"

    def __init__(self, root: str | os.PathLike, *, transform: Callable | None = None,
                 mode: str | None = "RGB", verify: str = "quick", in_memory: bool = False) -> None:
        super().__init__(transform=transform, mode=mode, verify=verify, in_memory=in_memory)
        self.root = Path(root).expanduser()
        self._set_samples(folder_samples(self.root, CK48_FOLDERS, dataset=self.name, tree=CK48_TREE,
                                         report=self._report))
        self.classes = EXPRESSIONS
        self._finish()

