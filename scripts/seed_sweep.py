"""Run one notebook's twin as a script over seeds (and ATEN_CPU_CAPABILITY values) and print its
metrics and checks: how the learning-check thresholds are measured.

    python scripts/seed_sweep.py 04 --profile smoke --seeds 0 1 2 3 4 --caps default avx2 avx512 \\
        --keys close_set_acc_mean msp_auroc_mean oracle_selection_auroc_mean ours_auroc_mean

Each run writes under ``runs/sweep/<notebook>/<cap>-seed<k>/``; a summary JSON is printed at the end
(per key: min, max, mean over the runs) and written to ``runs/sweep/<notebook>/summary.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from facelab import runner


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebook")
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--caps", nargs="+", default=["default"], help="ATEN_CPU_CAPABILITY values ('native' = unset)")
    ap.add_argument("--keys", nargs="*", default=[], help="metrics to summarise (all checks always)")
    ap.add_argument("-p", "--param", action="append", default=[], help="extra notebook parameter k=v")
    args = ap.parse_args(argv)
    name = runner.resolve_notebook(args.notebook)
    base = runner.repo_root() / "runs" / "sweep" / name
    rows = []
    for cap in args.caps:
        for seed in args.seeds:
            out = base / f"{cap}-seed{seed}"
            out.mkdir(parents=True, exist_ok=True)
            params = {**runner.parse_params(args.param), "profile": args.profile, "seed": seed, "out_dir": str(out)}
            script = out / f"{name}.script.py"
            script.write_text(runner.script_from_twin(name, params))
            env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
            env.pop("ATEN_CPU_CAPABILITY", None)
            if cap != "native":
                env["ATEN_CPU_CAPABILITY"] = cap
            t0 = time.time()
            with open(out / "log.txt", "w") as f:
                rc = subprocess.run([sys.executable, str(script)], stdout=f, stderr=subprocess.STDOUT,
                                    cwd=str(runner.notebooks_dir()), env=env).returncode
            wall = time.time() - t0
            mpath = out / "metrics.json"
            m = json.loads(mpath.read_text()) if mpath.exists() else {"metrics": {}, "checks": {}}
            row = {"cap": cap, "seed": seed, "rc": rc, "wall_s": round(wall, 1),
                   **{k: m["metrics"].get(k) for k in args.keys}, **{f"check:{k}": v for k, v in m["checks"].items()}}
            rows.append(row)
            print(json.dumps(row), flush=True)
    summary = {"notebook": name, "profile": args.profile, "runs": rows, "stats": {}}
    for k in args.keys + ["wall_s"]:
        vals = [r[k] for r in rows if isinstance(r.get(k), (int, float))]
        if vals:
            summary["stats"][k] = {"min": min(vals), "max": max(vals), "mean": sum(vals) / len(vals)}
    (base / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary["stats"], indent=1))
    return 0 if all(r["rc"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
