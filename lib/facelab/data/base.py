"""What every facelab dataset reader shares: labels, reports, layout errors, image loading.

Conventions (every reader in :mod:`facelab.data` follows them):

* ``ds[i]`` returns ``(image, label)``: ``image`` is a ``PIL.Image`` in the reader's ``mode``
  (``"RGB"`` by default; ``"L"`` for the grey FER2013 family) passed through ``transform``
  when one is given (so ``transform=torchvision.transforms.ToTensor()`` gives tensors);
  ``label`` is a python ``int`` in the canonical order of :data:`facelab.config.EXPRESSIONS`.
  Detection readers return ``(image, boxes, labels)`` and landmark readers ``(image, points)``;
  their docstrings say so.
* ``ds.labels`` is an ``int64`` numpy array of canonical ids, ``ds.classes`` the canonical names
  the label space spans (:data:`~facelab.config.BASIC7` or all eight
  :data:`~facelab.config.EXPRESSIONS` where the dataset has contempt), so
  ``ds.classes[label]`` names a label. ``ds.class_counts()`` counts every class, zeros too.
* A wrong root raises one :class:`DatasetLayoutError` that prints the expected tree.
* Missing or corrupt images are skipped, counted in ``ds.report()`` and announced by one
  :class:`DataWarning` at construction. Samples a dataset excludes by design (AffectNet's
  "uncertain" or "non-face" labels, sequences without a label, ...) are counted there too.
"""
from __future__ import annotations

import hashlib
import os
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from ..cache import atomic_write
from ..config import BASIC7, EXPRESSIONS, ConfigError, cache_dir, progress

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp")
#: How much of a file the "quick" check reads: enough for every signature below.
_MAGIC_BYTES = 12
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
VERIFY_LEVELS = ("none", "quick", "header", "full")


class DatasetLayoutError(ConfigError):
    """A dataset folder or list file is not laid out as its publisher ships it.

    The message says what was missing and prints the tree the reader expected.
    """


class CorruptImageError(OSError):
    """An image that passed the construction check failed to decode when read."""


class DataWarning(UserWarning):
    """Images were missing or corrupt and have been skipped (see the dataset's ``report()``)."""


def layout_error(dataset: str, root: str | os.PathLike, problem: str, tree: str) -> DatasetLayoutError:
    """One error that names the dataset, the problem, and the tree the reader expected."""
    return DatasetLayoutError(f"{dataset}: {problem} (root: {root}).\nExpected layout:\n{tree.rstrip()}")


def require_dir(path: Path, dataset: str, root: Path, tree: str) -> Path:
    if not path.is_dir():
        what = "root folder does not exist" if path == root else f"missing folder {path}"
        raise layout_error(dataset, root, what, tree)
    return path


def require_file(path: Path, dataset: str, root: Path, tree: str) -> Path:
    if not path.is_file():
        raise layout_error(dataset, root, f"missing file {path}", tree)
    return path


def find_child(parent: Path, name: str) -> Path | None:
    """``parent/name``, matched case-insensitively (``Train`` vs ``train`` differ across copies)."""
    exact = parent / name
    if exact.exists():
        return exact
    if not parent.is_dir():
        return None
    low = name.lower()
    for child in sorted(parent.iterdir()):
        if child.name.lower() == low:
            return child
    return None


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (a stable order across machines)."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


@dataclass
class LoadReport:
    """What a reader found: kept samples, skipped files and samples excluded by design."""

    dataset: str
    n_listed: int = 0
    n_kept: int = 0
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    excluded: dict[str, int] = field(default_factory=dict)

    @property
    def n_missing(self) -> int:
        return len(self.missing)

    @property
    def n_corrupt(self) -> int:
        return len(self.corrupt)

    @property
    def n_skipped(self) -> int:
        return self.n_missing + self.n_corrupt

    def exclude(self, reason: str, n: int = 1) -> None:
        if n:
            self.excluded[reason] = self.excluded.get(reason, 0) + n

    def as_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "n_listed": self.n_listed, "n_kept": self.n_kept,
                "n_missing": self.n_missing, "n_corrupt": self.n_corrupt,
                "excluded": dict(self.excluded)}

    def __str__(self) -> str:
        parts = [f"{self.dataset}: kept {self.n_kept} of {self.n_listed}"]
        if self.missing:
            parts.append(f"{self.n_missing} missing (e.g. {self.missing[0]})")
        if self.corrupt:
            parts.append(f"{self.n_corrupt} corrupt (e.g. {self.corrupt[0]})")
        for reason, n in sorted(self.excluded.items()):
            parts.append(f"{n} excluded: {reason}")
        return "; ".join(parts)


