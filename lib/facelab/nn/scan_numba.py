"""The selective scan as two compiled CPU kernels (numba): one pass over time, no state tensor.

The chunked torch scan (:mod:`facelab.nn.scan`) materialises the (batch, D, N, L) state and moves
it through memory about nine times; on a CPU that memory traffic, not arithmetic, is the cost.
Here every (batch, channel) pair is one independent task that walks over time with its N-dim
state in a small local array, and writes only y, exactly the recurrence of Gu & Dao (2023),
eq. (2a)/(2b) without the skip term::

    h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t,     y_t = C_t . h_t

The kernels take delta_t after the bias and softplus and return y_t before D u_t and the silu(z)
gate: those are elementwise over (batch, D, L), cheap as vectorised torch ops, and autograd
differentiates them exactly as the reference does (in the kernel they were scalar libm calls per
time step, about half of the forward's time).

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
states into a (CHUNK+1, N) buffer that stays in L1 cache, then walks it backwards.

B and C: channel d reads group d // (D // G) of a (Bb, G, Lb, N) array, Bb in {1, batch},
Lb in {1, L}, state innermost so that one time step's N values are one contiguous row (read
across N they would be N cache lines per step, which made the kernel memory-bound). All of
mamba-ssm's shapes map onto it ((D, N) -> (1, D, 1, N), (batch, N, L) -> (batch, 1, L, N), a
transposed copy of B and C only, 1/D of the state's size), so each kernel has exactly one
specialisation (float32, C-contiguous, fixed ranks) and is compiled once per machine
(``cache=True``).

exp: the decays exp(delta_t A) are one exp per state update, and LLVM cannot vectorise calls to
libm's expf, so with it the kernel was exp-bound (about 2x slower). :func:`_exp` is a branch-free
exp made of float arithmetic that LLVM vectorises over the state index: exp(x) = 2^k exp(r) with
k = round(x / ln 2), r = x - k ln 2 in [-ln2/2, ln2/2] (ln 2 split in a high part exact in float32
and a low correction, so r carries no cancellation error), exp(r) by its Taylor series to degree 7
(truncation error < |r|^8 / 8! < 6e-9), and 2^k built directly from float32 bit patterns
(j + 127) << 23 = 2^j. Within 2 float32 ulp of the exact exp (tested; 1.1 measured); flushes
results below the smallest normal float (x < -87.3) to 0 (denormal decays would only slow the
arithmetic down), and returns inf above 88.7 and nan for nan.

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

__all__ = ["selective_scan_numba", "CHUNK"]

#: Time steps between two stored states (forward), i.e. the length of a recomputed chunk (backward).
CHUNK = 64

# float32 constants: a bare Python float literal would promote float32 arithmetic to float64.
_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)
# exp (see the module docstring)
_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)          # 8 significant bits: k * _LN2_HI is exact for |k| < 2^16
_LN2_LO = np.float32(0.693147180559945309 - 0.693359375)
_ROUND = np.float32(12582912.0)            # 1.5 * 2^23: (y + _ROUND) - _ROUND rounds y to an integer
_EXP_MIN = np.float32(-87.33654)           # exp(_EXP_MIN) = smallest normal float32
_EXP_MAX = np.float32(88.72283)            # exp(_EXP_MAX) = largest float32
_INF = np.float32(np.inf)
_T2, _T3, _T4, _T5, _T6, _T7 = (np.float32(1.0 / math.factorial(i)) for i in range(2, 8))


@intrinsic
def _float_from_bits(typingctx, bits):
    """Reinterpret an int32 bit pattern as a float32 (no conversion), for 2^k in :func:`_exp`."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


