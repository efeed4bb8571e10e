"""The selective scan as two Triton kernels (forward, and the adjoint scan for the backward).

Same semantics as the other backends of :mod:`facelab.nn.scan` (mamba-ssm's ``selective_scan_fn``):
for every batch element, channel d and state index n, the recurrence of Gu & Dao (2023),
eq. (2a)/(2b), with zero-order hold for A and the Euler step for B::

    Delta_t = softplus(delta_t + delta_bias)          (bias and softplus optional)
    h_t     = A_bar_t h_{t-1} + B_bar_t u_t,  A_bar_t = exp(Delta_t A),  B_bar_t u_t = Delta_t B_t u_t
    y_t     = C_t . h_t + D u_t,              out_t = y_t silu(z_t)     (D and z optional)

(the paper's discretisation A_bar = exp(Delta A) (Ā = exp(ΔA)) and B_bar u = Delta B u (B̄x = ΔBx),
written in ASCII below and in the kernels' comments, as in :mod:`facelab.nn.scan`.)

B and C: time-invariant (D, N), input-dependent (batch, N, L), or grouped (batch, G, N, L).
u, delta, z, B, C: float32, bfloat16 or float16; the arithmetic and the state are float32, the
output has u's dtype, the last state is float32 (batch, D, N).

Design
------
* **One program per (batch, block of BLOCK_D channels).** Its state h, a (BLOCK_D, N) tile, lives
  in registers for the whole sequence; the program walks over time in chunks of CHUNK steps
  (a power of two). Per chunk it loads (BLOCK_D, CHUNK) tiles of u, delta (and z) and (N, CHUNK)
  tiles of B and C (one group's, shared by the block: a block never straddles a group), forms
  A_bar and B_bar u as (BLOCK_D, N, CHUNK) tiles and runs the recurrence inside the chunk as a
  parallel associative scan over time (``tl.associative_scan``; an element is the affine step
  h -> a h + b, and composing two steps is again one: (a1, b1) then (a2, b2) is
  (a1 a2, a2 b1 + b2)). The scan gives, for each step, the product of decays since the chunk
  start and the state reached from a zero start; the state carried in from the previous chunk
  enters as ``h_t = local_t + prod_t * h_start``. Only products of decays in (0, 1] appear, so
  no exp(+x) factors and no stability bound on the chunk length (unlike the torch path's
  factorised cumsum). Padding steps past L get Delta = 0 (A_bar = 1, no input), so the state
  passes through them unchanged.
* **Backward: reverse scan with recomputation**, as mamba-ssm's kernel does. The forward stores
  only the state entering each chunk (batch, D, L / CHUNK, N): 1/CHUNK of the full state. The
  backward runs over the chunks in reverse order; per chunk it recomputes the states from the
  stored one (the forward's scan again), then runs the adjoint recurrence as a *reverse*
  associative scan over the chunk::

      lambda_t = g_t C_t + A_bar_{t+1} lambda_{t+1}        (lambda_t = dL/dh_t, g_t = dL/dy_t)

  where A_bar_{t+1} comes from the next step's Delta (loaded shifted by one), and the later
  chunks enter through the carry A_bar_{t1} lambda_{t1} (initially dL/dh_last). Every input's
  gradient is then local in time: dC_t = g_t h_t, dB_t = lambda_t Delta_t u_t,
  du_t = Delta_t sum_n lambda_t B_t (+ D g_t), dDelta_t = sum_n lambda_t (A A_bar_t h_{t-1} +
  B_t u_t) (times sigmoid of the pre-softplus value), dA = sum_t lambda_t Delta_t A_bar_t h_{t-1},
  with A_bar_t h_{t-1} = h_t - B_bar_t u_t (no shifted state needed; as in mamba-ssm's backward,
  this loses digits where the decay is ~0 and h_t ~ B_bar_t u_t: an absolute error of about
  float32 eps * |lambda B_bar u|, only visible for very large Delta A). The gate and the skip term
  are differentiated in the same kernel (dz, dD; d delta_bias = sum of dDelta over batch and time).
  Gradients that sum over channels are reduced inside a program over its block, written as
  per-(batch, block) partial sums (input-dependent B/C: (batch, D / BLOCK_D, N, L); time-invariant
  B/C, A, D, delta_bias: per (batch, channel)), and summed by torch: deterministic, no atomics.
* **Block sizes** (``BLOCK_D``, ``CHUNK``, ``num_warps``) are untuned guesses: BLOCK_D 8 forward
  and 4 backward (the backward keeps ~8 tiles of BLOCK_D x N x CHUNK live), CHUNK 32, 4 warps.
  **GPU speed is unmeasured** until a device run (``bench/bench_scan.py`` has the rows, ms and
  ratios vs mamba-ssm's kernel and vs our PyTorch scan); so is whether the backward spills
  registers at N = 16. On a CPU the kernels run only in Triton's interpreter
  (``TRITON_INTERPRET=1`` set before triton is first imported): numpy, slow, for tests; it
  checks the arithmetic, not the compiled code (layouts, register pressure, exp's precision on
  the GPU, which lowers ``tl.exp`` to the fast ex2 instruction).

Importing this module imports triton; :mod:`facelab.nn.scan` does it lazily.
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

__all__ = ["selective_scan_triton", "interpreted", "supports", "SUPPORTED_DTYPES", "CHUNK",
           "BLOCK_D_FWD", "BLOCK_D_BWD"]

#: dtypes accepted for u, delta, z, B and C (A, D and delta_bias may be any of these too).
SUPPORTED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
#: Time steps per chunk (a power of two); the forward stores the state entering each chunk.
CHUNK = 32
#: Channels per program, forward and backward (powers of two; reduced to divide a group).
BLOCK_D_FWD = 8
BLOCK_D_BWD = 4
NUM_WARPS = 4


def interpreted() -> bool:
    """True when the kernels can run in Triton's interpreter (on CPU tensors, slowly): they, and
    triton's own library, were built for it, i.e. ``TRITON_INTERPRET=1`` was set before triton was
    first imported in this process (and must stay set: triton reads it again at launch)."""
    return all(type(f).__name__ == "InterpretedFunction" for f in (_scan_fwd_kernel, tl.standard.cdiv))


def supports(*tensors) -> bool:
    """Whether these tensors (None allowed) suit the compiled kernels: CUDA, supported dtypes."""
    return all(t is None or (t.is_cuda and t.dtype in SUPPORTED_DTYPES) for t in tensors)


# --------------------------------------------------------------------------------------------
# elementwise helpers (float32)
# --------------------------------------------------------------------------------------------
@triton.jit
def _affine_combine(a1, b1, a2, b2):
    """Compose two steps of h -> a h + b: first (a1, b1), then (a2, b2)."""
    return a1 * a2, a2 * b1 + b2


@triton.jit
def _softplus(x):
    """log(1 + e^x) = max(x, 0) + log1p(e^-|x|), with log1p(e) = log(w) e / (w - 1), w = 1 + e
    (exact to a few ulp; e itself where w rounds to 1). No overflow, no division by zero."""
    e = tl.exp(-tl.abs(x))
    w = 1.0 + e
    wm1 = w - 1.0
    log1p_e = tl.where(wm1 == 0.0, e, tl.log(w) * (e / tl.where(wm1 == 0.0, 1.0, wm1)))
    return tl.maximum(x, 0.0) + log1p_e


@triton.jit
def _sigmoid(x):
    """1 / (1 + e^-x) without overflow (e^-|x| <= 1)."""
    e = tl.exp(-tl.abs(x))
    r = 1.0 / (1.0 + e)
    return tl.where(x >= 0.0, r, e * r)


# --------------------------------------------------------------------------------------------
# forward
# --------------------------------------------------------------------------------------------
@triton.jit
def _scan_fwd_kernel(
    u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr,       # inputs
    out_ptr, hlast_ptr, ckpt_ptr,                                     # outputs
    n_d, L, N, n_chunks, G_B, G_C, per_group_B, per_group_C,
    B_VARYING: tl.constexpr, C_VARYING: tl.constexpr, HAS_Z: tl.constexpr,
    SOFTPLUS: tl.constexpr, SAVE: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, CHUNK: tl.constexpr,
):
    """u, delta, z, out: (batch, D, L) contiguous; A: (D, N); B, C: (batch, G, N, L) when
    varying, (D, N) when time-invariant; D, bias: (D,) (zeros when absent); hlast: (batch, D, N);
    ckpt: (batch, D, n_chunks, N), the state entering each chunk (written when SAVE)."""
    pid_b = tl.program_id(0).to(tl.int64)
    pid_d = tl.program_id(1)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    offs_t = tl.arange(0, CHUNK)
    mask_d = offs_d < n_d
    mask_n = offs_n < N
    mask_dn = mask_d[:, None] & mask_n[None, :]
    dn = offs_d[:, None] * N + offs_n[None, :]                       # (BLOCK_D, BLOCK_N) into (D, N)
    # padded state indices get A = 0, B = C = 0: their state stays 0 and adds nothing to y
    A = tl.load(A_ptr + dn, mask=mask_dn, other=0.0).to(tl.float32)
    bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    Dskip = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    row = (pid_b * n_d + offs_d[:, None]) * L                        # each channel's row in (batch, D, L)
    # varying B/C: this block's group (a block never straddles one); (N, L) rows of that group
    grp_B = (pid_d * BLOCK_D) // per_group_B
    grp_C = (pid_d * BLOCK_D) // per_group_C
    B_rows = B_ptr + ((pid_b * G_B + grp_B) * N + offs_n[:, None]) * L
    C_rows = C_ptr + ((pid_b * G_C + grp_C) * N + offs_n[:, None]) * L
    B_inv = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    C_inv = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    if not B_VARYING:
        B_inv = tl.load(B_ptr + dn, mask=mask_dn, other=0.0).to(tl.float32)
    if not C_VARYING:
        C_inv = tl.load(C_ptr + dn, mask=mask_dn, other=0.0).to(tl.float32)
    ck = ckpt_ptr + ((pid_b * n_d + offs_d[:, None]) * n_chunks) * N + offs_n[None, :]

    h = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)               # the state, in registers
    for c in range(0, n_chunks):
        t = c * CHUNK + offs_t
        mask_t = t < L
        m2 = mask_d[:, None] & mask_t[None, :]
        if SAVE:
            tl.store(ck + c * N, h, mask=mask_dn)                    # h entering chunk c
        u = tl.load(u_ptr + row + t[None, :], mask=m2, other=0.0).to(tl.float32)
        dt = tl.load(dt_ptr + row + t[None, :], mask=m2, other=0.0).to(tl.float32) + bias[:, None]
        if SOFTPLUS:
            dt = _softplus(dt)                                       # Delta = softplus(delta + bias)
        dt = tl.where(m2, dt, 0.0)                                   # padding: Delta = 0, h unchanged
        if B_VARYING:
            Bt = tl.load(B_rows + t[None, :], mask=mask_n[:, None] & mask_t[None, :],
                         other=0.0).to(tl.float32)[None, :, :]     # (1, N, T)
        else:
            Bt = B_inv[:, :, None]                                   # (BLOCK_D, N, 1)
        if C_VARYING:
            Ct = tl.load(C_rows + t[None, :], mask=mask_n[:, None] & mask_t[None, :],
                         other=0.0).to(tl.float32)[None, :, :]
        else:
            Ct = C_inv[:, :, None]
        a = tl.exp(dt[:, None, :] * A[:, :, None])                  # A_bar_t = exp(Delta_t A)   (ZOH)
        bu = (dt * u)[:, None, :] * Bt                               # B_bar_t u_t = Delta_t B_t u_t (Euler)
        # (2a) inside the chunk: prod of A_bar since the chunk start, and h from a zero start
        a_cum, h_loc = tl.associative_scan((a, bu), axis=2, combine_fn=_affine_combine)
        hs = h_loc + a_cum * h[:, :, None]                           # h_t with the carried state
        y = tl.sum(hs * Ct, axis=1)                                  # (2b): C_t . h_t
        h = tl.sum(tl.where(offs_t[None, None, :] == CHUNK - 1, hs, 0.0), axis=2)  # h at chunk end
        y = y + Dskip[:, None] * u                                   # + D u_t
        if HAS_Z:
            zt = tl.load(z_ptr + row + t[None, :], mask=m2, other=0.0).to(tl.float32)
            y = y * (zt * _sigmoid(zt))                              # * silu(z_t)
        tl.store(out_ptr + row + t[None, :], y.to(out_ptr.dtype.element_ty), mask=m2)
    tl.store(hlast_ptr + (pid_b * n_d + offs_d[:, None]) * N + offs_n[None, :], h, mask=mask_dn)


# --------------------------------------------------------------------------------------------
# backward
# --------------------------------------------------------------------------------------------
@triton.jit
def _scan_bwd_kernel(
    u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, ckpt_ptr,   # forward inputs
    gout_ptr, gh_ptr,                                                       # incoming gradients
    du_ptr, ddt_ptr, dz_ptr, dA_ptr, dD_ptr, dbias_ptr, dB_ptr, dC_ptr,     # outputs
    n_d, L, N, n_chunks, G_B, G_C, per_group_B, per_group_C, n_blk,
    B_VARYING: tl.constexpr, C_VARYING: tl.constexpr, HAS_Z: tl.constexpr,
    SOFTPLUS: tl.constexpr, HAS_GH: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, CHUNK: tl.constexpr,
):
    """The adjoint scan, chunks in reverse order, each chunk's states recomputed from ckpt.

    gout: (batch, D, L) dL/dout; gh: (batch, D, N) dL/dh_last (read when HAS_GH). Outputs
    du, ddt (w.r.t. the raw delta), dz: (batch, D, L) in the inputs' dtypes; partial sums in
    float32, summed by the caller: dA (batch, D, N), dD and dbias (batch, D), dB/dC
    (batch, n_blk, N, L) when varying (one slice per block of channels), (batch, D, N) when
    time-invariant.
    """
    pid_b = tl.program_id(0).to(tl.int64)
    pid_d = tl.program_id(1)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    offs_t = tl.arange(0, CHUNK)
    mask_d = offs_d < n_d
    mask_n = offs_n < N
    mask_dn = mask_d[:, None] & mask_n[None, :]
    dn = offs_d[:, None] * N + offs_n[None, :]
    bdn = pid_b * n_d * N + dn                                       # into (batch, D, N)
    A = tl.load(A_ptr + dn, mask=mask_dn, other=0.0).to(tl.float32)
    bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    Dskip = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    row = (pid_b * n_d + offs_d[:, None]) * L
    grp_B = (pid_d * BLOCK_D) // per_group_B
    grp_C = (pid_d * BLOCK_D) // per_group_C
    B_rows = B_ptr + ((pid_b * G_B + grp_B) * N + offs_n[:, None]) * L
    C_rows = C_ptr + ((pid_b * G_C + grp_C) * N + offs_n[:, None]) * L
    dB_rows = dB_ptr + ((pid_b * n_blk + pid_d) * N + offs_n[:, None]) * L
    dC_rows = dC_ptr + ((pid_b * n_blk + pid_d) * N + offs_n[:, None]) * L
    B_inv = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    C_inv = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    if not B_VARYING:
        B_inv = tl.load(B_ptr + dn, mask=mask_dn, other=0.0).to(tl.float32)
    if not C_VARYING:
        C_inv = tl.load(C_ptr + dn, mask=mask_dn, other=0.0).to(tl.float32)
    ck = ckpt_ptr + ((pid_b * n_d + offs_d[:, None]) * n_chunks) * N + offs_n[None, :]

    # carry = A_bar_{t1} lambda_{t1}: what the later chunks add to lambda at this chunk's end
    carry = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    if HAS_GH:
        carry = tl.load(gh_ptr + bdn, mask=mask_dn, other=0.0).to(tl.float32)   # dL/dh_last
    dA_acc = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    dB_acc = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    dC_acc = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    dD_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    dbias_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    for i in range(0, n_chunks):
        c = n_chunks - 1 - i
        t = c * CHUNK + offs_t
        mask_t = t < L
        m2 = mask_d[:, None] & mask_t[None, :]
        mask_nt = mask_n[:, None] & mask_t[None, :]
        u = tl.load(u_ptr + row + t[None, :], mask=m2, other=0.0).to(tl.float32)
        raw = tl.load(dt_ptr + row + t[None, :], mask=m2, other=0.0).to(tl.float32) + bias[:, None]
        dt = raw
        if SOFTPLUS:
            dt = _softplus(raw)
        dt = tl.where(m2, dt, 0.0)
        # Delta_{t+1}, for A_bar_{t+1} in the adjoint; 0 (A_bar = 1) at the chunk's last step,
        # whose successor is in the carry, and past L
        tn = t + 1
        mn = mask_d[:, None] & ((offs_t < CHUNK - 1) & (tn < L))[None, :]
        dtn = tl.load(dt_ptr + row + tn[None, :], mask=mn, other=0.0).to(tl.float32) + bias[:, None]
        if SOFTPLUS:
            dtn = _softplus(dtn)
        dtn = tl.where(mn, dtn, 0.0)
        if B_VARYING:
            Bt = tl.load(B_rows + t[None, :], mask=mask_nt, other=0.0).to(tl.float32)[None, :, :]
        else:
            Bt = B_inv[:, :, None]
        if C_VARYING:
            Ct = tl.load(C_rows + t[None, :], mask=mask_nt, other=0.0).to(tl.float32)[None, :, :]
        else:
            Ct = C_inv[:, :, None]
        # recompute the chunk's states h_t from the stored h entering it (the forward's scan)
        h0 = tl.load(ck + c * N, mask=mask_dn, other=0.0)
        a = tl.exp(dt[:, None, :] * A[:, :, None])                  # A_bar_t
        bu = (dt * u)[:, None, :] * Bt                               # B_bar_t u_t
        a_cum, h_loc = tl.associative_scan((a, bu), axis=2, combine_fn=_affine_combine)
        hs = h_loc + a_cum * h0[:, :, None]                          # h_t
        # the gate and the skip term: out = (y + D u) silu(z); g = dL/dy
        g = tl.load(gout_ptr + row + t[None, :], mask=m2, other=0.0).to(tl.float32)
        if HAS_Z:
            zt = tl.load(z_ptr + row + t[None, :], mask=m2, other=0.0).to(tl.float32)
            sig = _sigmoid(zt)
            y = tl.sum(hs * Ct, axis=1) + Dskip[:, None] * u
            dz = g * y * (sig * (1.0 + zt * (1.0 - sig)))            # silu'(z) = s (1 + z (1 - s))
            tl.store(dz_ptr + row + t[None, :], dz.to(dz_ptr.dtype.element_ty), mask=m2)
            g = g * (zt * sig)
        dD_acc += tl.sum(g * u, axis=1)                              # dD = sum_t g_t u_t
        # adjoint (reverse scan): lambda_t = g_t C_t + A_bar_{t+1} lambda_{t+1}
        a_next = tl.exp(dtn[:, None, :] * A[:, :, None])
        l_cum, l_loc = tl.associative_scan((a_next, g[:, None, :] * Ct), axis=2,
                                           combine_fn=_affine_combine, reverse=True)
        lam = l_loc + l_cum * carry[:, :, None]
        carry = tl.sum(tl.where(offs_t[None, None, :] == 0, a * lam, 0.0), axis=2)  # A_bar_t0 lambda_t0
        # dC_t = g_t h_t, dB_t = lambda_t Delta_t u_t (summed over the block's channels)
        gC = g[:, None, :] * hs
        gB = lam * (dt * u)[:, None, :]
        if C_VARYING:
            tl.store(dC_rows + t[None, :], tl.sum(gC, axis=0), mask=mask_nt)
        else:
            dC_acc += tl.sum(gC, axis=2)
        if B_VARYING:
            tl.store(dB_rows + t[None, :], tl.sum(gB, axis=0), mask=mask_nt)
        else:
            dB_acc += tl.sum(gB, axis=2)
        lam_B = tl.sum(lam * Bt, axis=1)                             # sum_n lambda_t B_t
        q = lam * (hs - bu)                                          # lambda_t A_bar_t h_{t-1}
        dA_acc += tl.sum(q * dt[:, None, :], axis=2)                 # d A_bar_t / dA = Delta_t A_bar_t
        du = dt * lam_B + Dskip[:, None] * g
        # d/dDelta_t of A_bar_t h_{t-1} + Delta_t B_t u_t, then through the softplus
        ddt = tl.sum(q * A[:, :, None], axis=1) + lam_B * u
        if SOFTPLUS:
            ddt = ddt * _sigmoid(raw)
        ddt = tl.where(m2, ddt, 0.0)
        dbias_acc += tl.sum(ddt, axis=1)
        tl.store(du_ptr + row + t[None, :], du.to(du_ptr.dtype.element_ty), mask=m2)
        tl.store(ddt_ptr + row + t[None, :], ddt.to(ddt_ptr.dtype.element_ty), mask=m2)
    tl.store(dA_ptr + bdn, dA_acc, mask=mask_dn)
    if not B_VARYING:
        tl.store(dB_ptr + bdn, dB_acc, mask=mask_dn)
    if not C_VARYING:
        tl.store(dC_ptr + bdn, dC_acc, mask=mask_dn)
    tl.store(dD_ptr + pid_b * n_d + offs_d, dD_acc, mask=mask_d)
    tl.store(dbias_ptr + pid_b * n_d + offs_d, dbias_acc, mask=mask_d)


# --------------------------------------------------------------------------------------------
# host side: checks, launch, autograd
# --------------------------------------------------------------------------------------------
def _shape(t) -> tuple:
    return tuple(t.shape)


def _check_inputs(u, delta, A, B, C, D, z, delta_bias):
    """Shapes, dtypes and devices, with messages naming what was expected and what came."""
    tensors = dict(u=u, delta=delta, A=A, B=B, C=C, D=D, z=z, delta_bias=delta_bias)
    for name, t in tensors.items():
        if t is not None and not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    for name, t in tensors.items():
        if t is not None and t.dtype not in SUPPORTED_DTYPES:
            raise TypeError(f"selective_scan(backend='triton') supports float32, bfloat16 and float16 "
                            f"inputs; got {name} with dtype {t.dtype}")
    if u.dim() != 3:
        raise ValueError(f"u: expected shape (batch, D, L), got {_shape(u)}")
    batch, d, length = u.shape
    if length == 0:
        raise ValueError(f"u: expected a sequence length L >= 1, got shape {_shape(u)}")
    if _shape(delta) != _shape(u):
        raise ValueError(f"delta: expected shape {_shape(u)} (as u), got {_shape(delta)}")
    if z is not None and _shape(z) != _shape(u):
        raise ValueError(f"z: expected shape {_shape(u)} (as u), got {_shape(z)}")
    if A.dim() != 2 or A.shape[0] != d:
        raise ValueError(f"A: expected shape (D={d}, N), got {_shape(A)}")
    n = A.shape[1]
    for name, M in (("B", B), ("C", C)):
        if M.dim() == 2:
            ok = _shape(M) == (d, n)
        elif M.dim() == 3:
            ok = _shape(M) == (batch, n, length)
        elif M.dim() == 4:
            ok = M.shape[0] == batch and M.shape[2:] == (n, length) and M.shape[1] >= 1
            if ok and d % M.shape[1]:
                raise ValueError(f"{name}: {d} channels cannot be split into {M.shape[1]} groups "
                                 f"(shape {_shape(M)})")
        else:
            ok = False
        if not ok:
            raise ValueError(f"{name}: expected shape (D={d}, N={n}), (batch={batch}, N={n}, L={length}) "
                             f"or (batch={batch}, G, N={n}, L={length}), got {_shape(M)}")
    for name, v in (("D", D), ("delta_bias", delta_bias)):
        if v is not None and _shape(v) != (d,):
            raise ValueError(f"{name}: expected shape ({d},), got {_shape(v)}")
    devices = {t.device for t in tensors.values() if t is not None}
    if len(devices) > 1:
        raise ValueError(f"all tensors must be on one device, got {sorted(map(str, devices))}")
    if u.device.type != "cuda" and not interpreted():
        raise RuntimeError(
            f"selective_scan(backend='triton') needs CUDA tensors (got {u.device.type}); on a CPU the "
            "kernels run only in Triton's interpreter: set TRITON_INTERPRET=1 before triton is first "
            "imported (slow; meant for tests)")


def _pow2_divisor(block: int, n: int) -> int:
    """Largest power of two <= block that divides n."""
    b = 1
    while b * 2 <= block and n % (b * 2) == 0:
        b *= 2
    return b


def _as_groups(M: torch.Tensor) -> torch.Tensor:
    """Varying B/C as contiguous (batch, G, N, L); time-invariant as contiguous (D, N)."""
    if M.dim() == 3:
        M = M.unsqueeze(1)
    return M.contiguous()


def _layout(u, B, C, block_d: int):
    """Group sizes and the channel block: a block never straddles a group of B or C."""
    d = u.shape[1]
    G_B = B.shape[1] if B.dim() == 4 else 1
    G_C = C.shape[1] if C.dim() == 4 else 1
    per_B, per_C = d // G_B, d // G_C
    block = _pow2_divisor(block_d, d)
    if B.dim() == 4:
        block = _pow2_divisor(block, per_B)
    if C.dim() == 4:
        block = _pow2_divisor(block, per_C)
    return G_B, G_C, per_B, per_C, block


def _forward(u, delta, A, B, C, D, z, delta_bias, softplus, chunk, block_d, save):
    batch, d, length = u.shape
    n = A.shape[1]
    G_B, G_C, per_B, per_C, block = _layout(u, B, C, block_d)
    n_chunks = triton.cdiv(length, chunk)
    out = torch.empty_like(u)
    h_last = torch.empty(batch, d, n, device=u.device, dtype=torch.float32)
    ckpt = (torch.empty(batch, d, n_chunks, n, device=u.device, dtype=torch.float32) if save
            else h_last)  # a dummy pointer when nothing is saved
    zero = u.new_zeros(d, dtype=torch.float32)
    grid = (batch, triton.cdiv(d, block))
    _scan_fwd_kernel[grid](
        u, delta, A, B, C, D if D is not None else zero, z if z is not None else u,
        delta_bias if delta_bias is not None else zero, out, h_last, ckpt,
        d, length, n, n_chunks, G_B, G_C, per_B, per_C,
        B_VARYING=B.dim() == 4, C_VARYING=C.dim() == 4, HAS_Z=z is not None,
        SOFTPLUS=bool(softplus), SAVE=bool(save),
        BLOCK_D=block, BLOCK_N=triton.next_power_of_2(n), CHUNK=chunk, num_warps=NUM_WARPS,
    )
    return out, h_last, (ckpt if save else None)


def _backward(u, delta, A, B, C, D, z, delta_bias, softplus, chunk, block_d, ckpt, gout, gh):
    batch, d, length = u.shape
    n = A.shape[1]
    G_B, G_C, per_B, per_C, block = _layout(u, B, C, block_d)
    n_chunks = triton.cdiv(length, chunk)
    n_blk = triton.cdiv(d, block)
    dev, f32 = u.device, torch.float32
    du = torch.empty_like(u)
    ddelta = torch.empty_like(delta)
    dz = torch.empty_like(z) if z is not None else du
    dA_p = torch.empty(batch, d, n, device=dev, dtype=f32)
    dD_p = torch.empty(batch, d, device=dev, dtype=f32)
    dbias_p = torch.empty(batch, d, device=dev, dtype=f32)
    dB_p = (torch.empty(batch, n_blk, n, length, device=dev, dtype=f32) if B.dim() == 4
            else torch.empty(batch, d, n, device=dev, dtype=f32))
    dC_p = (torch.empty(batch, n_blk, n, length, device=dev, dtype=f32) if C.dim() == 4
            else torch.empty(batch, d, n, device=dev, dtype=f32))
    zero = u.new_zeros(d, dtype=f32)
    _scan_bwd_kernel[(batch, n_blk)](
        u, delta, A, B, C, D if D is not None else zero, z if z is not None else u,
        delta_bias if delta_bias is not None else zero, ckpt,
        gout, gh if gh is not None else dA_p,
        du, ddelta, dz, dA_p, dD_p, dbias_p, dB_p, dC_p,
        d, length, n, n_chunks, G_B, G_C, per_B, per_C, n_blk,
        B_VARYING=B.dim() == 4, C_VARYING=C.dim() == 4, HAS_Z=z is not None,
        SOFTPLUS=bool(softplus), HAS_GH=gh is not None,
        BLOCK_D=block, BLOCK_N=triton.next_power_of_2(n), CHUNK=chunk, num_warps=NUM_WARPS,
    )

    def reduce_bc(p, M):
        if M.dim() == 4:   # (batch, n_blk, N, L): sum the blocks of each group
            G = M.shape[1]
            return p.view(batch, G, n_blk // G, n, length).sum(2)
        return p.sum(0)    # (batch, D, N) -> (D, N)
    dB, dC = reduce_bc(dB_p, B), reduce_bc(dC_p, C)
    return (du, ddelta, dA_p.sum(0), dB, dC, dD_p.sum(0), dz if z is not None else None,
            dbias_p.sum(0))


class _TritonScan(torch.autograd.Function):
    """out and the last state from all inputs (contiguous; B/C varying as (batch, G, N, L));
    gradients for every tensor input from one backward kernel."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, softplus, chunk, block_fwd, block_bwd):
        out, h_last, ckpt = _forward(u, delta, A, B, C, D, z, delta_bias, softplus, chunk, block_fwd, True)
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, ckpt)
        ctx.cfg = (softplus, chunk, block_bwd)
        return out, h_last

    @staticmethod
    def backward(ctx, gout, gh):
        u, delta, A, B, C, D, z, delta_bias, ckpt = ctx.saved_tensors
        softplus, chunk, block_bwd = ctx.cfg
        gout = torch.zeros_like(u) if gout is None else gout.contiguous()
        gh = None if gh is None else gh.float().contiguous()
        du, ddelta, dA, dB, dC, dD, dz, dbias = _backward(
            u, delta, A, B, C, D, z, delta_bias, softplus, chunk, block_bwd, ckpt, gout, gh)
        need = ctx.needs_input_grad
        grads = [du, ddelta, dA.to(A.dtype), dB.to(B.dtype), dC.to(C.dtype),
                 dD.to(D.dtype) if D is not None else None, dz,
                 dbias.to(delta_bias.dtype) if delta_bias is not None else None]
        grads = [g if need[i] else None for i, g in enumerate(grads)]
        return (*grads, None, None, None, None)


