"""facelab.nn: the selective scan (ours vs the sequential reference, and vs mamba-ssm on CUDA)
and the cross-scan orders.

Both CPU backends, the chunked torch scan ("torch") and the compiled one-pass kernels ("numba",
skipped when numba is not installed), are held to the same tests against the reference. The
numba kernels are compiled on first use (a few seconds on 2 cores) and cached on disk; their
elementwise functions (exp, softplus, silu) are tested against float64 on their own, and one
test checks that the compiled kernels keep the properties their speed rests on.

Tolerances (stated once, used below):
* fp32, ours vs the reference: forward rtol 1e-4 / atol 1e-5; gradients rtol 1e-3 / atol 1e-4
  (the chunked form sums in a different order, and the gradients go through exp(+-e) factors;
  the numba kernels follow the reference's recurrence with their own exp (<= 1 ulp) and
  vectorised sums over the state; measured ~1e-7 of the output's scale forward, <= 1e-6 for the
  gradients, well inside these).
* bf16 inputs: both compute in fp32 and round the output to bf16 once, so they may differ by a
  bf16 rounding step: rtol 2e-2 / atol 2e-2; gradients (bf16 too) rtol 5e-2 / atol 5e-2.
* CUDA, ours vs mamba-ssm's kernel: fp32 max abs err <= 1e-3 (forward) / rtol 1e-3, atol 1e-3
  (gradients); bf16 rtol 3e-2 / atol 5e-2.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from facelab.nn import scan as scan_mod
from facelab.nn import scan_orders, selective_scan, selective_scan_reference

FP32_FWD = dict(rtol=1e-4, atol=1e-5)
FP32_GRAD = dict(rtol=1e-3, atol=1e-4)
BF16_FWD = dict(rtol=2e-2, atol=2e-2)
BF16_GRAD = dict(rtol=5e-2, atol=5e-2)

BACKENDS = ["torch", pytest.param("numba", marks=pytest.mark.skipif(
    not scan_mod.numba_available(), reason="numba is not installed"))]


def make_inputs(batch=2, d=6, length=37, n=4, bc="varying", groups=2, with_D=True, with_z=True,
                with_bias=True, dtype=torch.float32, device="cpu", seed=0, delta_scale=1.0):
    """Inputs in Mamba's usual ranges: A = -exp(A_log) with |A| in [1, 16], delta ~ 0.01-0.5."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape):
        return torch.randn(*shape, generator=g)
    u = rnd(batch, d, length)
    delta = (rnd(batch, d, length) * 0.5 - 1.5) * delta_scale
    A = -torch.exp(torch.rand(d, n, generator=g) * 2.77)
    shapes = {"invariant": (d, n), "varying": (batch, n, length), "grouped": (batch, groups, n, length)}
    if bc == "mixed":  # B time-invariant, C input-dependent
        B, C = rnd(*shapes["invariant"]), rnd(*shapes["varying"])
    else:
        B, C = rnd(*shapes[bc]), rnd(*shapes[bc])
    D = rnd(d) if with_D else None
    z = rnd(batch, d, length) if with_z else None
    bias = torch.rand(d, generator=g) * 0.5 if with_bias else None
    out = dict(u=u.to(dtype), delta=delta.to(dtype), A=A, B=B.to(dtype), C=C.to(dtype),
               D=D, z=None if z is None else z.to(dtype), delta_bias=bias)
    return {k: (None if v is None else v.to(device)) for k, v in out.items()}


def run(backend, inp, softplus=True, last=False, **kw):
    return selective_scan(inp["u"], inp["delta"], inp["A"], inp["B"], inp["C"], inp["D"], inp["z"],
                          inp["delta_bias"], softplus, last, backend=backend, **kw)


