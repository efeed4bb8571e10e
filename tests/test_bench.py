"""Every benchmark runs (quick sizes), so a refactor cannot break one unnoticed."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHES = sorted(p.stem[len("bench_"):] for p in (ROOT / "bench").glob("bench_*.py"))


@pytest.mark.slow
def test_every_benchmark_runs_in_quick_mode(tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    got = json.loads(out.read_text())
    for name in BENCHES:  # each benchmark reported its own measurements
        assert f"{name}: " in proc.stdout and "FAILED" not in proc.stdout, (name, proc.stdout[-2000:])
    assert len(got) > len(BENCHES)


def test_bench_rejects_unknown_options():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--fast"], capture_output=True, text=True)
    assert proc.returncode == 2 and "--quick" in proc.stderr
