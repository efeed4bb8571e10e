"""The selective scan as two compiled CPU kernels (numba): one pass over time, no state tensor.

The chunked torch scan (:mod:`facelab.nn.scan`) materialises the (batch, D, N, L) state and moves
it through memory about nine times; on a CPU that memory traffic, not arithmetic, is the cost.
Here every (batch, channel) is an independent recurrence (the forward runs two channels per
task) that walks over time with its N-dim state and writes only y, exactly the recurrence of
Gu & Dao (2023), eq. (2a)/(2b)::

    h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t,     y_t = C_t . h_t (+ D u_t, times silu(z_t))

:func:`scan_forward` serves both callers. Inference (no autograd): one call does everything,
delta_t = softplus(delta_t + bias) before the recurrence and the skip term and gate after it,
those elementwise steps vectorised over t. With autograd: torch applies bias and softplus before
the kernel and D u and the gate after it (the shared helpers of :mod:`facelab.nn.scan`), so
autograd differentiates them exactly as the reference, and the kernel also stores checkpoints
for :func:`scan_backward`.

Backward (the adjoint of that recurrence, run backwards in time). Write a_t = exp(delta_t A)
(per state index n), gy_t = dL/dy_t and lambda_t = dL/dh_t, the total gradient reaching h_t.
Since h_t feeds y_t and h_{t+1} = a_{t+1} h_t + ...::

    lambda_t = gy_t C_t + a_{t+1} lambda_{t+1},        lambda_{L-1} = gy_{L-1} C_{L-1} + dL/dh_last

and every input's gradient is a local product with lambda_t:

    dL/dC_t     = gy_t h_t
    dL/dB_t     = lambda_t delta_t u_t
    dL/du_t     = delta_t sum_n lambda_t B_t
    dL/ddelta_t = sum_n lambda_t (A a_t h_{t-1} + B_t u_t)       (d a_t / d delta_t = A a_t)
    dL/dA       = sum_t lambda_t delta_t a_t h_{t-1}                (d a_t / d A = delta_t a_t)

The backward needs h_{t-1} in reverse order; dividing the recurrence backwards would divide by
a_t (which underflows to 0), so the forward pass stores the state at the start of every chunk of
``CHUNK`` steps (1/CHUNK of the state, a few hundred KB) and the backward recomputes one chunk's
states and decays into (CHUNK+1, N) buffers that stay in L1 cache, then walks them backwards.

B and C: channel d reads group d // (D // G) of a (Bb, G, Lb, N) array, Bb in {1, batch},
Lb in {1, L}, state innermost so that one time step's N values are one contiguous row. All of
mamba-ssm's shapes map onto it ((D, N) -> (1, D, 1, N), (batch, N, L) -> (batch, 1, L, N), a
transposed copy of B and C only, 1/D of the state's size), so each kernel has exactly one
specialisation (float32, C-contiguous, fixed ranks; optional inputs as flags and dummy arrays)
and is compiled once per machine (``cache=True``).

Speed: SIMD over the state index
--------------------------------
Per time step a task does N state updates, each an exp, two multiply-adds and a term of the dot
product C_t . h_t. The loops over n are written so that LLVM vectorises them (8 float32 lanes
with AVX2: N = 16 is two vectors per step):

* :func:`_exp` is an exp made of float arithmetic only (no libm call, no branch), inlined into
  the loop and vectorised with the rest of its body. So are :func:`_softplus` and :func:`_silu`
  in the elementwise loops (compiled with ``error_model="numpy"``: numba's default check for a
  division by zero is a branch and a call, which blocks vectorisation).
* fastmath flags ``reassoc, contract, nsz, arcp`` on the kernels: ``contract`` turns a*b+c into
  FMAs, ``reassoc`` lets the dot product and the backward's sums over n run as vector
  reductions (summed in a different order than the reference's left-to-right sum: a few float32
  ulp, far inside the tests' tolerances). Not ``nnan``/``ninf``: inf and nan inputs keep their
  meaning. The elementwise functions are compiled with ``contract`` only, and LLVM keeps every
  instruction's own flags when it inlines them, so the rounding trick in :func:`_exp`
  ((y + M) - M) is never "simplified" away (the tests check these functions as compiled into
  such a loop, :func:`elementwise_f32`).
* No aliasing questions: numba marks the parallel loop's array arguments ``noalias`` when the
  loop body creates no array views (``find_potential_aliases`` in numba's parfor lowering finds
  none), which holds here because the body indexes every array in full (``A[d, n]``, never
  ``Ad = A[d]``) and keeps its scratch in arrays passed in (the backward's chunk buffers are
  rows of scratch arguments, so are the forward's running states, and its step sizes live in
  y's row until step t overwrites them). With views or local arrays LLVM has to guard each
  inner loop with run-time overlap checks - one set per time step - and it gave up vectorising
  the backward's loops altogether (too many checks): about 2x slower. Inputs may alias one
  another (they are only read); outputs and scratch are fresh arrays. A test checks the
  attribute and the vector instructions in the compiled kernels.

Measured (AMD EPYC, AVX2, one thread, CPU time, batch 2, D 192, L 1024, N 16), against the
previous kernels (scalar exp, no fastmath, views): the whole inference call, softplus and gate
included, 16 -> 5.7 ms (the recurrence alone 13 -> 5 ms); the backward kernel 42 -> 10.6 ms.

Elementwise functions (accuracy measured against float64 numpy, and tested)
---------------------------------------------------------------------------
:func:`_exp`: exp(x) = 2^k exp(r) with k = round(x / ln 2) and r = x - k ln 2 in
[-ln2/2, ln2/2] (ln 2 split into a high part exact in float32 and a low correction, so r
carries no cancellation error). exp(r) is 1 + r + r^2 q(r) with q a degree-4 polynomial fitted
to exp on that interval (Lawson-weighted least squares on Chebyshev nodes, i.e. near-minimax
relative error: 3.1e-9 in exact arithmetic, below float32's rounding). k and 2^k come from one
rounding: t = x log2(e) + (1.5 * 2^23 + 127) leaves k + 127 in the low mantissa bits of t, so
k = t - (1.5 * 2^23 + 127) exactly, and shifting t's bits left by 23 puts k + 127 into the
exponent field: 2^k with no float-int conversion. Error <= 0.85 ulp (relative 7.4e-8) on
[-87.3, 88.37]. Ranges: x is clamped to [-88, 89]; x <= -87.68 (k = -127: exponent field 0)
gives exactly 0 (the true value is a denormal below 2^-126.5), so large negative arguments and
-inf give 0; -87.68 < x < -87.34 gives the correct denormal; x >= 88.38 (k = 128) gives +inf
(exp overflows float32 at 88.72, so this is up to 30% early - irrelevant for decays
exp(delta A) <= 1); nan stays nan (the clamps are written so that a nan passes through).

:func:`_softplus` = max(x, 0) + log1p(exp(-|x|)) with :func:`_log1p` on [0, 1]: within 4 ulp
(relative 3.1e-7) of log(1 + e^x) where that is above 1e-37; x for large x, 0 for -inf and for
x < -87.68. :func:`_silu` = z / (1 + exp(-z)): within 2.5 ulp; -0 for z < -88.38.

Gradients of B and C sum over the channels that share a group. The backward's tasks are
(batch, block of channels) with blocks that never straddle a group; each task adds into its own
slice of a partial-sum array (no races), and the caller sums the blocks with torch.

Importing this module imports numba; :mod:`facelab.nn.scan` does it lazily, after pointing
``NUMBA_CACHE_DIR`` to facelab's cache directory.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch
from llvmlite import ir
from numba import get_num_threads, njit, prange, types
from numba.extending import intrinsic

__all__ = ["selective_scan_numba", "CHUNK", "elementwise_f32"]

#: Time steps between two stored states (forward), i.e. the length of a recomputed chunk (backward).
CHUNK = 64

#: fastmath flags of the kernels (module docstring): FMA contraction and reassociation of sums,
#: but no assumption that values are finite.
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}

# float32 constants: a bare Python float literal would promote float32 arithmetic to float64.
_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)
# exp (see the module docstring)
_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)          # 8 significant bits: k * _LN2_HI is exact for |k| < 2^16
_LN2_LO = np.float32(0.693147180559945309 - 0.693359375)
_SHIFTER = np.float32(12582912.0 + 127.0)  # 1.5 * 2^23 + 127: t = y + _SHIFTER holds round(y) + 127
_EXP_LO = np.float32(-88.0)                # rounds to k = -127: exponent field 0, result 0
_EXP_HI = np.float32(89.0)                 # rounds to k = 128: exponent field 255, result inf
# exp(r) ~ 1 + r + r^2 (P2 + r (P3 + r (P4 + r (P5 + r P6)))) on |r| <= ln2/2 (fitted, see above)
_P2, _P3, _P4, _P5, _P6 = (np.float32(c) for c in (
    0.49999993451625874, 0.16666520688657072, 0.041668387373901286,
    0.008368709961310856, 0.0013814613093045963))


# log1p (softplus of the inference kernel): log(m) = 2 atanh(s) = 2 (s + s^3/3 + ... + s^9/9)
_SQRT2 = np.float32(1.4142135623730951)
_HALF = np.float32(0.5)
_TWO = np.float32(2.0)
_LN2 = np.float32(0.6931471805599453)
_THIRD, _FIFTH, _SEVENTH, _NINTH = (np.float32(1.0 / k) for k in (3, 5, 7, 9))


@intrinsic
def _float_from_bits(typingctx, bits):
    """Reinterpret an int32 bit pattern as a float32 (no conversion)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