# ------------------------------------------------------------------ forward, fp32
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bc", ["invariant", "varying", "grouped", "mixed"])
@pytest.mark.parametrize("length", [1, 37, 64, 97])
def test_forward_matches_reference(backend, bc, length):
    inp = make_inputs(bc=bc, length=length)
    ours, h_ours = run(backend, inp, last=True, chunk_size=16)
    ref, h_ref = run("reference", inp, last=True)
    assert ours.shape == ref.shape == inp["u"].shape and ours.dtype == torch.float32
    assert h_ours.shape == h_ref.shape == (2, 6, 4)
    torch.testing.assert_close(ours, ref, **FP32_FWD)
    torch.testing.assert_close(h_ours, h_ref, **FP32_FWD)


OPTIONAL_TERMS = [(False, False, False, False), (True, False, False, True), (False, True, False, True),
                  (False, False, True, False), (True, True, True, True)]


def optional_inputs(with_D, with_z, with_bias, softplus, length=45, **kw):
    inp = make_inputs(length=length, with_D=with_D, with_z=with_z, with_bias=with_bias, **kw)
    if not softplus:  # raw delta must be positive to be a step size
        inp["delta"] = inp["delta"].abs() * 0.2
    return inp


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("with_D,with_z,with_bias,softplus", OPTIONAL_TERMS)
def test_optional_terms(backend, with_D, with_z, with_bias, softplus):
    inp = optional_inputs(with_D, with_z, with_bias, softplus)
    torch.testing.assert_close(run(backend, inp, softplus, chunk_size=8),
                               run("reference", inp, softplus), **FP32_FWD)


@pytest.mark.parametrize("backend", BACKENDS)
def test_last_state_is_state_after_final_step(backend):
    inp = make_inputs(length=29, with_D=False, with_z=False)
    _, h_full = run(backend, inp, last=True, chunk_size=8)  # 29 = 3 chunks of 8 + a padded one
    _, h_ref = run("reference", inp, last=True)
    torch.testing.assert_close(h_full, h_ref, **FP32_FWD)
    # splitting the sequence: the state after the first 20 steps, carried through the last 9
    # steps by hand with eq. (2a), gives the same final state
    first = {k: (v[..., :20] if v is not None and v.dim() == 3 and k != "B" and k != "C" else v)
             for k, v in inp.items()}
    first["B"], first["C"] = inp["B"][..., :20], inp["C"][..., :20]
    _, h = run(backend, first, last=True, chunk_size=8)
    dt = scan_mod._discretisation_step(inp["delta"], inp["delta_bias"], True)
    for t in range(20, 29):
        h = torch.exp(dt[:, :, t, None] * inp["A"]) * h \
            + (dt[:, :, t] * inp["u"][:, :, t])[:, :, None] * inp["B"][:, None, :, t]
    torch.testing.assert_close(h_full, h, **FP32_FWD)


@pytest.mark.parametrize("chunk", [2, 8, 32, 128])
def test_chunk_size_does_not_change_the_result(chunk):
    inp = make_inputs(length=70)
    torch.testing.assert_close(run("torch", inp, chunk_size=chunk), run("reference", inp), **FP32_FWD)


@pytest.mark.parametrize("scale,expected_chunk", [(0.5, 4), (-0.1, 2), (-6.0, 1)])
def test_large_decays_stay_finite_and_exact(scale, expected_chunk):
    # delta up to ~18 with |A| up to 16: exponents far beyond float32 range if exponentiated
    # naively over a chunk of 32; the chunk shrinks (down to the plain recurrence at 1).
    inp = make_inputs(length=50, delta_scale=scale)
    dt = scan_mod._discretisation_step(inp["delta"], inp["delta_bias"], True)
    assert scan_mod._safe_chunk(dt, inp["A"], 32) == expected_chunk
    for backend in ("torch", "numba") if scan_mod.numba_available() else ("torch",):
        ours, h = run(backend, inp, last=True, chunk_size=32)
        ref, h_ref = run("reference", inp, last=True)
        assert torch.isfinite(ours).all() and torch.isfinite(h).all()
        torch.testing.assert_close(ours, ref, **FP32_FWD)
        torch.testing.assert_close(h, h_ref, **FP32_FWD)


