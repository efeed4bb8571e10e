"""facelab.nn.scan_triton: the Triton selective scan against the sequential reference.

Without CUDA the kernels run in Triton's interpreter (numpy, slow). triton reads
``TRITON_INTERPRET`` when it is first imported (its own library, and our kernels, are then built
for the interpreter) and again at each launch, so:

* if triton is not imported yet in this process (e.g. ``pytest tests/test_scan_triton.py``), this
  module sets ``TRITON_INTERPRET=1`` (it stays set for the rest of the process: triton is now the
  interpreter's) and runs the tests here;
* if something imported triton before without it (``torch._dynamo`` does, e.g. in a whole-suite
  run), the tests here skip and one test reruns this file in a fresh ``pytest`` process with
  ``TRITON_INTERPRET=1``.

With CUDA the same tests run the compiled kernels on the GPU, and the ``cuda``-marked test compares
them at a larger size with the reference and with mamba-ssm's kernel (when it imports). The
interpreter checks the arithmetic, not the compiled code (layouts, register pressure, the GPU's
exp): that needs a device run.

Sizes are small (the interpreter runs a few 1e4 scan elements per second); chunks of 8 steps, so
that lengths 7, 19, 33 cover one partial chunk, several chunks and a padded last one.

Tolerances: fp32 rtol 1e-4 / atol 1e-5 for the output, the last state and every gradient (the
kernels sum in another order than the reference; measured <= ~2e-5 relative); bf16 as in
tests/test_scan.py (output rtol/atol 2e-2, gradients 5e-2).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from facelab.nn import scan as scan_mod
from facelab.nn import selective_scan

HAS_CUDA = torch.cuda.is_available()
HAS_TRITON = importlib.util.find_spec("triton") is not None
_CHILD_ENV = "FACELAB_SCAN_TRITON_CHILD"


def _import_scan_triton():
    """facelab.nn.scan_triton, built for the interpreter when there is no CUDA; None when triton is
    missing or was imported in this process without the interpreter."""
    if not HAS_TRITON:
        return None
    if not HAS_CUDA:
        if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
            return None
        os.environ["TRITON_INTERPRET"] = "1"
    mod = importlib.import_module("facelab.nn.scan_triton")
    return mod if HAS_CUDA or mod.interpreted() else None


st = _import_scan_triton()
IN_PROCESS = st is not None          # the kernels run in this process (compiled, or interpreted)
DEVICE = "cuda" if HAS_CUDA else "cpu"


@pytest.fixture(autouse=True)
def _kernels_here(request):
    if not IN_PROCESS and request.node.originalname != "test_interpreter_run_in_a_fresh_process":
        pytest.skip("triton missing, or imported here without TRITON_INTERPRET=1 "
                    "(see test_interpreter_run_in_a_fresh_process)")


@pytest.mark.skipif(IN_PROCESS or not HAS_TRITON or HAS_CUDA or os.environ.get(_CHILD_ENV) == "1",
                    reason="the tests run in this process")
def test_interpreter_run_in_a_fresh_process():
    env = {**os.environ, "TRITON_INTERPRET": "1", _CHILD_ENV: "1"}
    root = Path(__file__).resolve().parents[1]
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not cuda",
                          str(Path(__file__).resolve())],
                         cwd=root, env=env, capture_output=True, text=True, timeout=900)
    # the child runs every test but the CUDA one (deselected) and this one (skipped there)
    assert res.returncode == 0 and " passed" in res.stdout, (res.stdout[-4000:], res.stderr[-2000:])


FP32 = dict(rtol=1e-4, atol=1e-5)
BF16_FWD = dict(rtol=2e-2, atol=2e-2)
BF16_GRAD = dict(rtol=5e-2, atol=5e-2)
NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
CHUNK = 8


def make_inputs(batch=2, d=4, length=33, n=4, device=DEVICE, **kw):
    """tests/test_scan.py's inputs (Mamba's ranges), with this file's small default sizes and device."""
    from test_scan import make_inputs as scan_inputs  # tests/ is on sys.path under pytest

    return scan_inputs(batch, d, length, n, device=device, **kw)


def run(backend, inp, softplus=True, last=False, **kw):
    return selective_scan(*(inp[k] for k in NAMES), softplus, last, backend=backend, **kw)