@intrinsic
def _bits_from_float(typingctx, x):
    """Reinterpret a float32 as its int32 bit pattern (no conversion)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))
    return types.int32(types.float32), codegen


@njit(fastmath={"contract"}, cache=True)
def _exp(x):
    """exp of a float32: branch-free float arithmetic that vectorises (module docstring)."""
    xc = _EXP_LO if x < _EXP_LO else x                  # a nan fails both tests and passes through
    xc = _EXP_HI if xc > _EXP_HI else xc
    t = xc * _LOG2E + _SHIFTER                          # low mantissa bits: k + 127, k = round(x/ln2)
    kf = t - _SHIFTER                                   # k, exactly
    r = (xc - kf * _LN2_HI) - kf * _LN2_LO              # x - k ln 2, |r| <= ln2/2
    p = _ONE + r * (_ONE + r * (_P2 + r * (_P3 + r * (_P4 + r * (_P5 + r * _P6)))))
    return p * _float_from_bits(_bits_from_float(t) << np.int32(23))   # times 2^k


@njit(fastmath={"contract"}, error_model="numpy", cache=True)
def _log1p(v):
    """log(1 + v) for v in [0, 1] (the softplus below), branch-free like :func:`_exp`.

    w = 1 + v rounds; log(w) is k ln 2 + log(m) with m = w or w / 2 in [0.71, 1.42] and
    log(m) = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.172, summed to s^9/9 (relative
    truncation error 2e-9); then log1p(v) = log(w) v / (w - 1) undoes the rounding of 1 + v
    (w - 1 is exact), and v itself where w rounded to 1. nan stays nan.
    """
    w = _ONE + v
    big = w > _SQRT2
    m = w * _HALF if big else w
    kln2 = _LN2 if big else _ZERO
    s = (m - _ONE) / (m + _ONE)
    s2 = s * s
    logw = kln2 + _TWO * s * (_ONE + s2 * (_THIRD + s2 * (_FIFTH + s2 * (_SEVENTH + s2 * _NINTH))))
    wm1 = w - _ONE
    return v if wm1 == _ZERO else logw * (v / wm1)


@njit(fastmath={"contract"}, cache=True)
def _softplus(x):
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)): no overflow, exact limits (x for large x,
    0 for -inf); torch's softplus (threshold 20) agrees to float32 rounding."""
    return (x if x > _ZERO else _ZERO) + _log1p(_exp(-abs(x)))