def test_safe_chunk_halves_only_when_needed():
    dt = torch.full((1, 3, 64), 0.05)
    A = -torch.full((3, 4), 16.0)
    assert scan_mod._safe_chunk(dt, A, 32) == 32          # 16 * 0.05 * 32 = 25.6 <= 40
    assert scan_mod._safe_chunk(dt * 4, A, 32) == 8       # 16 * 0.2 * T <= 40 -> T = 8
    assert scan_mod._safe_chunk(dt * 100, A, 32) == 1     # one step already exceeds the bound


# ------------------------------------------------------------------ gradients, fp32
def assert_grads_match(backend, inp, softplus=True, use_state=True):
    """Gradients of a random linear function of out (and of the last state) w.r.t. every input."""
    names = [k for k, v in inp.items() if v is not None]

    def grads(backend):
        leaves = {k: (v.clone().requires_grad_(True) if v is not None else None) for k, v in inp.items()}
        out, h = run(backend, leaves, softplus, last=True, chunk_size=16)
        g = torch.Generator().manual_seed(1)
        loss = (out * torch.randn(out.shape, generator=g)).sum()
        if use_state:
            loss = loss + (h * torch.randn(h.shape, generator=g)).sum()
        return torch.autograd.grad(loss, [leaves[k] for k in names])
    for name, a, b in zip(names, grads(backend), grads("reference")):
        assert a.shape == b.shape and a.dtype == b.dtype, name
        torch.testing.assert_close(a, b, **FP32_GRAD, msg=lambda m: f"d/d{name}: {m}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bc", ["invariant", "varying", "grouped", "mixed"])
def test_gradients_match_reference(backend, bc):
    # 150 steps: more than two of the numba backward's recomputed chunks (64), with a partial one
    assert_grads_match(backend, make_inputs(bc=bc, length=150 if backend == "numba" else 41))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("with_D,with_z,with_bias,softplus", OPTIONAL_TERMS)
def test_gradients_with_optional_terms(backend, with_D, with_z, with_bias, softplus):
    inp = optional_inputs(with_D, with_z, with_bias, softplus, length=70, bc="grouped", groups=3)
    assert_grads_match(backend, inp, softplus, use_state=with_z)  # also: out only, state unused


# ------------------------------------------------------------------ bf16
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bc", ["varying", "invariant"])
def test_bf16_matches_reference(backend, bc):
    inp = make_inputs(bc=bc, length=53, dtype=torch.bfloat16)
    ours = run(backend, inp, chunk_size=16)
    ref = run("reference", inp)
    assert ours.dtype == torch.bfloat16
    torch.testing.assert_close(ours.float(), ref.float(), **BF16_FWD)

    leaves_o = {k: (v.clone().requires_grad_(True) if v is not None else None) for k, v in inp.items()}
    leaves_r = {k: (v.clone().requires_grad_(True) if v is not None else None) for k, v in inp.items()}
    w = torch.randn(ours.shape, generator=torch.Generator().manual_seed(2))
    (run(backend, leaves_o, chunk_size=16).float() * w).sum().backward()
    (run("reference", leaves_r).float() * w).sum().backward()
    for k in ("u", "delta", "B", "C"):
        assert leaves_o[k].grad.dtype == torch.bfloat16, k
        torch.testing.assert_close(leaves_o[k].grad.float(), leaves_r[k].grad.float(), **BF16_GRAD)


# ------------------------------------------------------------------ numba: paths and special values
NUMBA_ONLY = pytest.mark.skipif(not scan_mod.numba_available(), reason="numba is not installed")


def assert_numba_matches_reference(inp):
    """Output, last state and every gradient of the numba kernels equal the sequential reference."""
    ours, h = run("numba", inp, last=True)
    ref, h_ref = run("reference", inp, last=True)
    torch.testing.assert_close(ours, ref, **FP32_FWD)
    torch.testing.assert_close(h, h_ref, **FP32_FWD)
    assert_grads_match("numba", inp)


