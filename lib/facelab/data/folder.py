"""A generic class-folder dataset, ``<root>/<class folder>/*.<image>``, with an explicit mapping.

Use it for any copy laid out as one folder per class (KDEF, JAFFE sorted by class, a private
set...): every folder must be named in ``class_map``, which maps it to a canonical name or id,
or to ``None`` to leave it out.

>>> ImageFolder(root, {"Happy": "happy", "Mad": "anger", "Other": None})   # doctest: +SKIP
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping

from .base import FileImageDataset, canonical_id, classes_for, folder_samples

TREE = """\
<root>/
  <class folder>/*.jpg|png|...     one folder per key of class_map (matched ignoring case)
"""


class ImageFolder(FileImageDataset):
    """Items ``(image, canonical label)``; ``.classes`` is BASIC7 unless contempt is mapped (then
    all eight EXPRESSIONS)."""

    name = "ImageFolder"

    def __init__(self, root: str | os.PathLike, class_map: Mapping[str, int | str | None], *,
                 transform: Callable | None = None,
                 mode: str | None = "RGB", verify: str = "quick", in_memory: bool = False) -> None:
        super().__init__(transform=transform, mode=mode, verify=verify, in_memory=in_memory)
        self.root = Path(root).expanduser()
        self.class_map = dict(class_map)
        tree = TREE + "".join(f"  {k}/  -> {v}\n" for k, v in self.class_map.items())
        samples = folder_samples(self.root, self.class_map, dataset=self.name, tree=tree,
                                 report=self._report)
        self._set_samples(samples)
        mapped = [canonical_id(v) for v in self.class_map.values() if v is not None]
        self.classes = classes_for(mapped)
        self._finish()
