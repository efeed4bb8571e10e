"""Profiles, seeds, devices and paths: the one place a notebook's setup cell asks.

A notebook's ``parameters`` cell names a profile (``auto|smoke|demo|paper``); the next cell
calls :func:`resolve_profile` and picks its per-profile dict with :func:`pick`. Everything
random starts from :func:`seed_everything`.
"""
from __future__ import annotations

import os
import random
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Mapping

import numpy as np

PROFILES = ("smoke", "demo", "paper")
PROFILE_CHOICES = ("auto",) + PROFILES

#: Canonical expression order (AffectNet's). Every reader maps its own ids/names to this.
EXPRESSIONS = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")
#: The seven basic classes most FER datasets share (canonical ids 0-6).
BASIC7 = EXPRESSIONS[:7]


class ConfigError(ValueError):
    """A parameter or path that is not what facelab expects; the message says what was."""


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return False
    return bool(torch.cuda.is_available())


def resolve_profile(profile: str, *, has_gpu: bool | None = None) -> str:
    """Turn ``auto`` into ``smoke`` (CPU) or ``demo`` (GPU); validate the others.

    >>> resolve_profile("smoke")
    'smoke'
    """
    if not isinstance(profile, str) or profile.lower() not in PROFILE_CHOICES:
        raise ConfigError(f"unknown profile {profile!r}: expected one of {', '.join(PROFILE_CHOICES)}")
    profile = profile.lower()
    if profile != "auto":
        return profile
    if has_gpu is None:
        has_gpu = cuda_available()
    return "demo" if has_gpu else "smoke"


def pick(profile: str, table: Mapping[str, Mapping[str, Any]], **overrides: Any) -> dict[str, Any]:
    """The config dict of ``profile`` from a ``{profile: {...}}`` table, with non-None overrides.

    A dict override of a key whose entry is a dict (a sub-dict such as ``"train": {...}``, the
    fields of a ``TrainConfig``) updates a copy of that sub-dict with its own non-None entries, so
    ``pick(p, table, train={"epochs": epochs})`` changes the epochs only when ``epochs`` is set.

    >>> pick("smoke", {"smoke": {"lr": 0.1, "train": {"epochs": 2, "batch_size": 8}}}, lr=None, train={"epochs": 5})
    {'lr': 0.1, 'train': {'epochs': 5, 'batch_size': 8}}
    """
    if profile not in table:
        raise ConfigError(f"profile {profile!r} has no entry here: expected one of {', '.join(table)}")
    cfg = dict(table[profile])
    for k, v in overrides.items():
        if isinstance(v, Mapping) and isinstance(cfg.get(k), Mapping):
            cfg[k] = {**cfg[k], **{kk: vv for kk, vv in v.items() if vv is not None}}
        elif v is not None:
            cfg[k] = v
    return cfg


def device(prefer: str | None = None) -> "torch.device":  # noqa: F821
    """``cuda`` when present (or ``prefer`` when given and usable), else ``cpu``."""
    import torch

    if prefer is not None:
        d = torch.device(prefer)
        if d.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device {prefer!r} requested but CUDA is not available on this machine")
        return d
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int, *, deterministic: bool = True) -> np.random.Generator:
    """Seed python, numpy, torch (CPU and CUDA); make cuDNN deterministic when asked.

    Returns a fresh ``numpy.random.Generator`` for code that should not touch global state.
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative int, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    # (PYTHONHASHSEED is not set here: it only acts when a Python process starts; nothing in
    # facelab depends on str hashing order.)
    try:
        import torch
    except ImportError:  # pragma: no cover
        return np.random.default_rng(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        # CUBLAS needs this for deterministic matmuls on GPU; harmless on CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return np.random.default_rng(seed)


def repo_root() -> Path:
    """The checkout this package was installed from (``pip install -e .``), else the cwd."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").exists() and (parent / "notebooks").is_dir():
            return parent
    return Path.cwd()


def cache_dir() -> Path:
    """``FACELAB_CACHE``, else ``$XDG_CACHE_HOME/facelab``, else ``~/.cache/facelab``.

    Shared by every clone on one machine, so fresh checkouts and CI runs reuse assets.
    """
    env = os.environ.get("FACELAB_CACHE")
    if env:
        p = Path(env).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
        p = base / "facelab"
    p.mkdir(parents=True, exist_ok=True)
    return p