@NUMBA_ONLY
@pytest.mark.parametrize("n", [1, 8, 16, 24])
@pytest.mark.parametrize("bc", ["varying", "grouped", "invariant"])
def test_numba_state_sizes(n, bc):
    # the state loops vectorise over n (8 lanes with AVX2): whole vectors, remainders, N < 8
    inp = make_inputs(bc=bc, length=70, n=n, d=4)
    assert_numba_matches_reference(inp)


@NUMBA_ONLY
@pytest.mark.parametrize("d,groups", [(1, 1), (5, 5), (9, 3), (7, 1)])
def test_numba_odd_channel_counts(d, groups):
    # the forward runs channels in pairs: an odd count leaves the last task one channel (computed
    # twice), and with an odd group size a pair straddles two groups of B and C
    inp = make_inputs(bc="grouped", d=d, groups=groups, length=70, n=8)
    assert_numba_matches_reference(inp)


@NUMBA_ONLY
@pytest.mark.parametrize("with_D,with_z,with_bias,softplus", OPTIONAL_TERMS)
def test_numba_inference_and_autograd_paths_agree(with_D, with_z, with_bias, softplus):
    # inference: the kernel does bias, softplus, D and the gate itself; with autograd torch does
    # them around the kernel. Same numbers up to float32 rounding.
    inp = optional_inputs(with_D, with_z, with_bias, softplus, length=80)
    with torch.no_grad():
        fast, h_fast = run("numba", inp, softplus, last=True)
    leaves = {k: (v.clone().requires_grad_(True) if v is not None else None) for k, v in inp.items()}
    slow, h_slow = run("numba", leaves, softplus, last=True)
    assert slow.requires_grad and not fast.requires_grad
    torch.testing.assert_close(fast, slow.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h_fast, h_slow.detach(), rtol=1e-5, atol=1e-6)


@NUMBA_ONLY
def test_numba_keeps_nan_and_inf_like_the_reference():
    # the kernels' fastmath flags exclude nnan/ninf: a nan in u poisons its channel from that
    # step on, an inf in z gives inf or nan exactly where the reference does
    inp = make_inputs(length=40, with_D=False)
    inp["u"][1, 2, 17] = float("nan")
    inp["z"][0, 3, 5] = float("inf")
    inp["z"][0, 4, 6] = float("-inf")
    ours, h = run("numba", inp, last=True)
    ref, h_ref = run("reference", inp, last=True)
    assert torch.equal(torch.isnan(ours), torch.isnan(ref)) and torch.isnan(ours[1, 2, 17:]).all()
    assert torch.equal(torch.isinf(ours), torch.isinf(ref))
    assert torch.equal(torch.isnan(h), torch.isnan(h_ref))
    fin = torch.isfinite(ref)
    torch.testing.assert_close(ours[fin], ref[fin], **FP32_FWD)


# ------------------------------------------------------------------ dispatch
def test_dispatch_never_imports_mamba_ssm_on_cpu():
    had = any(m == "mamba_ssm" or m.startswith("mamba_ssm.") for m in sys.modules)
    inp = make_inputs(length=20)
    out_auto = run("auto", inp)
    # on CPU, "auto" is the compiled scan when numba imports, else the chunked torch scan
    expected = "numba" if scan_mod.numba_available() else "torch"
    torch.testing.assert_close(out_auto, run(expected, inp), rtol=0, atol=0)
    if not torch.cuda.is_available():
        assert not scan_mod.mamba_ssm_available()
        with pytest.raises(RuntimeError):
            run("mamba_ssm", inp)
        if not had:
            assert not any(m == "mamba_ssm" or m.startswith("mamba_ssm.") for m in sys.modules)
    with pytest.raises(ValueError):
        run("cuda-please", inp)


