#!/usr/bin/env bash
# make gpu-check: one script for a lent GPU machine (Python 3.12, torch preinstalled, no registry).
#
#   bash scripts/gpu_check.sh [notebook ...]      # default: every notebook
#
# 1. installs carried wheels from .whl/ (if any) into /tmp/site, --no-deps, no index;
# 2. runs the CUDA-only tests (pytest -m cuda over tests/, tests/test_scan_triton.py included: the
#    compiled Triton scan vs the reference and mamba-ssm; its kernels compile on first use);
# 3. runs each notebook's demo profile as a script (its py:percent twin; no Jupyter needed)
#    with a per-notebook time cap (GPU_CHECK_CAP_S, default 150 s) and per-notebook parameters
#    from GPU_CHECK_PARAMS, a JSON object {"01_fer_yolo_mamba": {"epochs": 8}, ...};
# 4. runs the benchmarks (GPU_CHECK_BENCH: names for bench/run.py, default all; the scan bench
#    runs its CUDA rows only here: BENCH_SCAN_CPU=0);
# and writes one JSON of everything to ${OUT:-runs/gpu-check}/gpu_check.json, with every log, the
# executed notebooks and their figures in gpu_check.tgz beside it (a lent machine returns at most
# 8 files from $OUT, so everything else is packed).
# Data: set FACELAB_DATA (or DATA_ROOT for the FER2013 folder) to a carried folder.
set -u
cd "$(dirname "$0")/.."
FINAL_DIR=${OUT:-runs/gpu-check}
mkdir -p "$FINAL_DIR"
OUT_DIR=$(mktemp -d)   # the logs; packed into $FINAL_DIR/gpu_check.tgz at the end
CAP=${GPU_CHECK_CAP_S:-150}
PY=${PYTHON:-python3}
if compgen -G ".whl/*.whl" >/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || echo "wheel install failed" >&2
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD/lib:${PYTHONPATH:-}
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg

nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$OUT_DIR/device.txt" 2>&1 || true
$PY - <<'PY' > "$OUT_DIR/env.txt" 2>&1
import torch, sys
print(sys.version.split()[0], torch.__version__, torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
try:
    import mamba_ssm; print("mamba_ssm", mamba_ssm.__version__)
except Exception as e:
    print("mamba_ssm unavailable:", type(e).__name__, e)
PY

timeout 300 $PY -m pytest -q -m cuda tests -p no:cacheprovider --junitxml "$OUT_DIR/cuda_tests.xml" \
  > "$OUT_DIR/cuda_tests.log" 2>&1
echo "cuda tests exit $?" >> "$OUT_DIR/cuda_tests.log"

NOTEBOOKS=("$@")
if [ ${#NOTEBOOKS[@]} -eq 0 ]; then
  NOTEBOOKS=($(ls notebooks/[0-9][0-9]_*.py | xargs -n1 basename | sed 's/\.py$//'))
fi
$PY - "$CAP" "$OUT_DIR" "${NOTEBOOKS[@]}" <<'PY'
import json, os, sys, time
from facelab import runner
cap, out = float(sys.argv[1]), sys.argv[2]
params = {}
if os.environ.get("DATA_ROOT"):
    params["data_root"] = os.environ["DATA_ROOT"]
per_notebook = json.loads(os.environ.get("GPU_CHECK_PARAMS") or "{}")
results = {}
for nb in sys.argv[3:]:
    name = runner.resolve_notebook(nb)
    r = runner.run_script(nb, "demo", {**params, **per_notebook.get(name, {})}, timeout_s=cap)
    metrics_path = runner.repo_root() / "figures" / r.notebook / "metrics.json"
    m = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    results[r.notebook] = {"ok": r.ok, "wall_s": round(r.wall_s, 1), "error": r.error, "metrics": m.get("metrics"),
                           "checks": m.get("checks"), "device": m.get("device")}
    print(r.notebook, "ok" if r.ok else "FAILED " + r.error, f"{r.wall_s:.0f}s", flush=True)
    os.system(f"cp {r.output} {out}/ 2>/dev/null; cp -r {metrics_path.parent} {out}/figures_{r.notebook} 2>/dev/null")
json.dump(results, open(os.path.join(out, "notebooks.json"), "w"), indent=2)
PY

BENCH_SCAN_CPU=0 timeout 120 $PY bench/run.py ${GPU_CHECK_BENCH:-} > "$OUT_DIR/bench.log" 2>&1; cp bench/results.json "$OUT_DIR/bench_results.json" 2>/dev/null

$PY - "$OUT_DIR" "$FINAL_DIR" <<'PY'
import json, os, sys
out, final = sys.argv[1], sys.argv[2]
def read(name):
    p = os.path.join(out, name)
    if not os.path.exists(p): return None
    return json.load(open(p)) if name.endswith(".json") else open(p).read()
summary = {"device": read("device.txt"), "env": read("env.txt"), "cuda_tests": (read("cuda_tests.log") or "")[-2000:],
           "notebooks": read("notebooks.json"), "bench": read("bench_results.json")}
tmp = os.path.join(final, ".gpu_check.json.tmp")
json.dump(summary, open(tmp, "w"), indent=2)
os.replace(tmp, os.path.join(final, "gpu_check.json"))
print(json.dumps(summary, indent=2)[:6000])
PY
tar czf "$FINAL_DIR/gpu_check.tgz" -C "$OUT_DIR" . && rm -rf "$OUT_DIR"
ls -la "$FINAL_DIR"
