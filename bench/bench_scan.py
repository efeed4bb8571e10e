"""Benchmark of facelab.nn.selective_scan: our CPU backends (the compiled numba kernels and the
chunked PyTorch scan) vs the sequential reference (CPU, all measured in the same run, interleaved,
median of several repeats after a warm-up call that also pays numba's compile or cache load) and
vs mamba-ssm's CUDA kernel (when a GPU and mamba-ssm exist). Sizes: batch 2, 192 channels,
length 1024, state 16 (the bench size) and batch 8, 768 channels, length 1024, state 16 (the
issue's GPU size, also run on the CPU); fp32, B/C input-dependent, with D, z, delta_bias and
softplus.

``run(quick)`` returns a flat dict, units in the names:
scan_numba_ms_cpu (when numba imports), scan_torch_ms_cpu, scan_reference_ms_cpu (forward only),
scan_speedup_vs_reference_cpu (the default CPU backend, i.e. what ``backend="auto"`` picks, vs the
reference), scan_default_fwdbwd_ms_cpu, scan_reference_fwdbwd_ms_cpu,
scan_fwdbwd_speedup_vs_reference_cpu (forward + backward of all inputs); the same default-vs-
reference keys with the suffix ``_8x768`` at the GPU size (fewer repeats: one reference
forward + backward takes seconds there; quick mode skips the forward + backward);
scan_speedup_vs_reference_cpu_1thread (bench size, forward, CPU time of this process with torch
and numba on one thread each: the ratio of the work done, robust to a shared machine);
scan_threads_cpu and scan_load_avg_1min (start) / scan_load_avg_1min_end; and, on CUDA (batch 8,
768 channels), cuda_device, scan_torch_ms_cuda (the default, matmul cumsum),
scan_torch_doubling_ms_cuda, scan_torch_compiled_ms_cuda (``BENCH_SCAN_COMPILE=1``),
scan_reference_ms_cuda, scan_torch_speedup_vs_reference_cuda, scan_kernel_ms_cuda,
scan_<variant>_over_kernel_cuda, and the same with ``_fwdbwd`` for forward + backward; the Triton
kernels (:mod:`facelab.nn.scan_triton`, when triton imports) as variant ``triton``:
scan_triton_ms_cuda, scan_triton_over_kernel_cuda (mamba-ssm's kernel = 1) and
scan_triton_over_torch_cuda (our PyTorch scan = 1), each also with ``_fwdbwd``.
``BENCH_SCAN_CPU=0`` runs the CUDA rows only (a lent GPU's minutes are short).
Goals: speedup vs reference >= 20 on CPU; ours within 10x of the kernel on a GPU.
"""
from __future__ import annotations

import json
import os
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


def _call(inp, backend, **kw):
    return selective_scan(inp["u"], inp["delta"], inp["A"], inp["B"], inp["C"], inp["D"], inp["z"],
                          inp["delta_bias"], True, False, backend=backend, **kw)


def _fwd_bwd(inp, backend, **kw):
    leaves = {k: v.clone().requires_grad_(True) for k, v in inp.items()}
    with torch.enable_grad():
        out = _call(leaves, backend, **kw)
        w = torch.ones_like(out)  # any cotangent; the backward's cost does not depend on it
        torch.autograd.grad(out, list(leaves.values()), w)