@pytest.mark.skipif(not scan_mod.numba_available(), reason="numba is not installed")
def test_numba_caches_under_facelab_cache_dir(tmp_path):
    # a fresh interpreter without NUMBA_CACHE_DIR: loading the backend points numba's cache into
    # facelab's cache dir (writable even when the package dir is not) before numba is imported
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["FACELAB_CACHE"] = str(tmp_path)
    code = ("import facelab.nn.scan as s; assert s.numba_available(); "
            "import numba.core.config as c; print(c.CACHE_DIR)")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(tmp_path / "numba")


def _elementwise(which, xs):
    """The kernels' own elementwise function (0 exp, 1 softplus, 2 silu) as compiled into a
    vectorised loop under the kernels' fastmath flags (scan_numba.elementwise_f32)."""
    import numpy as np
    from facelab.nn import scan_numba
    xs = np.ascontiguousarray(xs, dtype=np.float32)
    out = np.empty_like(xs)
    scan_numba.elementwise_f32(xs, out, which)
    return out


def _ulp_error(ours, exact):
    import numpy as np
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    return np.abs(ours.astype(np.float64) - exact) / ulp


@pytest.mark.skipif(not scan_mod.numba_available(), reason="numba is not installed")
def test_numba_exp_accuracy_and_ranges():
    # scan_numba's vectorisable exp against float64's exp: <= 1 ulp on [-87.3, 88.37]
    # (0.85 measured), i.e. relative error < 1.2e-7 where the decays exp(delta A) live
    import numpy as np
    xs = np.concatenate([np.linspace(-87.3, 88.37, 200001), np.linspace(-1, 1, 20001),
                         -np.logspace(-8, 1.9, 2001), np.logspace(-8, 1.9, 2001)]).astype(np.float32)
    exact = np.exp(xs.astype(np.float64))
    ours = _elementwise(0, xs)
    assert _ulp_error(ours, exact).max() <= 1.0
    assert (np.abs(ours - exact) / exact).max() < 1.2e-7
    # documented ranges: 0 at and below -87.68 (incl. -inf), correct denormals just above,
    # inf from 88.38 (float32 overflows at 88.72), nan stays nan
    low = np.array([-np.inf, -1e30, -1e4, -104.0, -88.5, -88.0, -87.7], np.float32)
    assert (_elementwise(0, low) == 0).all()
    den = np.array([-87.6, -87.5, -87.4], np.float32)
    np.testing.assert_allclose(_elementwise(0, den), np.exp(den.astype(np.float64)), rtol=1e-3)
    high = np.array([88.38, 88.72, 89.0, 100.0, 1e4, np.inf], np.float32)
    assert np.isposinf(_elementwise(0, high)).all()
    assert _elementwise(0, np.array([0.0], np.float32))[0] == 1.0
    assert np.isnan(_elementwise(0, np.array([np.nan, 1.0], np.float32))).tolist() == [True, False]


@pytest.mark.skipif(not scan_mod.numba_available(), reason="numba is not installed")
def test_numba_softplus_and_silu_accuracy():
    # the inference kernel's softplus (delta) and silu (gate) against float64
    import numpy as np
    xs = np.concatenate([np.linspace(-80, 80, 160001), np.linspace(-1e-3, 1e-3, 2001),
                         -np.logspace(-30, 1.9, 3001), np.logspace(-30, 1.9, 3001)]).astype(np.float32)
    x64 = xs.astype(np.float64)
    sp = _elementwise(1, xs)
    exact = np.logaddexp(0.0, x64)
    keep = exact > 1e-37                  # normal float32 results
    assert _ulp_error(sp[keep], exact[keep]).max() <= 4.0
    np.testing.assert_allclose(sp, torch.nn.functional.softplus(torch.from_numpy(xs)).numpy(),
                               rtol=5e-7, atol=1e-37)
    edge = _elementwise(1, np.array([-np.inf, -1e4, 0.0, 30.0, 1e30, np.inf, np.nan], np.float32))
    assert edge[:5].tolist() == [0.0, 0.0, np.float32(np.log(2.0)), 30.0, np.float32(1e30)]
    assert np.isposinf(edge[5]) and np.isnan(edge[6])
    si = _elementwise(2, xs)
    exact = x64 / (1.0 + np.exp(-x64))
    keep = np.abs(exact) > 1e-37
    assert _ulp_error(si[keep], exact[keep]).max() <= 3.0
    edge = _elementwise(2, np.array([-1e4, 0.0, 1e4, np.inf, np.nan], np.float32))
    assert edge[:3].tolist() == [0.0, 0.0, 1e4] and np.isposinf(edge[3]) and np.isnan(edge[4])