@njit(fastmath=False, cache=True)
def _exp(x):
    """exp of a float32, vectorisable (module docstring)."""
    xc = min(max(x, _EXP_MIN), _EXP_MAX)
    kf = (xc * _LOG2E + _ROUND) - _ROUND               # k = round(x / ln 2), as a float
    r = (xc - kf * _LN2_HI) - kf * _LN2_LO             # x - k ln 2, |r| <= ln2/2
    p = _ONE + r * (_ONE + r * (_T2 + r * (_T3 + r * (_T4 + r * (_T5 + r * (_T6 + r * _T7))))))
    # times 2^k = 2^(k//2) 2^(k - k//2): two normal powers of two even at k = 128 (x near 88.7),
    # where 2^k alone would overflow although exp(x) does not
    k = np.int32(kf)
    k1 = k >> np.int32(1)
    v = (p * _float_from_bits((k1 + np.int32(127)) << np.int32(23))) \
        * _float_from_bits((k - k1 + np.int32(127)) << np.int32(23))
    v = _ZERO if x < _EXP_MIN else v
    v = _INF if x > _EXP_MAX else v
    return x if x != x else v                           # nan stays nan


@njit(parallel=True, fastmath=False, cache=True)
def scan_forward(u, dt, A, Bm, Cm, y, h_last, ckpt):
    """One pass over time per (batch, channel), in parallel over the pairs.

    u, dt, y: (batch, D, L) (dt after bias and softplus; y = C.h, before D u and the gate);
    A: (D, N); Bm, Cm: (Bb, G, Lb, N); h_last: (batch, D, N) final state; ckpt:
    (batch, D, ceil(L / CHUNK), N) state entering each chunk (for the backward).
    """
    nb, nd, L = u.shape
    N = A.shape[1]
    per_gb, per_gc = nd // Bm.shape[1], nd // Cm.shape[1]
    sb, sc = (1 if Bm.shape[2] > 1 else 0), (1 if Cm.shape[2] > 1 else 0)  # time stride: 0 = invariant
    for task in prange(nb * nd):
        b = task // nd
        d = task - b * nd
        Bd = Bm[b if Bm.shape[0] > 1 else 0, d // per_gb]   # (Lb, N) rows this channel reads
        Cd = Cm[b if Cm.shape[0] > 1 else 0, d // per_gc]
        Ad = A[d]
        h = np.zeros(N, np.float32)
        for t in range(L):
            if t % CHUNK == 0:
                ckpt[b, d, t // CHUNK] = h
            dtt = dt[b, d, t]
            x = dtt * u[b, d, t]                           # B_bar u = delta B u (Euler step for B)
            Bt, Ct = Bd[t * sb], Cd[t * sc]
            for n in range(N):                             # (2a), ZOH decay A_bar = exp(delta A)
                h[n] = _exp(dtt * Ad[n]) * h[n] + x * Bt[n]
            acc = _ZERO
            for n in range(N):                             # (2b): C_t . h_t
                acc += Ct[n] * h[n]
            y[b, d, t] = acc
        h_last[b, d] = h


@njit(parallel=True, fastmath=False, cache=True)
def scan_backward(u, dt, A, Bm, Cm, ckpt, gy, gh_last, nblk, gu, gdt, gA, gBp, gCp):
    """The adjoint recurrence (module docstring), backwards over chunks and inside each chunk.

    Tasks are (batch, block of D // nblk channels); a block never straddles a group of B or C.
    gy: (batch, D, L) and gh_last: (batch, D, N) incoming gradients. Outputs: gu, gdt:
    (batch, D, L); gA: (batch, D, N), still to be summed over batch; gBp, gCp:
    (batch, nblk, Lb, N) per-block partial sums (zero-initialised), still to be summed over the
    blocks of a group (and over batch when B/C has no batch dim).
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
        hs = np.empty((CHUNK + 1, N), np.float32)   # hs[i] = h_{t0+i-1}: state before step t0+i
        av = np.empty((CHUNK, N), np.float32)       # a_t = exp(delta_t A)
        carry = np.empty(N, np.float32)             # a_{t+1} lambda_{t+1}
        lb = np.empty(N, np.float32)                # lambda_t B_t            (summed over n below)
        lah = np.empty(N, np.float32)               # lambda_t A a_t h_{t-1}  (summed over n below)
        ga = np.empty(N, np.float32)
        gBk, gCk = gBp[b, k], gCp[b, k]             # (Lb, N) this task's partial sums
        for d in range(k * cb, (k + 1) * cb):
            Bd = Bm[b if Bm.shape[0] > 1 else 0, d // per_gb]
            Cd = Cm[b if Cm.shape[0] > 1 else 0, d // per_gc]
            Ad = A[d]
            for n in range(N):
                carry[n] = gh_last[b, d, n]         # the final state's own gradient
                ga[n] = _ZERO
            for c in range(nchunks - 1, -1, -1):
                t0 = c * CHUNK
                t1 = min(L, t0 + CHUNK)
                # recompute this chunk's states from the stored one (same arithmetic as forward)
                hs[0] = ckpt[b, d, c]
                for t in range(t0, t1):
                    i = t - t0
                    dtt = dt[b, d, t]
                    x = dtt * u[b, d, t]
                    Bt = Bd[t * sb]
                    for n in range(N):
                        a = _exp(dtt * Ad[n])
                        av[i, n] = a
                        hs[i + 1, n] = a * hs[i, n] + x * Bt[n]
                # adjoint steps, t = t1-1 .. t0
                for t in range(t1 - 1, t0 - 1, -1):
                    i = t - t0
                    g = gy[b, d, t]
                    ut = u[b, d, t]
                    dtt = dt[b, d, t]
                    dtu = dtt * ut
                    Bt, Ct = Bd[t * sb], Cd[t * sc]
                    gBt, gCt = gBk[t * sb], gCk[t * sc]
                    for n in range(N):               # elementwise over n (vectorised)
                        lam = carry[n] + g * Ct[n]   # lambda_t = gy_t C_t + a_{t+1} lambda_{t+1}
                        gCt[n] += g * hs[i + 1, n]   # dC_t = gy_t h_t
                        gBt[n] += lam * dtu          # dB_t = lambda_t delta_t u_t
                        a = av[i, n]
                        ah = a * hs[i, n]            # a_t h_{t-1}
                        lb[n] = lam * Bt[n]
                        lah[n] = lam * (Ad[n] * ah)
                        ga[n] += lam * (dtt * ah)    # dA = sum_t lambda_t delta_t a_t h_{t-1}
                        carry[n] = a * lam
                    sum_lb = _ZERO
                    sum_lah = _ZERO
                    for n in range(N):
                        sum_lb += lb[n]
                        sum_lah += lah[n]
                    gu[b, d, t] = dtt * sum_lb
                    gdt[b, d, t] = sum_lah + sum_lb * ut  # d/d delta_t of a_t h_{t-1} + delta_t B_t u_t
            gA[b, d] = ga


# --------------------------------------------------------------------------------------------
# torch side: shapes, dtypes and autograd
# --------------------------------------------------------------------------------------------
def _f32(t: torch.Tensor) -> np.ndarray:
    """float32, C-contiguous numpy view of an incoming gradient (a copy only when needed)."""
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


def _forward(u, dt, A, Bg, Cg):
    nb, nd, L = u.shape
    N = A.shape[1]
    y = torch.empty(nb, nd, L)
    h_last = torch.empty(nb, nd, N)
    ckpt = torch.empty(nb, nd, (L + CHUNK - 1) // CHUNK, N)
    scan_forward(_np(u), _np(dt), _np(A), _np(Bg), _np(Cg), _np(y), _np(h_last), _np(ckpt))
    return y, h_last, ckpt


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
        scan_backward(_np(u), _np(dt), _np(A), _np(Bg), _np(Cg), _np(ckpt), gy, gh,
                      nblk, _np(gu), _np(gdt), _np(gA), _np(gBp), _np(gCp))
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

    Bias + softplus before the kernel and D u + gate after it are the shared torch helpers of
    :mod:`facelab.nn.scan` (the reference's own code), so autograd differentiates them alike.
    """
    from facelab.nn.scan import _discretisation_step, _finish  # loaded: it imports this module

    d = u.shape[1]
    dt = _discretisation_step(delta, delta_bias, delta_softplus)
    uf = u.float().contiguous()
    Bg = _as_groups(B.float(), d).contiguous()
    Cg = _as_groups(C.float(), d).contiguous()
    args = (uf, dt.contiguous(), A.float().contiguous(), Bg, Cg)
    if torch.is_grad_enabled() and any(t.requires_grad for t in args):
        y, h_last = _NumbaScan.apply(*args)
    else:  # inference: no autograd node, nothing kept alive
        y, h_last, _ = _forward(*args)
    out = _finish(y, u, D, z, u.dtype)
    return (out, h_last) if return_last_state else out
