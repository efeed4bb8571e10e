"""Content-addressed cache: a result is stored under the hash of what produced it."""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Callable

from .config import cache_dir


def key(*parts: Any) -> str:
    """A stable sha256 of JSON-able parts (dicts sorted), e.g. a generator name and its arguments."""
    blob = json.dumps(parts, sort_keys=True, default=repr).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], *, suffix: str = "") -> Path:
    """Call ``write(f)`` on a binary file beside ``path``, then rename it to ``path``: readers never
    see half a file, and a ``write`` that raises leaves ``path`` as it was and no temp file behind.
    The file is world-readable (0644), as ``open`` makes files, not private as ``mkstemp`` does:
    caches and figures are shared by clones and users. ``suffix`` ends the temp name (some writers
    pick a format by it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """``data`` to ``path`` through :func:`atomic_write`."""
    return atomic_write(path, lambda f: f.write(data))


def cached(namespace: str, parts: Any, compute: Callable[[], Any], *, enabled: bool = True) -> Any:
    """Return the pickled result for ``(namespace, parts)``, computing and storing it when absent."""
    if not enabled:
        return compute()
    path = cache_dir() / namespace / f"{key(namespace, parts)}.pkl"
    if path.exists():
        try:
            with open(path, "rb") as f:
                return pickle.load(f)
        except Exception:  # a corrupt entry is recomputed, never trusted
            path.unlink(missing_ok=True)
    value = compute()
    atomic_write_bytes(path, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    return value