@pytest.mark.skipif(not scan_mod.numba_available(), reason="numba is not installed")
def test_numba_kernels_vectorise():
    # The kernels' speed rests on two properties of the compiled code (scan_numba's docstring):
    # numba marks every array argument of the parallel loop noalias (so the body must not create
    # array views), and LLVM vectorises the loops (float vector types in the IR). A fresh,
    # uncached compile of each kernel, because numba cannot inspect cached code.
    import re

    import numpy as np
    from numba import njit
    from facelab.nn import scan_numba as sn
    f4 = lambda *s: np.zeros(s, np.float32)  # noqa: E731
    u, A, Bm, v = f4(1, 2, 70), f4(2, 4), f4(1, 1, 70, 4), f4(2)
    calls = {
        "scan_forward": (u, u, v, True, A, Bm, Bm, v, True, u, True, f4(1, 2, 70), f4(1, 2, 4),
                         f4(1, 2, 2, 4), f4(1, 2, 4)),
        "scan_backward": (u, u, A, Bm, Bm, f4(1, 2, 2, 4), u, f4(1, 2, 4), 2, f4(1, 2, 70),
                          f4(1, 2, 70), f4(1, 2, 4), f4(1, 2, 70, 4), f4(1, 2, 70, 4),
                          f4(2, sn.CHUNK + 1, 4), f4(2, sn.CHUNK, 4), f4(2, 4)),
    }
    for name, args in calls.items():
        fn = njit(parallel=True, fastmath=sn._FASTMATH)(getattr(sn, name).py_func)
        fn(*args)
        llvm_ir = next(iter(fn.inspect_llvm().values()))
        kernels = [ln for ln in llvm_ir.splitlines()
                   if ln.startswith("define") and "linkonce_odr" in ln and "numba_parfor_gufunc" in ln]
        assert len(kernels) == 1, name
        data = set(re.findall(r"ptr[^,]*%arg\.([A-Za-z_]\w*)\.4\b", kernels[0]))
        noalias = set(re.findall(r"ptr noalias[^,]*%arg\.([A-Za-z_]\w*)\.4\b", kernels[0]))
        assert len(data) >= 10 and data == noalias, (name, sorted(data - noalias))
        assert re.search(r"<\d+ x float>", llvm_ir), name


@pytest.mark.skipif(not scan_mod.numba_available(), reason="numba is not installed")
def test_numba_one_specialisation():
    from facelab.nn import scan_numba
    for bc in ("invariant", "varying", "grouped", "mixed"):
        for with_z in (False, True):
            inp = make_inputs(bc=bc, length=9, with_z=with_z, with_D=with_z, with_bias=with_z)
            leaves = {k: (v.clone().requires_grad_(True) if v is not None else None) for k, v in inp.items()}
            run("numba", leaves).sum().backward()
            run("numba", {k: v.bfloat16() if v is not None else None for k, v in inp.items()})
            run("numba", inp, softplus=False)
    # every shape and option goes through the same compiled code (compile time is paid once)
    assert len(scan_numba.scan_forward.signatures) == 1
    assert len(scan_numba.scan_backward.signatures) == 1


def test_reference_backend_is_the_reference():
    inp = make_inputs(length=12)
    torch.testing.assert_close(run("reference", inp),
                               selective_scan_reference(inp["u"], inp["delta"], inp["A"], inp["B"],
                                                        inp["C"], inp["D"], inp["z"],
                                                        inp["delta_bias"], True))


