"""300-W style landmark files (``.pts``) and folders of ``<id>.jpg`` + ``<id>.pts``.

A ``.pts`` file (ibug 300-W)::

    version: 1
    n_points:  68
    {
    47.994 76.382
    ...
    }

Points are ``x y`` in image pixels; 300-W's numbering is 1-based on disk but the array here is
0-based (point 31, the nose tip, is row 30).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from .base import FileImageDataset, layout_error, list_images

TREE = """\
<root>/
  <id>.jpg   the face image (any image suffix)
  <id>.pts   its landmarks: "version: 1", "n_points: 68", "{", 68 lines "x y", "}"
"""


def read_pts(path: str | os.PathLike) -> np.ndarray:
    """A ``.pts`` file as a ``(n_points, 2)`` float32 array; ``ValueError`` names what is wrong."""
    lines = [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip()]
    header: dict[str, str] = {}
    i = 0
    while i < len(lines) and lines[i] != "{":
        key, sep, value = lines[i].partition(":")
        if not sep:
            raise ValueError(f"{path}: expected 'key: value' header lines before '{{', got {lines[i]!r}")
        header[key.strip()] = value.strip()
        i += 1
    if i == len(lines) or "}" not in lines[i:]:
        raise ValueError(f"{path}: expected the points between '{{' and '}}'")
    end = lines.index("}", i)
    try:
        pts = np.asarray([[float(v) for v in ln.split()] for ln in lines[i + 1:end]], dtype=np.float32)
    except ValueError as err:
        raise ValueError(f"{path}: a point line is not two numbers ({err})") from None
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"{path}: each point line must be 'x y'")
    n = header.get("n_points")
    if n is None or not n.isdigit() or int(n) != len(pts):
        raise ValueError(f"{path}: n_points is {n!r} but {len(pts)} points follow")
    return pts


def write_pts(path: str | os.PathLike, points: np.ndarray) -> Path:
    """Write ``(n, 2)`` points as a 300-W ``.pts`` file (version 1)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    body = "\n".join(f"{x:.3f} {y:.3f}" for x, y in pts)
    path = Path(path)
    path.write_text(f"version: 1\nn_points:  {len(pts)}\n{{\n{body}\n}}\n")
    return path


class Landmarks300W(FileImageDataset):
    """A folder of ``<id>.jpg`` + ``<id>.pts``; items are ``(image, points float32 (P, 2))``.

    ``transform`` sees the image only; ``joint_transform(image, points) -> (image, points)`` is
    for crops, flips and resizes that must move the points too. ``.landmarks`` is the
    ``(N, P, 2)`` array and ``.ids`` the file stems. There are no expression labels: ``.labels``
    is all ``-1`` and ``.classes`` empty. An image without its ``.pts`` (or the reverse) is
    counted as missing; an unreadable ``.pts`` as corrupt.
    """

    name = "300-W landmarks"
    per_sample = ("landmarks", "ids")

    def __init__(self, root: str | os.PathLike, *, n_points: int | None = 68,
                 transform: Callable | None = None, joint_transform: Callable | None = None,
                 mode: str | None = "RGB", verify: str = "quick", in_memory: bool = False) -> None:
        super().__init__(transform=transform, mode=mode, verify=verify, in_memory=in_memory)
        root = Path(root).expanduser()
        self.root, self.joint_transform = root, joint_transform
        if not root.is_dir():
            raise layout_error(self.name, root, "root folder does not exist", TREE)
        images = {p.stem: p for p in list_images(root)}
        pts_files = {p.stem: p for p in sorted(root.glob("*.pts"))}
        if not pts_files:
            raise layout_error(self.name, root, "no .pts files", TREE)
        for stem in sorted(set(images) - set(pts_files)):
            self._report.missing.append(str(root / f"{stem}.pts"))
        samples, points = [], []
        for stem, pts_path in sorted(pts_files.items()):
            if stem not in images:
                self._report.missing.append(str(root / f"{stem}.jpg"))
                continue
            try:
                pts = read_pts(pts_path)
            except (ValueError, UnicodeDecodeError):
                self._report.corrupt.append(str(pts_path))
                continue
            if n_points is not None and len(pts) != n_points:
                self._report.corrupt.append(f"{pts_path} ({len(pts)} points, expected {n_points})")
                continue
            samples.append((images[stem], -1))
            points.append(pts)
        kept = self._set_samples(samples)
        self._report.n_listed = len(set(images) | set(pts_files))
        self.landmarks = (np.stack([points[k] for k in kept]) if kept
                          else np.zeros((0, n_points or 0, 2), np.float32))
        self.ids = [p.stem for p in self.files]
        self.classes = ()
        self._finish()

    def __getitem__(self, index: int):
        image = self.load_image(index)
        points = self.landmarks[index].copy()
        if self.joint_transform is not None:
            image, points = self.joint_transform(image, points)
        if self.transform is not None:
            image = self.transform(image)
        return image, points

    def class_counts(self) -> dict[str, int]:
        return {}