def _has_image_signature(head: bytes) -> bool:
    return (head.startswith(b"\xff\xd8\xff") or head.startswith(b"\x89PNG\r\n\x1a\n")
            or head.startswith(b"BM") or head.startswith(b"GIF8")
            or head[:4] in (b"II*\x00", b"MM\x00*")
            or (head.startswith(b"RIFF") and head[8:12] == b"WEBP"))


def check_image(path: Path, level: str) -> str | None:
    """``None`` when ``path`` passes ``level``; else ``"missing"`` or ``"corrupt"``.

    ``quick`` reads the first bytes (an image signature: catches empty, truncated-to-nothing and
    non-image files at about 15 us a file), ``header`` lets PIL parse the header, ``full``
    decodes the pixels (the only level that catches a JPEG cut off mid-stream).
    """
    if level == "none":
        return None
    try:
        if level == "quick":
            with open(path, "rb") as f:
                return None if _has_image_signature(f.read(_MAGIC_BYTES)) else "corrupt"
        with Image.open(path) as im:
            if level == "full":
                im.load()
            elif im.size[0] <= 0 or im.size[1] <= 0:
                return "corrupt"
        return None
    except FileNotFoundError:
        return "missing"
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return "corrupt" if path.exists() else "missing"


def classes_for(labels: Iterable[int]) -> tuple[str, ...]:
    """BASIC7 when every canonical id is a basic class, else all eight EXPRESSIONS."""
    return EXPRESSIONS if any(int(v) >= len(BASIC7) for v in labels) else BASIC7


def canonical_id(value: int | str) -> int:
    """A canonical id from an id or a canonical name (``"happy"`` -> 1)."""
    if isinstance(value, str):
        key = value.strip().lower()
        if key not in EXPRESSIONS:
            raise ConfigError(f"unknown expression {value!r}: expected one of {', '.join(EXPRESSIONS)}")
        return EXPRESSIONS.index(key)
    v = int(value)
    if not 0 <= v < len(EXPRESSIONS):
        raise ConfigError(f"expression id {value!r} out of range 0-{len(EXPRESSIONS) - 1}")
    return v