# ------------------------------------------------------------------ scan orders
@pytest.mark.parametrize("h,w", [(1, 1), (1, 5), (4, 1), (3, 5), (6, 6)])
def test_scan_orders_are_permutations_and_invert(h, w):
    orders = scan_orders(h, w)
    assert len(orders) == 8
    x = torch.randn(2, 3, h * w)
    ident = torch.arange(h * w)
    for name, (order, inv) in orders.items():
        assert torch.equal(order.sort().values, ident), name
        assert torch.equal(order[inv], ident) and torch.equal(inv[order], ident), name
        assert torch.equal(x[..., order][..., inv], x), name
        rev_name = name[:-4] if name.endswith("_rev") else name + "_rev"
        assert torch.equal(orders[rev_name][0], order.flip(0))


def test_scan_orders_routes():
    o = scan_orders(2, 3)  # positions 0 1 2 / 3 4 5
    assert o["rows"][0].tolist() == [0, 1, 2, 3, 4, 5]
    assert o["cols"][0].tolist() == [0, 3, 1, 4, 2, 5]
    assert o["diag"][0].tolist() == [2, 1, 5, 0, 4, 3]
    assert o["antidiag"][0].tolist() == [0, 1, 3, 2, 4, 5]


@pytest.mark.parametrize("how", ["doubling", "matmul"])
@pytest.mark.parametrize("length", [1, 2, 7, 8, 64])
def test_cuda_cumsums_equal_cumsum(length, how):
    # the CUDA path's within-chunk cumsums (see scan._cumsum_last), checked on the CPU, with gradients
    fn = {"doubling": scan_mod._cumsum_doubling, "matmul": scan_mod._cumsum_matmul}[how]
    x = torch.randn(3, 5, 2, length, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 5, 2, length, dtype=torch.float64)
    torch.testing.assert_close(fn(x), x.cumsum(-1))
    g1, = torch.autograd.grad((fn(x) * w).sum(), x)
    g2, = torch.autograd.grad((x.cumsum(-1) * w).sum(), x)
    torch.testing.assert_close(g1, g2)