def fwd_bwd(backend, inp, softplus=True, use_out=True, use_state=True, **kw):
    """Output, last state, and the gradients of a random linear function of them w.r.t. every input."""
    leaves = {k: (v.detach().clone().requires_grad_(True) if v is not None else None) for k, v in inp.items()}
    out, h = run(backend, leaves, softplus, last=True, **kw)
    g = torch.Generator().manual_seed(1)
    loss = 0
    if use_out:
        loss = loss + (out.float() * torch.randn(out.shape, generator=g).to(out.device)).sum()
    if use_state:
        loss = loss + (h * torch.randn(h.shape, generator=g).to(h.device)).sum()
    names = [k for k in NAMES if leaves[k] is not None]
    grads = torch.autograd.grad(loss, [leaves[k] for k in names], allow_unused=True)
    # an input the loss does not reach (C when only the last state counts): zero gradient
    grads = [torch.zeros_like(leaves[k]) if gr is None else gr for k, gr in zip(names, grads)]
    return out.detach(), h.detach(), dict(zip(names, grads))


def assert_matches_reference(inp, softplus=True, use_out=True, use_state=True, tol=FP32, grad_tol=FP32,
                             grad_names=None):
    o, h, g = fwd_bwd("triton", inp, softplus, use_out, use_state, chunk_size=CHUNK)
    o_ref, h_ref, g_ref = fwd_bwd("reference", inp, softplus, use_out, use_state)
    assert o.shape == o_ref.shape and o.dtype == o_ref.dtype == inp["u"].dtype
    assert h.shape == h_ref.shape and h.dtype == torch.float32
    torch.testing.assert_close(o.float(), o_ref.float(), **tol)
    torch.testing.assert_close(h, h_ref, **tol)
    assert g.keys() == g_ref.keys()
    for k in grad_names or g:
        assert g[k].shape == g_ref[k].shape and g[k].dtype == g_ref[k].dtype, k
        torch.testing.assert_close(g[k].float(), g_ref[k].float(), **grad_tol, msg=lambda m: f"d/d{k}: {m}")


# ------------------------------------------------------------------ fp32: forward, state, gradients
@pytest.mark.parametrize("bc", ["varying", "invariant", "grouped", "mixed"])
@pytest.mark.parametrize("length", [1, 7, 33])
def test_matches_reference(bc, length):
    assert_matches_reference(make_inputs(bc=bc, length=length))


@pytest.mark.parametrize("n", [1, 8, 16])
@pytest.mark.parametrize("bc", ["varying", "grouped"])
def test_state_sizes(n, bc):
    # N = 1 (a 1-wide state tile), 8, 16 (Mamba's usual); the block of channels shrinks to fit
    # the groups (d 6 in 3 groups: blocks of 2 channels, one group each)
    assert_matches_reference(make_inputs(bc=bc, n=n, d=6, groups=3, length=19))


OPTIONAL_TERMS = [(False, False, False, False), (True, False, False, True), (False, True, False, True),
                  (False, False, True, False), (True, True, True, True)]


@pytest.mark.parametrize("with_D,with_z,with_bias,softplus", OPTIONAL_TERMS)
def test_optional_terms(with_D, with_z, with_bias, softplus):
    inp = make_inputs(length=21, with_D=with_D, with_z=with_z, with_bias=with_bias, bc="grouped")
    if not softplus:  # a raw delta must be positive to be a step size
        inp["delta"] = inp["delta"].abs() * 0.2
    # the loss reads the output and the last state, or only one of them (then the backward gets
    # no gradient for the other: None)
    assert_matches_reference(inp, softplus, use_out=with_z or with_D, use_state=with_z or not with_D)


def test_large_decays_stay_finite():
    # Delta up to ~18 with |A| up to 16: the kernels only multiply decays in (0, 1], no exp(+x).
    # Gradients at test_scan.py's fp32 gradient tolerance here: dA and dDelta use
    # A_bar_t h_{t-1} = h_t - B_bar_t u_t (as mamba-ssm's backward does), which loses digits when
    # the decay is ~0 and h_t ~ B_bar_t u_t (measured: 2e-5 absolute on a dA of 0.02).
    for scale in (0.5, -6.0):
        inp = make_inputs(length=25, delta_scale=scale)
        o, h, g = fwd_bwd("triton", inp, chunk_size=CHUNK)
        assert torch.isfinite(o).all() and torch.isfinite(h).all()
        assert all(torch.isfinite(v).all() for v in g.values())
        assert_matches_reference(inp, grad_tol=dict(rtol=1e-3, atol=1e-4))


