"""Benchmark of notebook 01's detectors: FER-YOLO-Mamba (VSS neck) vs the YOLOX-s CNN baseline.

The models are defined in the notebook (``notebooks/01_fer_yolo_mamba.py``, the paper's novel
part lives there); this file takes the notebook's imports, classes and ``build_detector``
(top-level definitions only, nothing is trained) and measures, at YOLOX-s sizes (depth 0.33,
width 0.5, 7 classes):

* ``det_{vss,csp}_params_M``;
* ``det_{vss,csp}_gflops_320``: torch.utils.flop_counter (convs and matmuls) at 320x320, batch
  1, plus ``det_vss_scan_gflops_320``, the selective scans' estimate (9 FLOPs per channel x
  position x state, which the counter cannot see inside the kernel);
* ``det_{vss,csp}_img_per_s_320_b{1,32}_{cpu,cuda}``: forward passes per second of the whole
  detector (no NMS). On CUDA the best of fp32, bf16 autocast + channels-last, and that replayed
  from a CUDA graph; the variants are also reported (``..._fp32``, ``..._bf16cl``, ``..._graph``);
  ``FACELAB_BENCH_COMPILE=<mode>`` adds a ``torch.compile`` variant.

``run(quick)`` returns the flat dict; ``quick`` times fewer repetitions (and batch 8 instead of
32 on a CPU, named ``_b8_``).
"""
from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import torch

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01_fer_yolo_mamba.py"


def load_notebook_models(path: Path = NOTEBOOK) -> dict:
    """Execute only the notebook's top-level imports, classes and ``build_detector`` / helper
    functions that do not touch the notebook's run-time state; return that namespace."""
    tree = ast.parse(path.read_text())
    keep = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom, ast.ClassDef))
            or (isinstance(n, ast.FunctionDef) and n.name == "build_detector")]
    ns: dict = {"__name__": "fer_yolo_mamba_defs"}
    exec(compile(ast.Module(keep, type_ignores=[]), str(path), "exec"), ns)
    if "build_detector" not in ns or "SS2D" not in ns:
        raise RuntimeError(f"{path} no longer defines build_detector and SS2D at top level")
    return ns


def _scan_flops(ns, model, size):
    total = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: total.append(
        (9 * mod.d_state + 1) * mod.K * mod.d_inner * inp[0].shape[1] * inp[0].shape[2] * inp[0].shape[0]))
        for m in model.modules() if isinstance(m, ns["SS2D"])]
    p = next(model.parameters())
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, size, size, device=p.device))
    for h in hooks:
        h.remove()
    return sum(total)


def run(quick: bool = False) -> dict:
    from facelab.nn import yolox as Y

    ns = load_notebook_models()
    cuda = torch.cuda.is_available()
    dev = torch.device("cuda" if cuda else "cpu")
    tag = dev.type
    big = 32 if (cuda or not quick) else 8
    reps = (5 if quick else 30) if cuda else (1 if quick else 3)
    compile_mode = os.environ.get("FACELAB_BENCH_COMPILE") or None
    out: dict = {}
    for kind in ("vss", "csp"):
        torch.manual_seed(0)
        m = ns["build_detector"](kind, 0.5, 0.33, 7)
        out[f"det_{kind}_params_M"] = round(Y.count_params(m) / 1e6, 4)
        conv = Y.count_flops(m, 320)
        scan = _scan_flops(ns, m, 320) if kind == "vss" else 0
        if kind == "vss":
            out["det_vss_scan_gflops_320"] = round(scan / 1e9, 4)
        out[f"det_{kind}_gflops_320"] = round((conv + scan) / 1e9, 4)
        for bs in (1, big):
            variants = {"fp32": {}}
            if cuda:
                variants["bf16cl"] = {"amp_dtype": torch.bfloat16, "channels_last": True}
                variants["graph"] = {"amp_dtype": torch.bfloat16, "channels_last": True, "cuda_graph": True}
                if compile_mode:
                    variants["compile"] = {"amp_dtype": torch.bfloat16, "channels_last": True, "compile": compile_mode}
            best = 0.0
            for vname, kw in variants.items():
                torch.manual_seed(0)
                model = ns["build_detector"](kind, 0.5, 0.33, 7).to(dev)
                try:
                    v = Y.throughput(model, 320, bs, reps=reps, warmup=1 if not cuda else 3, **kw)
                except Exception as e:  # e.g. a graph capture that the scan backend does not allow
                    print(f"bench_detector: {kind} b{bs} {vname} failed: {type(e).__name__}: {e}", file=sys.stderr)
                    continue
                if cuda:
                    out[f"det_{kind}_img_per_s_320_b{bs}_{tag}_{vname}"] = round(v, 2)
                best = max(best, v)
            out[f"det_{kind}_img_per_s_320_b{bs}_{tag}"] = round(best, 2)
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