def selective_scan_triton(u, delta, A, B, C, D: Optional[torch.Tensor] = None,
                          z: Optional[torch.Tensor] = None, delta_bias: Optional[torch.Tensor] = None,
                          delta_softplus: bool = False, return_last_state: bool = False, *,
                          chunk_size: Optional[int] = None):
    """The selective scan on the Triton kernels (module docstring). CUDA tensors, or any tensors
    when the kernels were built for the interpreter. ``chunk_size``: time steps per chunk, rounded
    up to a power of two (default :data:`CHUNK`, never longer than the sequence needs).
    Returns ``out`` in u's dtype, and with ``return_last_state`` the float32 state (batch, D, N).
    Inputs that are not contiguous are copied.
    """
    _check_inputs(u, delta, A, B, C, D, z, delta_bias)
    length = u.shape[2]
    chunk = triton.next_power_of_2(max(2, int(chunk_size or CHUNK)))
    chunk = max(2, min(chunk, triton.next_power_of_2(length)))
    args = [u.contiguous(), delta.contiguous(), A.contiguous(), _as_groups(B), _as_groups(C),
            None if D is None else D.contiguous(), None if z is None else z.contiguous(),
            None if delta_bias is None else delta_bias.contiguous()]
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in args):
        out, h_last = _TritonScan.apply(*args, bool(delta_softplus), chunk, BLOCK_D_FWD, BLOCK_D_BWD)
    else:
        out, h_last, _ = _forward(*args, bool(delta_softplus), chunk, BLOCK_D_FWD, False)
    return (out, h_last) if return_last_state else out
