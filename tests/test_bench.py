"""Every benchmark runs (quick sizes) in `make test`, so a refactor cannot break one unnoticed.

The scan and detector benchmarks time the sequential reference scan and YOLOX-s-sized detectors
even in --quick mode: 1.5-3 minutes each on a 2-core CPU."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHES = sorted(p.stem[len("bench_"):] for p in (ROOT / "bench").glob("bench_*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("name", BENCHES)
def test_benchmark_runs_in_quick_mode(name, tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), name, "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=1200, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"{name}: " in proc.stdout and "FAILED" not in proc.stdout + proc.stderr, proc.stdout[-2000:]
    got = json.loads(out.read_text())
    assert len(got) >= 2, got  # its own measurements and the machine line


def test_bench_rejects_unknown_options():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--fast"], capture_output=True, text=True)
    assert proc.returncode == 2 and "--quick" in proc.stderr
