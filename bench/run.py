"""Run every ``bench/bench_*.py`` and write ``bench/results.json``: one flat object of
named measurements with units in the names (``synth_faces_per_s_112px``, ...).

    python bench/run.py            # all benchmarks
    python bench/run.py synth      # only bench_synth.py
    python bench/run.py --quick    # smaller sizes
    python bench/run.py --quick --out /tmp/r.json   # write elsewhere (CI's smoke run of every benchmark)
"""
from __future__ import annotations

import importlib.util
import json
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    if "-h" in argv or "--help" in argv:
        print(__doc__)
        return 0
    out = HERE / "results.json"
    if "--out" in argv:
        i = argv.index("--out")
        if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
            print("--out needs a file path", file=sys.stderr)
            return 2
        out = Path(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    unknown = [a for a in argv if a.startswith("-") and a != "--quick"]
    if unknown:
        print(f"unknown option(s) {unknown}: expected --quick, --out PATH, -h/--help and benchmark names", file=sys.stderr)
        return 2
    quick = "--quick" in argv
    only = [a for a in argv if not a.startswith("-")]
    results: dict[str, float | str] = {}
    if out.exists() and only:  # a partial run updates the previous results
        results.update(json.loads(out.read_text()))
    failed = []
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem[len("bench_"):]
        if only and name not in only:
            continue
        spec = importlib.util.spec_from_file_location(path.stem, path)
        mod = importlib.util.module_from_spec(spec)
        t0 = time.time()
        try:
            spec.loader.exec_module(mod)
            got = mod.run(quick=quick)
        except Exception as e:  # one broken benchmark must not hide the others
            print(f"{name}: FAILED {type(e).__name__}: {e}", file=sys.stderr)
            failed.append(name)
            continue
        if not got:
            print(f"{name}: FAILED: no measurements", file=sys.stderr)
            failed.append(name)
            continue
        print(f"{name}: {len(got)} measurements in {time.time() - t0:.0f} s")
        for k, v in got.items():
            print(f"  {k} = {v}")
        results.update(got)
    results["machine"] = f"{platform.machine()} {platform.processor() or ''} cpus={__import__('os').cpu_count()}".strip()
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    tmp.replace(out)
    print(f"wrote {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