def data_dir(required: bool = False) -> Path | None:
    """``FACELAB_DATA`` (where real datasets live), or None when unset.

    With ``required=True`` a missing or unset path raises a one-line :class:`ConfigError`.
    """
    env = os.environ.get("FACELAB_DATA")
    if not env:
        if required:
            raise ConfigError("FACELAB_DATA is not set: expected the folder holding real datasets "
                              "(e.g. export FACELAB_DATA=../shared/data)")
        return None
    p = Path(env).expanduser()
    if not p.is_dir():
        if required:
            raise ConfigError(f"FACELAB_DATA={env!r} does not exist: expected a folder of datasets")
        return None
    return p


def data_files(folder: str, pattern: str) -> list[Path]:
    """Sorted files matching ``pattern`` in ``FACELAB_DATA/<folder>`` (e.g. ``data_files("video",
    "*.mp4")``); an empty list when FACELAB_DATA is unset or has no such folder, so a notebook's
    real-data section can print why it skips."""
    root = data_dir()
    if root is None or not (root / folder).is_dir():
        return []
    return sorted((root / folder).glob(pattern))


def dataset_root(data_root: str | os.PathLike | None, *names: str) -> Path | None:
    """Resolve a notebook's ``data_root`` parameter.

    ``None`` means "use the embedded synthetic data". A path must exist; a bare dataset name
    (``fer2013``) is looked up under ``FACELAB_DATA``.
    """
    if data_root is None or data_root == "":
        return None
    p = Path(data_root).expanduser()
    if p.is_dir():
        return p
    base = data_dir()
    if base is not None and (base / str(data_root)).is_dir():
        return base / str(data_root)
    hint = f" or a name under FACELAB_DATA={base}" if base else ""
    want = f" ({' / '.join(names)} layout)" if names else ""
    raise ConfigError(f"data_root {str(data_root)!r} does not exist: expected a dataset folder{want}{hint}")


def out_dir(notebook: str, out: str | os.PathLike | None = None) -> Path:
    """Where a notebook's figures and metrics.json go: ``figures/<notebook>/`` by default."""
    p = Path(out) if out else repo_root() / "figures" / notebook
    p.mkdir(parents=True, exist_ok=True)
    return p


def run_dir(notebook: str, profile: str) -> Path:
    """Checkpoints and executed copies: ``runs/<notebook>/<profile>/`` (git-ignored)."""
    p = repo_root() / "runs" / notebook / profile
    p.mkdir(parents=True, exist_ok=True)
    return p


def prepare_numba() -> None:
    """Environment for numba, set before it is first imported (a user's own values win).

    * ``NUMBA_CACHE_DIR``: compiled kernels go to facelab's cache (writable, shared by clones)
      instead of ``__pycache__`` beside a possibly read-only source.
    * ``NUMBA_THREADING_LAYER=workqueue``: numba's default OpenMP pool keeps spinning after a
      parallel kernel returns and fights torch's own threads; on a 2-core machine that made the
      convolutions around a scan ~30x slower. The work-queue layer parks its threads.
    """
    if "NUMBA_CACHE_DIR" not in os.environ:
        try:
            os.environ["NUMBA_CACHE_DIR"] = str(cache_dir() / "numba")
        except OSError:  # no writable cache dir: numba falls back to its own locations
            pass
    os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")


_numba_modules: dict = {}


def import_numba_module(name: str):
    """Import a module of numba kernels after :func:`prepare_numba`; None (remembered) when numba
    is missing or does not fit this numpy, so callers fall back to their torch paths."""
    if name not in _numba_modules:
        prepare_numba()
        try:
            import importlib

            _numba_modules[name] = importlib.import_module(name)
        except Exception:  # ImportError, or a numba/llvmlite that does not fit this numpy
            _numba_modules[name] = None
    return _numba_modules[name]


@contextmanager
def torch_threads(n: int | None):
    """Run torch on ``n`` intra-op threads inside the block, then restore the previous count.

    Small models and the renderer issue many medium-sized ops; on a small shared machine a
    second OpenMP thread mostly spin-waits and makes each op several times slower. ``None``
    leaves the setting alone.
    """
    import torch

    old = torch.get_num_threads()
    if n is not None and n != old:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        if torch.get_num_threads() != old:
            torch.set_num_threads(old)


def progress(iterable, *, total: int | None = None, desc: str | None = None, min_total: int = 2):
    """``iterable`` wrapped in a transient tqdm bar (a widget in Jupyter, stderr elsewhere).

    Every long loop of the library goes through here, so one switch silences them all:
    ``FACELAB_PROGRESS=0``. Loops shorter than ``min_total`` items get no bar."""
    if total is None:
        try:
            total = len(iterable)
        except TypeError:
            total = None
    if os.environ.get("FACELAB_PROGRESS", "1") == "0" or (total is not None and total < min_total):
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False)