@pytest.mark.parametrize("chunk", [2, 16, 64])
def test_chunk_size_does_not_change_the_result(chunk):
    inp = make_inputs(length=29, bc="mixed")
    o, h, g = fwd_bwd("triton", inp, chunk_size=chunk)
    o_ref, h_ref, g_ref = fwd_bwd("reference", inp)
    torch.testing.assert_close(o, o_ref, **FP32)
    torch.testing.assert_close(h, h_ref, **FP32)
    for k in g:
        torch.testing.assert_close(g[k], g_ref[k], **FP32, msg=lambda m: f"d/d{k}: {m}")


def test_inference_path_equals_autograd_path():
    # without autograd: the forward kernel alone, no checkpoints stored
    inp = make_inputs(length=23, bc="grouped")
    with torch.no_grad():
        o, h = run("triton", inp, last=True, chunk_size=CHUNK)
    o2, h2, _ = fwd_bwd("triton", inp, chunk_size=CHUNK)
    torch.testing.assert_close(o, o2, rtol=0, atol=0)
    torch.testing.assert_close(h, h2, rtol=0, atol=0)
    assert not o.requires_grad


def test_gradients_only_for_some_inputs():
    # only u and B require grad (e.g. frozen weights): same numbers as the reference for them
    inp = make_inputs(length=17)
    leaves = {k: v.clone().requires_grad_(k in ("u", "B")) for k, v in inp.items()}
    out = run("triton", leaves, chunk_size=CHUNK)
    ref_leaves = {k: v.clone().requires_grad_(k in ("u", "B")) for k, v in inp.items()}
    ref = run("reference", ref_leaves)
    gu, gB = torch.autograd.grad(out.sum(), [leaves["u"], leaves["B"]])
    ru, rB = torch.autograd.grad(ref.sum(), [ref_leaves["u"], ref_leaves["B"]])
    torch.testing.assert_close(gu, ru, **FP32)
    torch.testing.assert_close(gB, rB, **FP32)


def test_non_contiguous_inputs_are_made_contiguous():
    inp = make_inputs(length=13, bc="grouped")
    # same values, transposed memory layouts (and B/C as slices of a larger tensor)
    t = {k: (v.transpose(-1, -2).contiguous().transpose(-1, -2) if v is not None and v.dim() >= 2 else v)
         for k, v in inp.items()}
    t["B"] = torch.cat([inp["B"], inp["B"]], dim=-1)[..., :13]
    assert not t["u"].is_contiguous() and not t["B"].is_contiguous() and not t["A"].is_contiguous()
    o, h, g = fwd_bwd("triton", t, chunk_size=CHUNK)
    o_ref, h_ref, g_ref = fwd_bwd("reference", inp)
    torch.testing.assert_close(o, o_ref, **FP32)
    torch.testing.assert_close(h, h_ref, **FP32)
    for k in g:
        torch.testing.assert_close(g[k], g_ref[k], **FP32, msg=lambda m: f"d/d{k}: {m}")


# ------------------------------------------------------------------ bf16 / fp16
@pytest.mark.parametrize("bc", ["varying", "invariant", "grouped"])
def test_bf16_matches_reference(bc):
    # bf16 inputs, float32 arithmetic and state, bf16 output and gradients of the bf16 inputs
    inp = make_inputs(bc=bc, length=27, dtype=torch.bfloat16)
    assert_matches_reference(inp, tol=BF16_FWD, grad_tol=BF16_GRAD)


def test_fp16_forward_matches_reference():
    inp = make_inputs(length=20, dtype=torch.float16)
    out = run("triton", inp, chunk_size=CHUNK)
    assert out.dtype == torch.float16
    torch.testing.assert_close(out.float(), run("reference", inp).float(), **BF16_FWD)


# ------------------------------------------------------------------ bad input
def _args(**over):
    inp = make_inputs(length=9)
    inp.update(over)
    return [inp[k] for k in NAMES]


@pytest.mark.parametrize("name,bad,expected", [
    ("delta", torch.zeros(2, 4, 8), "delta: expected shape (2, 4, 9)"),
    ("z", torch.zeros(2, 4), "z: expected shape (2, 4, 9)"),
    ("A", torch.zeros(5, 4), "A: expected shape (D=4, N)"),
    ("B", torch.zeros(2, 3, 9), "B: expected shape (D=4, N=4)"),
    ("C", torch.zeros(4, 5), "C: expected shape"),
    ("B", torch.zeros(2, 3, 4, 9), "cannot be split into 3 groups"),
    ("D", torch.zeros(3), "D: expected shape (4,)"),
    ("delta_bias", torch.zeros(4, 1), "delta_bias: expected shape (4,)"),
    ("u", torch.zeros(2, 4), "u: expected shape (batch, D, L)"),
])
def test_shape_errors_name_expected_and_got(name, bad, expected):
    args = _args(**{name: bad.to(DEVICE)})
    with pytest.raises(ValueError) as err:
        st.selective_scan_triton(*args)
    msg = str(err.value)
    assert expected in msg and str(tuple(bad.shape)) in msg, msg
    with pytest.raises(ValueError):      # also through the dispatcher
        selective_scan(*args, backend="triton")


