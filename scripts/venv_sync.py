"""Make a virtual environment hold exactly what the lock lists: report (and with --fix, uninstall)
the distributions the lock does not pin, and fail on any pinned one missing or at another version.

    python scripts/venv_sync.py requirements-lock.txt          # check only (exit 1 on a difference)
    python scripts/venv_sync.py requirements-lock.txt --fix    # uninstall the extras, then check

Run with the environment's own interpreter (the Makefile does this after installing the lock).
``facelab`` itself (the editable install) and the installers (pip) are not in the lock and are kept.
"""
from __future__ import annotations

import importlib.metadata as md
import re
import subprocess
import sys
from pathlib import Path

KEEP = {"facelab", "pip"}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9_.\-]*)==([^\s\\;]+)", line)
        if m:
            pins[norm(m.group(1))] = m.group(2)
    if not pins:
        raise SystemExit(f"{path}: no 'name==version' lines: is this the lock file?")
    return pins


def installed() -> dict[str, str]:
    return {norm(d.metadata["Name"]): d.version for d in md.distributions() if d.metadata["Name"]}


def differences(pins: dict[str, str], have: dict[str, str]) -> tuple[list[str], list[str], list[str]]:
    extra = sorted(n for n in have if n not in pins and n not in KEEP)
    missing = sorted(n for n in pins if n not in have)
    # a local build tag (torch 2.14.1+cu130 reports 2.14.1) is the same release
    wrong = sorted(f"{n} {have[n]} (lock: {pins[n]})" for n in pins
                   if n in have and have[n].split("+")[0] != pins[n].split("+")[0])
    return extra, missing, wrong


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__)
        return 2
    lock, fix = Path(argv[0]), "--fix" in argv
    pins = read_lock(lock)
    extra, missing, wrong = differences(pins, installed())
    if extra and fix:
        subprocess.check_call([sys.executable, "-m", "pip", "uninstall", "-y", "-q", *extra])
        print(f"venv_sync: removed {len(extra)} distributions the lock does not list: {', '.join(extra)}")
        extra, missing, wrong = differences(pins, installed())
    for what, items in (("not in the lock", extra), ("missing", missing), ("at another version", wrong)):
        if items:
            print(f"venv_sync: {len(items)} {what}: {', '.join(items)}", file=sys.stderr)
    if extra or missing or wrong:
        return 1
    print(f"venv_sync: the environment matches {lock} ({len(pins)} pinned distributions)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
