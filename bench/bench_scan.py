"""Benchmark of facelab.nn.selective_scan: our CPU backends (the compiled numba kernels and the
chunked PyTorch scan) vs the sequential reference (CPU, all measured in the same run, interleaved,
median of several repeats after a warm-up call that also pays numba's compile or cache load) and
vs mamba-ssm's CUDA kernel (when a GPU and mamba-ssm exist). Sizes: batch 2, 192 channels,
length 1024, state 16, fp32, B/C input-dependent, with D, z, delta_bias and softplus.

``run(quick)`` returns a flat dict, units in the names:
scan_numba_ms_cpu (when numba imports), scan_torch_ms_cpu, scan_reference_ms_cpu (forward only),
scan_speedup_vs_reference_cpu (the default CPU backend, i.e. what ``backend="auto"`` picks, vs the
reference), scan_default_fwdbwd_ms_cpu, scan_reference_fwdbwd_ms_cpu,
scan_fwdbwd_speedup_vs_reference_cpu (forward + backward of all inputs) and, on CUDA,
scan_torch_ms_cuda, scan_kernel_ms_cuda, scan_torch_over_kernel_cuda.
Goals: speedup vs reference >= 20 on CPU; ours within 10x of the kernel on a GPU.
"""
from __future__ import annotations

import json
import statistics
import sys
import time

import torch

from facelab.nn import scan as scan_mod
from facelab.nn import selective_scan


def _inputs(batch, d, length, n, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = dict(
        u=torch.randn(batch, d, length, generator=g),
        delta=torch.randn(batch, d, length, generator=g) * 0.5 - 2.0,
        A=-torch.exp(torch.rand(d, n, generator=g) * 2.77),   # |A| in [1, 16] like Mamba's init
        B=torch.randn(batch, n, length, generator=g),
        C=torch.randn(batch, n, length, generator=g),
        D=torch.randn(d, generator=g),
        z=torch.randn(batch, d, length, generator=g),
        delta_bias=torch.rand(d, generator=g) * 0.1,
    )
    return {k: v.to(device) for k, v in t.items()}


def _call(inp, backend):
    return selective_scan(inp["u"], inp["delta"], inp["A"], inp["B"], inp["C"], inp["D"], inp["z"],
                          inp["delta_bias"], True, False, backend=backend)


def _fwd_bwd(inp, backend):
    leaves = {k: v.clone().requires_grad_(True) for k, v in inp.items()}
    with torch.enable_grad():
        out = _call(leaves, backend)
        w = torch.ones_like(out)  # any cotangent; the backward's cost does not depend on it
        torch.autograd.grad(out, list(leaves.values()), w)


def _time_ms(fns, reps, sync=lambda: None):
    """Median ms per call for each function, interleaved so machine noise hits all alike."""
    for f in fns.values():
        f()
    sync()
    times = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            sync()
            t0 = time.perf_counter()
            f()
            sync()
            times[k].append((time.perf_counter() - t0) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def run(quick: bool = False) -> dict[str, float]:
    res: dict[str, float] = {}
    with torch.no_grad():
        inp = _inputs(2, 192, 1024, 16, "cpu")
        default = "numba" if scan_mod.numba_available() else "torch"  # what "auto" picks on CPU
        fns = {b: (lambda b=b: _call(inp, b)) for b in ("numba", "torch", "reference")
               if b != "numba" or default == "numba"}
        ms = _time_ms(fns, reps=3 if quick else 7)
        if "numba" in ms:
            res["scan_numba_ms_cpu"] = ms["numba"]
        res["scan_torch_ms_cpu"] = ms["torch"]
        res["scan_reference_ms_cpu"] = ms["reference"]
        res["scan_speedup_vs_reference_cpu"] = ms["reference"] / ms[default]
        ms = _time_ms({b: (lambda b=b: _fwd_bwd(inp, b)) for b in (default, "reference")},
                      reps=3 if quick else 5)
        res["scan_default_fwdbwd_ms_cpu"] = ms[default]
        res["scan_reference_fwdbwd_ms_cpu"] = ms["reference"]
        res["scan_fwdbwd_speedup_vs_reference_cpu"] = ms["reference"] / ms[default]
        if torch.cuda.is_available():
            inp = _inputs(8, 768, 1024, 16, "cuda")
            fns = {"torch": lambda: _call(inp, "torch")}
            if scan_mod.mamba_ssm_available():
                fns["kernel"] = lambda: _call(inp, "mamba_ssm")
            ms = _time_ms(fns, reps=10 if quick else 50, sync=torch.cuda.synchronize)
            res["scan_torch_ms_cuda"] = ms["torch"]
            if "kernel" in ms:
                res["scan_kernel_ms_cuda"] = ms["kernel"]
                res["scan_torch_over_kernel_cuda"] = ms["torch"] / ms["kernel"]
    return res


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