@njit(fastmath={"contract"}, error_model="numpy", cache=True)
def _silu(z):
    """z sigmoid(z) = z / (1 + exp(-z)) (0 for z -> -inf, where exp(-z) is inf)."""
    return z / (_ONE + _exp(-z))


@njit(fastmath=_FASTMATH, cache=True)
def elementwise_f32(x, out, which):
    """out[i] = f(x[i]) over 1-d float32 arrays for f = :func:`_exp` (which 0), :func:`_softplus`
    (1) or :func:`_silu` (2), compiled like the kernels (inlined into a vectorised loop under
    their fastmath flags): what the tests check these functions against."""
    if which == 0:
        for i in range(x.shape[0]):
            out[i] = _exp(x[i])
    elif which == 1:
        for i in range(x.shape[0]):
            out[i] = _softplus(x[i])
    else:
        for i in range(x.shape[0]):
            out[i] = _silu(x[i])


@njit(parallel=True, fastmath=_FASTMATH, cache=True)
def scan_forward(u, delta, bias, softplus, A, Bm, Cm, Dskip, has_D, z, has_z, y, h_last, ckpt, state):
    """The forward pass, one task per (batch, pair of channels), in parallel over the tasks.

    Per task: (1) step sizes delta_t = softplus(delta + bias) (or delta + bias) into y's rows,
    vectorised over t; (2) the recurrence (2a)/(2b) for both channels in one loop over the state
    index (vectorised over n; two channels per time step share the loop overhead and the
    broadcast constants of the exp: 13% faster than one), each step reading delta_t from y and
    overwriting it with C_t . h_t; (3) y += D u and y *= silu(z), vectorised over t. With an odd
    number of channels the last task computes its channel twice (e = d), identically, so its
    duplicate writes agree. The autograd path passes its own delta (bias and softplus already
    applied by torch) with a zero bias, softplus, has_D and has_z False, so that torch
    differentiates those steps; the inference path lets the kernel do them all.

    u, delta, z, y: (batch, D, L) float32 (z only read when has_z); bias, Dskip: (D,) (Dskip only
    read when has_D); A: (D, N); Bm, Cm: (Bb, G, Lb, N); h_last: (batch, D, N) final state;
    ckpt: (batch, D, ceil(L / CHUNK), N) state entering each chunk (for the backward), or a
    (0, 0, 0, N) array to store none; state: (batch * ceil(D / 2), 2, N) scratch, the running
    states of each task's two channels. Every array is indexed in full, no views (module
    docstring: noalias).
    """
    nb, nd, L = u.shape
    N = A.shape[1]
    per_gb, per_gc = nd // Bm.shape[1], nd // Cm.shape[1]
    sb, sc = (1 if Bm.shape[2] > 1 else 0), (1 if Cm.shape[2] > 1 else 0)
    save = ckpt.shape[0] > 0
    npair = (nd + 1) // 2
    for task in prange(nb * npair):
        b = task // npair
        d = 2 * (task - b * npair)
        e = min(d + 1, nd - 1)                       # odd D: the last task has one channel
        bb, bc = (b if Bm.shape[0] > 1 else 0), (b if Cm.shape[0] > 1 else 0)
        gbd, gbe, gcd, gce = d // per_gb, e // per_gb, d // per_gc, e // per_gc
        for c in range(2):
            dc = d if c == 0 else e
            bias_c = bias[dc]
            if softplus:
                for t in range(L):
                    y[b, dc, t] = _softplus(delta[b, dc, t] + bias_c)
            else:
                for t in range(L):
                    y[b, dc, t] = delta[b, dc, t] + bias_c
        for n in range(N):
            state[task, 0, n] = _ZERO
            state[task, 1, n] = _ZERO
        for t in range(L):
            if save and t % CHUNK == 0:
                for n in range(N):
                    ckpt[b, d, t // CHUNK, n] = state[task, 0, n]
                    ckpt[b, e, t // CHUNK, n] = state[task, 1, n]
            dtd = y[b, d, t]
            dte = y[b, e, t]
            xd = dtd * u[b, d, t]                    # B_bar u = delta B u (Euler step for B)
            xe = dte * u[b, e, t]
            tb, tc = t * sb, t * sc
            accd = _ZERO
            acce = _ZERO
            for n in range(N):                           # vectorised over n; (2a) with ZOH decay
                hd = _exp(dtd * A[d, n]) * state[task, 0, n] + xd * Bm[bb, gbd, tb, n]
                he = _exp(dte * A[e, n]) * state[task, 1, n] + xe * Bm[bb, gbe, tb, n]
                state[task, 0, n] = hd
                state[task, 1, n] = he
                accd += Cm[bc, gcd, tc, n] * hd         # (2b): C_t . h_t
                acce += Cm[bc, gce, tc, n] * he
            y[b, d, t] = accd
            y[b, e, t] = acce
        for n in range(N):
            h_last[b, d, n] = state[task, 0, n]
            h_last[b, e, n] = state[task, 1, n]
        for dc in range(d, e + 1):                       # once per channel: these update y in place
            if has_D:
                D_c = Dskip[dc]
                for t in range(L):
                    y[b, dc, t] += D_c * u[b, dc, t]
            if has_z:
                for t in range(L):
                    y[b, dc, t] *= _silu(z[b, dc, t])


@njit(parallel=True, fastmath=_FASTMATH, cache=True)
def scan_backward(u, dt, A, Bm, Cm, ckpt, gy, gh_last, nblk, gu, gdt, gA, gBp, gCp, hs, av, carry):
    """The adjoint recurrence (module docstring), backwards over chunks and inside each chunk.

    Tasks are (batch, block of D // nblk channels); a block never straddles a group of B or C.
    gy: (batch, D, L) and gh_last: (batch, D, N) incoming gradients. Outputs: gu, gdt:
    (batch, D, L); gA: (batch, D, N), still to be summed over batch; gBp, gCp:
    (batch, nblk, Lb, N) per-block partial sums (zero-initialised), still to be summed over the
    blocks of a group (and over batch when B/C has no batch dim). Scratch, one row per task:
    hs (tasks, CHUNK+1, N) the recomputed states (hs[., i] = h_{t0+i-1}), av (tasks, CHUNK, N)
    the decays a_t, carry (tasks, N) = a_{t+1} lambda_{t+1}.
    """
    nb, nd, L = u.shape
    N = A.shape[1]
    per_gb, per_gc = nd // Bm.shape[1], nd // Cm.shape[1]
    sb, sc = (1 if Bm.shape[2] > 1 else 0), (1 if Cm.shape[2] > 1 else 0)
    cb = nd // nblk
    nchunks = (L + CHUNK - 1) // CHUNK
    for task in prange(nb * nblk):
        b = task // nblk
        k = task - b * nblk
        for d in range(k * cb, (k + 1) * cb):
            bb, gb = (b if Bm.shape[0] > 1 else 0), d // per_gb
            bc, gc = (b if Cm.shape[0] > 1 else 0), d // per_gc
            for n in range(N):
                carry[task, n] = gh_last[b, d, n]        # the final state's own gradient
                gA[b, d, n] = _ZERO
            for c in range(nchunks - 1, -1, -1):
                t0 = c * CHUNK
                t1 = min(L, t0 + CHUNK)
                # recompute this chunk's states from the stored one (the forward's formula)
                for n in range(N):
                    hs[task, 0, n] = ckpt[b, d, c, n]
                for t in range(t0, t1):
                    i = t - t0
                    dtt = dt[b, d, t]
                    x = dtt * u[b, d, t]
                    tb = t * sb
                    for n in range(N):
                        a = _exp(dtt * A[d, n])
                        av[task, i, n] = a
                        hs[task, i + 1, n] = a * hs[task, i, n] + x * Bm[bb, gb, tb, n]
                # adjoint steps, t = t1-1 .. t0
                for t in range(t1 - 1, t0 - 1, -1):
                    i = t - t0
                    g = gy[b, d, t]
                    ut = u[b, d, t]
                    dtt = dt[b, d, t]
                    dtu = dtt * ut
                    tb, tc = t * sb, t * sc
                    sum_lb = _ZERO                       # sum_n lambda_t B_t
                    sum_lah = _ZERO                      # sum_n lambda_t A a_t h_{t-1}
                    for n in range(N):                   # vectorised over n
                        # lambda_t = gy_t C_t + a_{t+1} lambda_{t+1}
                        lam = carry[task, n] + g * Cm[bc, gc, tc, n]
                        gCp[b, k, tc, n] += g * hs[task, i + 1, n]     # dC_t = gy_t h_t
                        gBp[b, k, tb, n] += lam * dtu                  # dB_t = lambda_t delta_t u_t
                        a = av[task, i, n]
                        q = lam * (a * hs[task, i, n])                 # lambda_t a_t h_{t-1}
                        sum_lb += lam * Bm[bb, gb, tb, n]
                        sum_lah += A[d, n] * q
                        gA[b, d, n] += dtt * q                         # dA: sum_t delta_t q_t
                        carry[task, n] = a * lam
                    gu[b, d, t] = dtt * sum_lb
                    gdt[b, d, t] = sum_lah + sum_lb * ut  # d/ddelta_t of a_t h_{t-1} + delta_t B_t u_t


# --------------------------------------------------------------------------------------------
# torch side: shapes, dtypes and autograd
# --------------------------------------------------------------------------------------------
def _f32(t: torch.Tensor) -> np.ndarray:
    """float32, C-contiguous numpy view of a tensor (a copy only when needed)."""
    return t.detach().to(torch.float32).contiguous().numpy()


def _np(t: torch.Tensor) -> np.ndarray:
    """The numpy view the kernels read and write (t is float32 and contiguous already)."""
    return t.detach().numpy()


def _as_groups(M: torch.Tensor, d: int) -> torch.Tensor:
    """B or C as a (Bb, G, Lb, N) view: (D, N) -> (1, D, 1, N); (batch, N, L) -> (batch, 1, L, N);
    (batch, G, N, L) -> (batch, G, L, N). Differentiable torch ops, so autograd maps the kernel's
    gradient back to M's own shape."""
    if M.dim() == 2:
        return M[None, :, None, :]
    if M.dim() == 3:
        return M.transpose(1, 2)[:, None]
    if d % M.shape[1]:
        raise ValueError(f"{d} channels cannot be split into {M.shape[1]} groups")
    return M.transpose(2, 3)


def _n_blocks(batch: int, d: int, gb: int, gc: int) -> int:
    """Channel blocks for the backward: a multiple of lcm(G_B, G_C) dividing D (so no block
    straddles a group), the smallest giving >= 4 tasks per thread (load balance) - small, because
    every block holds its own partial dB/dC."""
    base = math.lcm(gb, gc)
    target = max(1, -(-4 * get_num_threads() // batch))
    for nblk in range(base, d + 1, base):
        if d % nblk == 0 and nblk >= target:
            return nblk
    return d


def _forward(u, delta, A, Bg, Cg, D=None, z=None, delta_bias=None, delta_softplus=False, ckpt=True):
    """Run :func:`scan_forward`: y (float32, before the cast to u's dtype), the last state, and
    the checkpoints (None unless ckpt)."""
    nb, nd, L = u.shape
    N = A.shape[1]
    y = torch.empty(nb, nd, L)
    h_last = torch.empty(nb, nd, N)
    ck = torch.empty(nb, nd, (L + CHUNK - 1) // CHUNK, N) if ckpt else torch.empty(0, 0, 0, N)
    bias = _f32(delta_bias) if delta_bias is not None else np.zeros(nd, np.float32)
    Dskip = _f32(D) if D is not None else np.zeros(nd, np.float32)
    zf = _f32(z) if z is not None else np.zeros((1, 1, 1), np.float32)
    state = np.empty((nb * ((nd + 1) // 2), 2, N), np.float32)
    scan_forward(_f32(u), _f32(delta), bias, bool(delta_softplus), _np(A), _np(Bg), _np(Cg),
                 Dskip, D is not None, zf, z is not None, _np(y), _np(h_last), _np(ck), state)
    return y, h_last, (ck if ckpt else None)


class _NumbaScan(torch.autograd.Function):
    """y = C.h and the last state from (u, dt, A, B, C), all float32; B and C already as
    (Bb, G, Lb, N) contiguous (see :func:`_as_groups`)."""

    @staticmethod
    def forward(ctx, u, dt, A, Bg, Cg):
        y, h_last, ckpt = _forward(u, dt, A, Bg, Cg)
        ctx.save_for_backward(u, dt, A, Bg, Cg)
        ctx.ckpt = ckpt
        return y, h_last

    @staticmethod
    def backward(ctx, gy, gh_last):
        u, dt, A, Bg, Cg = ctx.saved_tensors
        ckpt, ctx.ckpt = ctx.ckpt, None
        nb, nd, L = u.shape
        N = A.shape[1]
        gy = _f32(gy) if gy is not None else np.zeros((nb, nd, L), np.float32)
        gh = _f32(gh_last) if gh_last is not None else np.zeros((nb, nd, N), np.float32)
        gbn, lb, gcn, lc = Bg.shape[1], Bg.shape[2], Cg.shape[1], Cg.shape[2]
        nblk = _n_blocks(nb, nd, gbn, gcn)
        gu = torch.empty(nb, nd, L)
        gdt = torch.empty(nb, nd, L)
        gA = torch.empty(nb, nd, N)
        gBp = torch.zeros(nb, nblk, lb, N)
        gCp = torch.zeros(nb, nblk, lc, N)
        tasks = nb * nblk
        hs = np.empty((tasks, CHUNK + 1, N), np.float32)
        av = np.empty((tasks, CHUNK, N), np.float32)
        carry = np.empty((tasks, N), np.float32)
        scan_backward(_np(u), _np(dt), _np(A), _np(Bg), _np(Cg), _np(ckpt), gy, gh,
                      nblk, _np(gu), _np(gdt), _np(gA), _np(gBp), _np(gCp), hs, av, carry)
        # sum the blocks of each group, and over batch for a B/C shared by the batch
        gB = gBp.view(nb, gbn, nblk // gbn, lb, N).sum(2)
        gC = gCp.view(nb, gcn, nblk // gcn, lc, N).sum(2)
        if Bg.shape[0] == 1:
            gB = gB.sum(0, keepdim=True)
        if Cg.shape[0] == 1:
            gC = gC.sum(0, keepdim=True)
        return gu, gdt, gA.sum(0), gB, gC


def selective_scan_numba(u, delta, A, B, C, D: Optional[torch.Tensor] = None,
                         z: Optional[torch.Tensor] = None, delta_bias: Optional[torch.Tensor] = None,
                         delta_softplus: bool = False, return_last_state: bool = False):
    """CPU tensors only; inputs already checked by the caller. Output in u's dtype, state float32.

    Inference (no input requires grad, or under ``torch.no_grad``): one :func:`scan_forward` call
    that also does the bias, softplus, D u and the gate. With autograd: bias + softplus before
    the kernels and D u + gate after them are the shared torch helpers of
    :mod:`facelab.nn.scan` (the reference's own code), so autograd differentiates them alike.
    """
    from facelab.nn.scan import _discretisation_step, _finish  # loaded: it imports this module

    d = u.shape[1]
    Bg = _as_groups(B.float(), d).contiguous()
    Cg = _as_groups(C.float(), d).contiguous()
    Af = A.float().contiguous()
    tensors = (u, delta, A, B, C, D, z, delta_bias)
    if not (torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)):
        y, h_last, _ = _forward(u, delta, Af, Bg, Cg, D, z, delta_bias, delta_softplus, ckpt=False)
        out = y.to(u.dtype)
        return (out, h_last) if return_last_state else out
    dt = _discretisation_step(delta, delta_bias, delta_softplus)
    args = (u.float().contiguous(), dt.contiguous(), Af, Bg, Cg)
    if any(t.requires_grad for t in args):
        y, h_last = _NumbaScan.apply(*args)
    else:  # only D or z need gradients: no autograd node for the scan itself
        y, h_last, _ = _forward(*args, ckpt=False)
    out = _finish(y, u, D, z, u.dtype)
    return (out, h_last) if return_last_state else out