def _time_ms(fns, reps, sync=lambda: None, clock=time.perf_counter):
    """Median ms per call for each function, interleaved so machine noise hits all alike."""
    for f in fns.values():
        f()
    sync()
    times = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            sync()
            t0 = clock()
            f()
            sync()
            times[k].append((clock() - t0) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def _cpu_one_thread_speedup(inp, backend, reps):
    """Reference over ``backend``, forward, in CPU time of this process with torch and numba on
    one thread each: the work each does, which other processes on the machine barely change."""
    n_torch = torch.get_num_threads()
    set_numba = None
    if backend == "numba":
        import numba
        n_numba, set_numba = numba.get_num_threads(), numba.set_num_threads
        set_numba(1)
    torch.set_num_threads(1)
    try:
        ms = _time_ms({b: (lambda b=b: _call(inp, b)) for b in (backend, "reference")}, reps,
                      clock=time.process_time)
    finally:
        torch.set_num_threads(n_torch)
        if set_numba is not None:
            set_numba(n_numba)
    return ms["reference"] / ms[backend]


def run(quick: bool = False) -> dict[str, float]:
    if os.environ.get("BENCH_SCAN_CPU", "1") == "0":  # on a lent GPU: its minutes are for the GPU rows
        return _run_cuda(quick) if torch.cuda.is_available() else {}
    res: dict[str, float] = {"scan_load_avg_1min": round(os.getloadavg()[0], 2),
                             "scan_threads_cpu": float(torch.get_num_threads())}
    default = "numba" if scan_mod.numba_available() else "torch"  # what "auto" picks on CPU
    with torch.no_grad():
        inp = _inputs(2, 192, 1024, 16, "cpu")
        fns = {b: (lambda b=b: _call(inp, b)) for b in ("numba", "torch", "reference")
               if b != "numba" or default == "numba"}
        ms = _time_ms(fns, reps=3 if quick else 7)
        if "numba" in ms:
            res["scan_numba_ms_cpu"] = ms["numba"]
        res["scan_torch_ms_cpu"] = ms["torch"]
        res["scan_reference_ms_cpu"] = ms["reference"]
        res["scan_speedup_vs_reference_cpu"] = ms["reference"] / ms[default]
        res["scan_speedup_vs_reference_cpu_1thread"] = _cpu_one_thread_speedup(
            inp, default, reps=3 if quick else 7)
    ms = _time_ms({b: (lambda b=b: _fwd_bwd(inp, b)) for b in (default, "reference")},
                  reps=3 if quick else 5)
    res["scan_default_fwdbwd_ms_cpu"] = ms[default]
    res["scan_reference_fwdbwd_ms_cpu"] = ms["reference"]
    res["scan_fwdbwd_speedup_vs_reference_cpu"] = ms["reference"] / ms[default]
    # the GPU size on the CPU: the reference's steps are large vectorised torch ops here,
    # no longer dominated by per-op overhead
    big = _inputs(8, 768, 1024, 16, "cpu")
    with torch.no_grad():
        ms = _time_ms({b: (lambda b=b: _call(big, b)) for b in (default, "reference")},
                      reps=1 if quick else 3)
    res["scan_default_ms_cpu_8x768"] = ms[default]
    res["scan_reference_ms_cpu_8x768"] = ms["reference"]
    res["scan_speedup_vs_reference_cpu_8x768"] = ms["reference"] / ms[default]
    if not quick:
        ms = _time_ms({b: (lambda b=b: _fwd_bwd(big, b)) for b in (default, "reference")}, reps=2)
        res["scan_default_fwdbwd_ms_cpu_8x768"] = ms[default]
        res["scan_reference_fwdbwd_ms_cpu_8x768"] = ms["reference"]
        res["scan_fwdbwd_speedup_vs_reference_cpu_8x768"] = ms["reference"] / ms[default]
    del big
    res["scan_load_avg_1min_end"] = round(os.getloadavg()[0], 2)
    if torch.cuda.is_available():
        res.update(_run_cuda(quick))
    return res


def _run_cuda(quick: bool, device: str = "cuda") -> dict[str, float]:
    """The issue's GPU size: ours (chunked PyTorch), our Triton kernels, mamba-ssm's kernel and the
    sequential reference, forward and forward + backward, in one interleaved run. Ours is timed with
    each within-chunk cumsum (``scan.CUDA_CUMSUM``: "matmul", the default, and "doubling") and, with
    ``BENCH_SCAN_COMPILE=1``, under ``torch.compile`` too (``compile=True``; its compile time is
    reported). ``device`` other than "cuda" is a dry run of this code on the CPU."""
    is_cuda = device == "cuda"
    res: dict[str, float] = {"cuda_device": torch.cuda.get_device_name(0) if is_cuda else device}
    sync = torch.cuda.synchronize if is_cuda else (lambda: None)
    inp = _inputs(*((8, 768, 1024, 16) if is_cuda else (1, 16, 64, 4)), device)

    def ours(how, compile=False, backward=False):
        def f():
            scan_mod.CUDA_CUMSUM = how
            try:
                if backward:
                    _fwd_bwd(inp, "torch", compile=compile)
                else:
                    _call(inp, "torch", compile=compile)
            finally:
                scan_mod.CUDA_CUMSUM = "auto"
        return f

    variants = {"torch": "matmul", "torch_doubling": "doubling"}
    compile_s = {}
    for backward in (False, True):
        fns = {name: ours(how, backward=backward) for name, how in variants.items()}
        if os.environ.get("BENCH_SCAN_COMPILE") == "1":
            t0 = time.perf_counter()
            with torch.no_grad() if not backward else torch.enable_grad():
                ours("matmul", compile=True, backward=backward)()
            sync()
            compile_s[backward] = time.perf_counter() - t0
            fns["torch_compiled"] = ours("matmul", compile=True, backward=backward)
        if is_cuda and scan_mod.triton_available():  # on the CPU only the interpreter: not timed
            fns["triton"] = (lambda: _fwd_bwd(inp, "triton")) if backward else (lambda: _call(inp, "triton"))
        if scan_mod.mamba_ssm_available() and is_cuda:
            fns["mamba_ssm"] = (lambda: _fwd_bwd(inp, "mamba_ssm")) if backward else (lambda: _call(inp, "mamba_ssm"))
        if backward:
            ms = _time_ms(fns, reps=5 if quick else 20, sync=sync)
        else:
            with torch.no_grad():
                ms = _time_ms(fns, reps=10 if quick else 50, sync=sync)
        tag = "_fwdbwd" if backward else ""
        for name in fns:
            if name != "mamba_ssm":
                res[f"scan_{name}{tag}_ms_cuda"] = ms[name]
        if "triton" in ms:
            res[f"scan_triton_over_torch{tag}_cuda"] = ms["triton"] / ms["torch"]
        if "mamba_ssm" in ms:
            res[f"scan_kernel{tag}_ms_cuda"] = ms["mamba_ssm"]
            for name in fns:
                if name != "mamba_ssm":
                    res[f"scan_{name}_over_kernel{tag}_cuda"] = ms[name] / ms["mamba_ssm"]
    for backward, secs in compile_s.items():
        res[f"scan_torch_compile_s{'_fwdbwd' if backward else ''}_cuda"] = secs
    with torch.no_grad():
        ref = _time_ms({"reference": lambda: _call(inp, "reference")}, reps=1 if quick else 3, sync=sync)
    res["scan_reference_ms_cuda"] = ref["reference"]
    res["scan_torch_speedup_vs_reference_cuda"] = ref["reference"] / res["scan_torch_ms_cuda"]
    return res


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
