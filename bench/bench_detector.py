"""Benchmark of notebook 01's detectors: FER-YOLO-Mamba (VSS neck) vs the YOLOX-s CNN baseline.

The models are written in the notebook (``notebooks/01_fer_yolo_mamba.py``, the paper's novel
part lives there); this file imports them from ``facelab.papers.fer_yolo_mamba``, the module
generated from the notebook's ``export`` cells (nothing is trained), and measures, at YOLOX-s sizes (depth 0.33,
width 0.5, 7 classes):

* ``det_{vss,csp}_params_M``;
* ``det_{vss,csp}_gflops_320``: torch.utils.flop_counter (convs and matmuls) at 320x320, batch
  1, plus ``det_vss_scan_gflops_320``, the selective scans' estimate (9 FLOPs per channel x
  position x state, which the counter cannot see inside the kernel);
* ``det_{vss,csp}_img_per_s_320_b{1,32}_{cpu,cuda}``: forward passes per second of the whole
  detector (no NMS). On CUDA the best of fp32, bf16 autocast + channels-last, and that replayed
  from a CUDA graph; the variants are also reported (``..._fp32``, ``..._bf16cl``, ``..._graph``);
  ``FACELAB_BENCH_COMPILE=<mode>`` adds ``..._compile_graph`` (``torch.compile`` and a CUDA graph;
  compiled alone it was slower than eager on an H100: the scan kernel is a graph break);
* ``det_{vss,csp}_train_steps_per_s_320_b{32,4}_{cpu,cuda}``: training steps per second on random
  scenes (batch 32 on CUDA, 4 on a CPU): YOLOX's batch augmentation, forward, SimOTA loss,
  backward, clipping, AdamW and the EMA update, as notebook 01's demo runs them (bf16 autocast
  and channels-last on CUDA).

``run(quick)`` returns the flat dict; ``quick`` times fewer repetitions (and batch 8 instead of
32 on a CPU, named ``_b8_``).
"""
from __future__ import annotations

import os
import sys

import torch

def load_notebook_models() -> dict:
    """Notebook 01's model code, as exported to ``facelab.papers.fer_yolo_mamba`` (its cells tagged
    ``export``; ``python -m facelab export`` writes the module, tests/test_export.py keeps it current)."""
    from facelab.papers import fer_yolo_mamba

    return vars(fer_yolo_mamba)


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
                    variants["compile_graph"] = {"amp_dtype": torch.bfloat16, "channels_last": True,
                                                 "compile": compile_mode, "cuda_graph": True}
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
        batch = 32 if cuda else 4
        out[f"det_{kind}_train_steps_per_s_320_b{batch}_{tag}"] = round(
            train_step_rate(ns, kind, dev, batch, steps=(5 if quick else 20) if cuda else 2), 3)
    return out


def train_step_rate(ns, kind: str, dev, batch: int, steps: int, size: int = 320) -> float:
    """Training steps per second of one detector on random scenes (1-4 random boxes each)."""
    import time

    from facelab.nn import yolox as Y
    from facelab.nn.ema import EMA

    g = torch.Generator().manual_seed(0)
    images = (torch.rand(batch, 3, size, size, generator=g) * 255).to(torch.uint8).to(dev)
    targets = torch.full((batch, 8, 5), -1.0)
    for i in range(batch):
        for j in range(int(torch.randint(1, 5, (1,), generator=g))):
            x0, y0 = (torch.rand(2, generator=g) * (size - 150)).tolist()
            s = float(40 + torch.rand(1, generator=g) * 110)
            targets[i, j] = torch.tensor([float(torch.randint(0, 7, (1,), generator=g)), x0, y0, x0 + s, y0 + s])
    targets = targets.to(dev)
    torch.manual_seed(0)
    model = ns["build_detector"](kind, 0.5, 0.33, 7).to(dev).train()
    cuda = dev.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    loss_fn = Y.YOLOXLoss(7, model.strides)
    ema = EMA(model, 0.999, ramp="exp", tau=500)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def step():
        x, t = Y.augment_batch(images.float() / 255, targets, g, mosaic=0.5, mixup=0.5)
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda):
            out = model(x)
        loss, _ = loss_fn(out, t)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        ema.update(model)
        return loss.item()   # the training loop reads the loss every step too

    step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return steps / (time.perf_counter() - t0)


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