@pytest.mark.parametrize("dtype", [torch.float64, torch.int32])
def test_unsupported_dtype_names_the_supported_ones(dtype):
    args = _args()
    args[0] = args[0].to(dtype)
    with pytest.raises(TypeError, match=r"float32, bfloat16 and float16.*u with dtype"):
        selective_scan(*args, backend="triton")


def test_tensors_on_two_devices():
    args = _args()
    args[2] = args[2].to("meta")
    with pytest.raises(ValueError, match="one device"):
        st.selective_scan_triton(*args)


def test_without_cuda_or_interpreter_triton_errors_and_auto_works():
    # a fresh interpreter with no GPU visible and no TRITON_INTERPRET: an explicit "triton" is a
    # clear RuntimeError, "auto" keeps to the CPU backends, triton_available() says no
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["CUDA_VISIBLE_DEVICES"] = ""
    code = """
import torch
from facelab.nn import scan as s
u = torch.randn(1, 2, 5); A = -torch.rand(2, 3) - 0.5; B = torch.randn(1, 3, 5)
assert not s.triton_available()
try:
    s.selective_scan(u, u.abs(), A, B, B, backend="triton")
except RuntimeError as e:
    assert "TRITON_INTERPRET" in str(e) and "CUDA" in str(e), e
else:
    raise AssertionError("no error")
out = s.selective_scan(u, u.abs(), A, B, B, backend="auto")
torch.testing.assert_close(out, s.selective_scan_reference(u, u.abs(), A, B, B), rtol=1e-4, atol=1e-5)
print("ok")
"""
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stderr[-3000:]


def test_dispatch():
    inp = make_inputs(length=11)
    torch.testing.assert_close(run("triton", inp, chunk_size=CHUNK),
                               st.selective_scan_triton(*(inp[k] for k in NAMES), True, chunk_size=CHUNK),
                               rtol=0, atol=0)
    assert scan_mod.triton_available()
    if not HAS_CUDA:
        # on CPU tensors "auto" never picks the interpreter: numba or the torch scan
        expected = "numba" if scan_mod.numba_available() else "torch"
        torch.testing.assert_close(run("auto", inp), run(expected, inp), rtol=0, atol=0)


# ------------------------------------------------------------------ CUDA: compiled kernels
@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")
@pytest.mark.parametrize("dtype,bc", [(torch.float32, "varying"), (torch.float32, "invariant"),
                                      (torch.bfloat16, "grouped")])
def test_cuda_matches_reference_and_mamba_kernel(dtype, bc):
    # the compiled kernels at a larger size (default chunk and blocks; several chunks, N = 16)
    inp = make_inputs(batch=2, d=64, length=300, n=16, bc=bc, groups=4, dtype=dtype, device="cuda")
    o, h, g = fwd_bwd("triton", inp)
    o_ref, h_ref, g_ref = fwd_bwd("reference", inp)
    fwd_tol, grad_tol = (dict(rtol=1e-4, atol=1e-4), dict(rtol=1e-3, atol=1e-3)) if dtype == torch.float32 \
        else (BF16_FWD, BF16_GRAD)
    torch.testing.assert_close(o.float(), o_ref.float(), **fwd_tol)
    torch.testing.assert_close(h, h_ref, **fwd_tol)
    for k in g:
        torch.testing.assert_close(g[k].float(), g_ref[k].float(), **grad_tol, msg=lambda m: f"d/d{k}: {m}")
    if scan_mod.mamba_ssm_available():
        o_k, h_k, g_k = fwd_bwd("mamba_ssm", inp)
        kt = dict(rtol=1e-3, atol=1e-3) if dtype == torch.float32 else dict(rtol=3e-2, atol=5e-2)
        torch.testing.assert_close(o.float(), o_k.float(), **kt)
        torch.testing.assert_close(h, h_k.float(), **kt)
        for k in ("u", "delta", "B", "C", "z"):
            torch.testing.assert_close(g[k].float(), g_k[k].float(), **kt, msg=lambda m: f"d/d{k}: {m}")
