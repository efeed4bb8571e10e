"""The lock and the environment: requirements-lock.txt pins (with hashes) everything pyproject asks
for, and the repository's .venv holds exactly what the lock lists (scripts/venv_sync.py)."""
from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import venv_sync  # noqa: E402

LOCK = ROOT / "requirements-lock.txt"


def _names(reqs):
    return {venv_sync.norm(re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0]) for r in reqs}


def test_lock_pins_every_dependency_with_hashes():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = _names(project["dependencies"]) | _names(project["optional-dependencies"]["dev"])
    pins = venv_sync.read_lock(LOCK)
    assert not wanted - set(pins), f"pyproject dependencies missing from the lock: {sorted(wanted - set(pins))}"
    text = LOCK.read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text)
    unhashed = [b.split("==")[0] for b in blocks if "==" in b and "--hash=sha256:" not in b]
    assert not unhashed, f"lock entries without hashes: {unhashed}"
    assert int(pins["setuptools"].split(".")[0]) >= 68          # pyproject's build requires it


def test_venv_sync_reports_extras_missing_and_wrong_versions():
    pins = {"torch": "2.14.1", "numpy": "2.4.6", "absent": "1.0"}
    have = {"torch": "2.14.1+cu130", "numpy": "2.4.5", "h5py": "3.14.0", "pip": "24.0", "facelab": "0.1.0"}
    extra, missing, wrong = venv_sync.differences(pins, have)
    assert extra == ["h5py"] and missing == ["absent"] and wrong == ["numpy 2.4.5 (lock: 2.4.6)"]


def test_repository_venv_matches_the_lock():
    venv = (ROOT / ".venv").resolve()
    if Path(sys.prefix).resolve() != venv:
        pytest.skip(f"not running in the repository's .venv ({sys.prefix}); `make test` does")
    extra, missing, wrong = venv_sync.differences(venv_sync.read_lock(LOCK), venv_sync.installed())
    assert not (extra or missing or wrong), (f"the .venv differs from the lock: extra {extra}, missing {missing}, "
                                             f"other versions {wrong}; `make venv` syncs it")