def _stacklevel_outside_package() -> int:
    """The ``stacklevel`` that points a warning at the first caller outside facelab.data
    (readers call ``_finish`` through different depths of ``__init__``)."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    return level


class FaceDataset(Dataset):
    """Base of every reader: labels, classes, counts, report, and the ``transform`` hook.

    Subclasses fill ``self.labels`` and ``self._report`` and implement :meth:`load_image`.
    """

    name = "dataset"

    def __init__(self, *, transform: Callable | None = None, mode: str | None = "RGB") -> None:
        self.transform = transform
        self.mode = mode
        self.labels = np.zeros(0, dtype=np.int64)
        self.classes: tuple[str, ...] = BASIC7
        self._report = LoadReport(self.name)

    # -- what subclasses provide -------------------------------------------------------------
    def load_image(self, index: int) -> Image.Image:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- shared behaviour --------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        image = self.load_image(index)
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])

    def report(self) -> LoadReport:
        """Counts of kept, missing, corrupt and excluded samples (``str()`` it for a summary)."""
        return self._report

    def class_counts(self) -> dict[str, int]:
        """``{class name: count}`` over ``self.classes`` in canonical order, zeros included."""
        counts = np.bincount(self.labels, minlength=len(self.classes)) if len(self.labels) else \
            np.zeros(len(self.classes), dtype=np.int64)
        return {name: int(counts[i]) for i, name in enumerate(self.classes)}

    def _convert(self, image: Image.Image) -> Image.Image:
        return image.convert(self.mode) if self.mode and image.mode != self.mode else image

    def _finish(self) -> None:
        """Close the report and warn once when images were skipped."""
        self._report.n_kept = len(self.labels)
        if self._report.n_skipped:
            warnings.warn(f"{self._report} -- see .report() for the file names", DataWarning,
                          stacklevel=_stacklevel_outside_package())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={len(self)}, classes={len(self.classes)})"


class FileImageDataset(FaceDataset):
    """A dataset of ``(image file, canonical label)`` pairs, checked at construction.

    ``verify`` chooses how hard each file is checked before it is kept: ``"quick"`` (default:
    exists and starts with an image signature), ``"header"``, ``"full"`` (decode every image),
    or ``"none"``. ``in_memory=True`` decodes the split once into a uint8 array (see
    :meth:`as_arrays`) and serves items from it.
    """

    def __init__(self, *, transform: Callable | None = None, mode: str | None = "RGB",
                 verify: str = "quick", in_memory: bool = False) -> None:
        super().__init__(transform=transform, mode=mode)
        if verify not in VERIFY_LEVELS:
            raise ConfigError(f"verify={verify!r}: expected one of {', '.join(VERIFY_LEVELS)}")
        self.verify = verify
        self.in_memory = in_memory
        self.files: list[Path] = []
        self._arrays: np.ndarray | None = None

    #: Per-sample attributes a subclass keeps beside ``files`` and ``labels``; :meth:`as_arrays`
    #: filters them too when it drops an image that fails to decode.
    per_sample: tuple[str, ...] = ()

    def _set_samples(self, samples: Sequence[tuple[Path, int]]) -> list[int]:
        """Check each file, keep the good ones; returns the kept positions (to filter extras)."""
        kept: list[int] = []
        self._report.n_listed += len(samples)
        for pos, (path, _) in enumerate(samples):
            problem = check_image(path, self.verify)
            if problem == "missing":
                self._report.missing.append(str(path))
            elif problem == "corrupt":
                self._report.corrupt.append(str(path))
            else:
                kept.append(pos)
        self.files = [Path(samples[p][0]) for p in kept]
        self.labels = np.asarray([samples[p][1] for p in kept], dtype=np.int64)
        return kept

    def _finish(self) -> None:
        if self.in_memory:
            self.as_arrays()
        super()._finish()

    def load_image(self, index: int) -> Image.Image:
        if self._arrays is not None:
            return self._convert(Image.fromarray(self._arrays[index]))
        path = self.files[index]
        try:
            return open_image(path, self.mode)
        except (OSError, ValueError, SyntaxError) as err:
            raise CorruptImageError(f"{self.name}: cannot decode {path} ({err}); construct the "
                                    "dataset with verify='full' to skip such files") from err

    # -- whole split in memory -----------------------------------------------------------------
    def as_arrays(self, *, cache: bool = True, workers: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
        """The whole split as ``(images uint8 (N,H,W) or (N,H,W,C), labels int64 (N,))``.

        Decoded once and cached under ``facelab.config.cache_dir()/data`` by a sha256 of the
        files' bytes, names, labels and ``mode``, so another clone or a renamed copy of the same
        data reuses it. The cache file is written to a temp file and renamed (never half
        written). Images that fail to decode are dropped here and counted as corrupt. All images
        must share one size (FER2013: 48x48); otherwise resize them with a ``transform`` instead.
        After this call items are served from memory.
        """
        if self._arrays is not None:
            return self._arrays, self.labels
        digest = self._content_hash()
        path = cache_dir() / "data" / f"{self.name.lower().replace(' ', '_')}-{digest}.npz"
        loaded = _load_npz(path) if cache else None
        if loaded is None:
            loaded = self._decode_all(workers)
            if cache:
                _save_npz_atomic(path, **loaded)
        keep = np.asarray(loaded["keep"], dtype=bool)
        if not keep.all():
            # Names come from this copy's file list, not the cache: the cache may be another clone's.
            self._report.corrupt.extend(str(f) for f, k in zip(self.files, keep) if not k)
            for attr in ("files", "labels", *self.per_sample):
                value = getattr(self, attr, None)
                if isinstance(value, np.ndarray):
                    setattr(self, attr, value[keep])
                elif value is not None:
                    setattr(self, attr, [v for v, k in zip(value, keep) if k])
            self._report.n_kept = len(self.labels)
        self._arrays = loaded["images"]
        self.in_memory = True
        return self._arrays, self.labels

    def _content_hash(self) -> str:
        h = hashlib.sha256()
        h.update(f"{self.name}|{self.mode}|{len(self.files)}".encode())
        for path, label in progress(zip(self.files, self.labels), total=len(self.files), desc=f"hashing {self.name}"):
            h.update(f"|{path.name}|{int(label)}|".encode())
            with open(path, "rb") as f:
                h.update(f.read())
        return h.hexdigest()[:24]

    def _decode_all(self, workers: int | None) -> dict[str, np.ndarray]:
        def decode(path: Path) -> np.ndarray | None:
            try:
                with Image.open(path) as im:
                    return np.asarray(self._convert(im) if self.mode else im)
            except (OSError, ValueError, SyntaxError):
                return None

        # PIL releases the GIL while decoding, so threads help on many-core machines.
        workers = workers or min(8, os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            decoded = list(progress(pool.map(decode, self.files, chunksize=256), total=len(self.files),
                                    desc=f"decoding {self.name}"))
        keep = np.asarray([a is not None for a in decoded], dtype=bool)
        good = [a for a in decoded if a is not None]
        shapes = {a.shape for a in good}
        if len(shapes) > 1:
            raise ConfigError(f"{self.name}: images differ in size ({sorted(shapes)[:3]} ...); "
                              "as_arrays() needs one size: resize them with a transform instead")
        images = np.stack(good) if good else np.zeros((0, 1, 1), dtype=np.uint8)
        return {"images": images.astype(np.uint8, copy=False), "keep": keep}


def _load_npz(path: Path) -> dict[str, np.ndarray] | None:
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in ("images", "keep")}
    except Exception:  # a damaged cache entry is rebuilt, never trusted
        path.unlink(missing_ok=True)
        return None


def _save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    """``np.savez`` through :func:`facelab.cache.atomic_write`: readers never see half a file."""
    atomic_write(path, lambda f: np.savez(f, **arrays))


def folder_samples(root: Path, class_map: Mapping[str, int | str | None], *, dataset: str,
                   tree: str, report: LoadReport) -> list[tuple[Path, int]]:
    """``(file, canonical id)`` for ``root/<class folder>/*`` under an explicit folder mapping.

    Folder names match case-insensitively. A folder absent from ``class_map`` is an error (the
    mapping must be explicit); a folder mapped to ``None`` is skipped and counted as excluded.
    """
    require_dir(root, dataset, root, tree)
    lookup = {name.lower(): value for name, value in class_map.items()}
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [p.name for p in folders if p.name.lower() not in lookup]
    if unknown:
        raise layout_error(dataset, root, f"class folders {unknown} are not in the class mapping "
                           f"({', '.join(class_map)})", tree)
    samples: list[tuple[Path, int]] = []
    for folder in folders:
        target = lookup[folder.name.lower()]
        files = list_images(folder)
        if target is None:
            report.exclude(f"folder {folder.name} not used", len(files))
            continue
        label = canonical_id(target)
        samples.extend((f, label) for f in files)
    if not samples:
        raise layout_error(dataset, root, "no images found in any class folder", tree)
    return samples


# -- cross-dataset evaluation over shared classes --------------------------------------------------

def common_classes(*datasets: FaceDataset, classes: Sequence[str] | None = None) -> tuple[str, ...]:
    """Canonical class names every dataset can label, in canonical order.

    A class counts as present when the dataset's label space has it and at least one sample
    carries it (CK+48 has no neutral folder; a 7-class FER2013 has no contempt). ``classes``
    narrows the result further.
    """
    present = set(EXPRESSIONS)
    for ds in datasets:
        present &= {name for name, n in ds.class_counts().items() if n > 0}
    if classes is not None:
        present &= {EXPRESSIONS[canonical_id(c)] for c in classes}
    return tuple(name for name in EXPRESSIONS if name in present)


class ClassSubset(FaceDataset):
    """The samples of ``dataset`` whose class is in ``classes``.

    ``remap=False`` (default) keeps canonical ids, so a model trained on BASIC7 reads them as is;
    ``remap=True`` renumbers labels 0..len(classes)-1 in the order of ``classes``.
    ``transform`` given here replaces the wrapped dataset's own.
    """

    def __init__(self, dataset: FaceDataset, classes: Sequence[str | int], *, remap: bool = False,
                 transform: Callable | None = None) -> None:
        super().__init__(transform=transform, mode=getattr(dataset, "mode", None))
        self.name = f"{dataset.name} [{len(classes)} classes]"
        self.dataset = dataset
        ids = [canonical_id(c) for c in classes]
        self.indices = np.flatnonzero(np.isin(dataset.labels, ids))
        self.remap = remap
        names = tuple(EXPRESSIONS[i] for i in ids)
        if remap:
            lut = {cid: pos for pos, cid in enumerate(ids)}
            self.labels = np.asarray([lut[int(v)] for v in dataset.labels[self.indices]], dtype=np.int64)
            self.classes = names
        else:
            self.labels = dataset.labels[self.indices].astype(np.int64)
            self.classes = dataset.classes
        self.kept_classes = names
        self._report = LoadReport(self.name, n_listed=len(dataset), n_kept=len(self.indices))
        if len(dataset) - len(self.indices):
            self._report.exclude("class outside the subset", len(dataset) - len(self.indices))

    def load_image(self, index: int) -> Image.Image:
        return self.dataset.load_image(int(self.indices[index]))

    def __getitem__(self, index: int):
        if self.transform is None and self.dataset.transform is not None:
            image, _ = self.dataset[int(self.indices[index])]
            return image, int(self.labels[index])
        return super().__getitem__(index)

    def class_counts(self) -> dict[str, int]:
        if self.remap:
            return super().class_counts()
        counts = super().class_counts()
        return {name: n for name, n in counts.items() if name in self.kept_classes}


def common_subset(*datasets: FaceDataset, classes: Sequence[str] | None = None,
                  remap: bool = False) -> list[ClassSubset]:
    """Each dataset restricted to the classes they all share (see :func:`common_classes`).

    E.g. ``train, test = common_subset(FER2013Folder(...), CKPlus(...))`` drops contempt from
    CK+ and neutral from FER2013 when CK+ has no neutral samples.
    """
    shared = common_classes(*datasets, classes=classes)
    if not shared:
        raise ConfigError("the datasets share no class: " +
                          "; ".join(f"{d.name}: {[k for k, n in d.class_counts().items() if n]}"
                                    for d in datasets))
    return [ClassSubset(ds, shared, remap=remap) for ds in datasets]


def open_image(path: str | os.PathLike, mode: str | None) -> Image.Image:
    """The decoded image at ``path`` in ``mode`` (``None``: as stored), detached from the file."""
    with Image.open(path) as im:
        return im.convert(mode) if mode and im.mode != mode else im.copy()


class DetectionDataset(FileImageDataset):
    """Images with face boxes: items are ``(image, boxes float32 (K,4) x1y1x2y2, labels int64 (K,))``.

    ``transform`` sees the image only (photometric changes); ``joint_transform(image, boxes,
    labels) -> (image, boxes, labels)`` is for geometric ones that must move the boxes too.
    ``.labels[i]`` is the first box's class of image ``i``; :meth:`class_counts` counts every box.
    """

    per_sample = ("boxes", "box_labels")

    def __init__(self, *, transform: Callable | None = None, joint_transform: Callable | None = None,
                 mode: str | None = "RGB", verify: str = "quick") -> None:
        super().__init__(transform=transform, mode=mode, verify=verify, in_memory=False)
        self.joint_transform = joint_transform
        self.boxes: list[np.ndarray] = []
        self.box_labels: list[np.ndarray] = []

    def _set_detections(self, samples: Sequence[tuple[Path, np.ndarray, np.ndarray]]) -> list[int]:
        kept = self._set_samples([(p, int(lab[0]) if len(lab) else -1) for p, _, lab in samples])
        self.boxes = [np.asarray(samples[k][1], dtype=np.float32).reshape(-1, 4) for k in kept]
        self.box_labels = [np.asarray(samples[k][2], dtype=np.int64).reshape(-1) for k in kept]
        return kept

    def __getitem__(self, index: int):
        image = self.load_image(index)
        boxes, labels = self.boxes[index].copy(), self.box_labels[index].copy()
        if self.joint_transform is not None:
            image, boxes, labels = self.joint_transform(image, boxes, labels)
        if self.transform is not None:
            image = self.transform(image)
        return image, boxes, labels

    def class_counts(self) -> dict[str, int]:
        """Boxes per class (an image with two faces counts twice), zeros included."""
        all_labels = np.concatenate(self.box_labels) if self.box_labels else np.zeros(0, np.int64)
        counts = np.bincount(all_labels, minlength=len(self.classes))
        return {name: int(counts[i]) for i, name in enumerate(self.classes)}