def test_mamba_adapter_mends_the_kernels_invariant_b_cases():
    # A stand-in with the two behaviours measured on mamba-ssm 2.3.2.post1 (H200): it rejects a
    # bf16 time-invariant B, and leaves B out of the last state it returns. Through the adapter
    # the answers must be the reference's.
    def buggy_kernel(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state):
        if B.dim() == 2 and B.dtype != A.dtype:
            raise RuntimeError("Expected B.scalar_type() == weight_type")
        res = scan_mod.selective_scan_reference(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                                return_last_state)
        if return_last_state and B.dim() == 2:
            return res[0], res[1] / B
        return res
    call = scan_mod._mamba_adapter(buggy_kernel)
    inp = make_inputs(bc="mixed", length=40)
    args = [inp[k] for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")]
    out, h = call(*args, True, True)
    ref, h_ref = run("reference", inp, last=True)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(h, h_ref)
    args[3] = args[3].bfloat16()
    call(*args, True, True)  # the raw stand-in raises here
    with pytest.raises(RuntimeError):
        buggy_kernel(*args, True, True)


# ------------------------------------------------------------------ CUDA: ours vs the kernel
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("bc", ["varying", "invariant", "grouped"])
def test_cuda_matches_mamba_kernel(dtype, bc):
    if not scan_mod.mamba_ssm_available():
        pytest.skip("mamba-ssm's kernel is not importable")
    inp = make_inputs(batch=2, d=64, length=300, n=16, bc=bc, dtype=dtype, device="cuda")

    def fwd_bwd(backend):
        leaves = {k: (v.clone().requires_grad_(True) if v is not None else None) for k, v in inp.items()}
        out, h = run(backend, leaves, last=True)
        w = torch.randn(out.shape, generator=torch.Generator().manual_seed(3)).to(out)
        (out.float() * w.float()).sum().backward()
        return out.float(), h.float(), {k: v.grad.float() for k, v in leaves.items() if v is not None}
    o_ours, h_ours, g_ours = fwd_bwd("torch")
    o_kern, h_kern, g_kern = fwd_bwd("mamba_ssm")
    if dtype == torch.float32:
        assert (o_ours - o_kern).abs().max().item() <= 1e-3
        torch.testing.assert_close(h_ours, h_kern, rtol=1e-3, atol=1e-3)
        for k in g_ours:
            torch.testing.assert_close(g_ours[k], g_kern[k], rtol=1e-3, atol=1e-3, msg=lambda m: f"{k}: {m}")
    else:
        torch.testing.assert_close(o_ours, o_kern, rtol=3e-2, atol=5e-2)
        for k in ("u", "delta", "B", "C", "z"):
            torch.testing.assert_close(g_ours[k], g_kern[k], rtol=3e-2, atol=5e-2, msg=lambda m: f"{k}: {m}")


@pytest.mark.parametrize("how", ["doubling", "matmul"])
@pytest.mark.parametrize("two_level", [False, True])
def test_torch_scan_with_the_cuda_cumsums_matches_reference(monkeypatch, how, two_level):
    # the whole chunked path as it runs on CUDA (its cumsums swapped in; the carry between chunks
    # in two levels, as on large tensors), forward and gradients; 300 steps: 75 chunks of 4 here
    fn = {"doubling": scan_mod._cumsum_doubling, "matmul": scan_mod._cumsum_matmul}[how]
    monkeypatch.setattr(scan_mod, "_cumsum_last", fn)
    monkeypatch.setattr(scan_mod, "_TWO_LEVEL_MIN", 0 if two_level else 1 << 62)
    inp = make_inputs(bc="varying", length=300)
    leaves = {k: v.clone().requires_grad_(True) for k, v in inp.items()}
    out, h = run("torch", leaves, last=True)
    ref, h_ref = run("reference", inp, last=True)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(h, h_ref, rtol=1e-4, atol=1e-4)
    ref_leaves = {k: v.clone().requires_grad_(True) for k, v in inp.items()}
    g = torch.autograd.grad(out.sum(), list(leaves.values()))
    g_ref = torch.autograd.grad(run("reference", ref_leaves).sum(), list(ref_leaves.values()))
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("n", [1, 5, 8, 9, 64, 100, 129, 600])
def test_two_level_carry_equals_doubling(n):
    # the inter-chunk carry (scan._linear_scan_blocked) vs the one-level doubling, with gradients;
    # 600 steps recurse three times (600 -> 75 -> 10 -> 2); lengths not a multiple of 8 take the padding
    g = torch.Generator().manual_seed(n)
    a = (torch.rand(3, 4, n, generator=g, dtype=torch.float64) * 0.9 + 0.05).requires_grad_(True)
    x = torch.randn(3, 4, n, generator=g, dtype=torch.float64).requires_grad_(True)
    w = torch.randn(3, 4, n, generator=g, dtype=torch.float64)
    two, one = scan_mod._linear_scan_blocked(a, x), scan_mod._linear_scan(a, x)
    torch.testing.assert_close(two, one)
    seq, h = [], torch.zeros(3, 4, dtype=torch.float64)      # the recurrence itself, step by step
    for k in range(n):
        h = a[..., k] * h + x[..., k]
        seq.append(h)
    torch.testing.assert_close(two, torch.stack(seq, -1))
    g_two = torch.autograd.grad((two * w).sum(), (a, x), allow_unused=True)   # n = 1: h = x, a unused
    g_one = torch.autograd.grad((one * w).sum(), (a, x), allow_unused=True)
    for p, q in zip(g_two, g_one):
        assert (p is None) == (q is None)
        if p is not None:
            torch.testing.assert_close(p, q)
