"""The selective scan of Mamba (Gu & Dao 2023), with the semantics of mamba-ssm's ``selective_scan_fn``.

For every batch element ``b``, channel ``d`` and state index ``n`` the scan runs the discretised
linear recurrence of the paper (Section 2, eq. 2a/2b, zero-order-hold discretisation of A and the
simplified Euler step for B that the reference implementation uses)::

    h_t = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t            (2a, A_bar = exp(delta A))
    y_t = C_t . h_t + D * u_t                                          (2b, plus the skip term D)
    out = y * silu(z)                                                   (when a gate z is given)

Shapes (mamba-ssm's conventions): ``u``, ``delta``, ``z``: (batch, D, L); ``A``: (D, N); ``B``,
``C``: (D, N) time-invariant, (batch, N, L) input-dependent, or (batch, G, N, L) grouped (channel
``d`` reads group ``d // (D // G)``); ``D``, ``delta_bias``: (D,). ``delta_bias`` is added to delta
before the optional softplus. The output has the dtype of ``u``; the last state is float32,
shape (batch, D, N). Everything is computed in float32 internally, as mamba-ssm does.

Five implementations sit behind :func:`selective_scan` (``backend=``):

* ``"mamba_ssm"`` - mamba-ssm's fused CUDA kernel. It is imported lazily inside the call, because
  importing mamba-ssm on a machine without CUDA crashes.
* ``"numba"`` - :mod:`facelab.nn.scan_numba`: two compiled CPU kernels (forward, and the
  adjoint recurrence for the backward), one pass over time per (batch, channel) with a small
  running state, never materialising the (batch, D, N, L) one, vectorised (SIMD) over the state
  index; without autograd the forward kernel also applies the bias, softplus, D and the gate.
  CPU tensors only. numba is imported lazily, on first use.
* ``"triton"`` - :mod:`facelab.nn.scan_triton`: a chunked scan in two Triton kernels (forward,
  and a reverse scan that recomputes each chunk's states for the backward). CUDA tensors; on a CPU
  only under Triton's interpreter (``TRITON_INTERPRET=1`` before triton is imported; for tests).
  triton is imported lazily, on first use.
* ``"torch"`` - our chunked pure-PyTorch scan (below): no Python loop over time steps, works on
  any device and dtype, differentiable through ordinary torch ops.
* ``"reference"`` - :func:`selective_scan_reference`, the plain loop over time, for tests.

``"auto"`` picks for CUDA tensors mamba-ssm's kernel when it imports, else the Triton kernels when
triton imports (falling back to the torch scan, with a warning, if they fail to compile there);
for CPU tensors the numba kernels when numba imports; and the chunked torch scan otherwise.

How the chunked scan works
--------------------------
Split time into chunks of length T. Inside a chunk let ``g_t = sum_{k<=t} delta_k`` (inclusive
cumulative sum from the chunk start) and ``e_t = A * g_t``, the cumulative log-decay. Because A
does not depend on time, the decay between two steps is a difference of cumulative sums,
``prod_{k=s+1..t} A_bar_k = exp(e_t - e_s)``, so unrolling (2a) inside a chunk gives

    h_t = exp(e_t) * ( h_start + sum_{s<=t} exp(-e_s) * delta_s * B_s * u_s ).

That is a cumulative sum over the chunk (parallel), followed by a carry of ``h_start`` from chunk
to chunk (a short loop over chunks, not over time steps). The factorised form avoids the
(T x T x N) masked decay matrix that the quadratic "segsum" form would need per channel (A has a
separate decay per (d, n) in Mamba-1, so that matrix is N times larger than in Mamba-2's SSD).

Stability: ``exp(-e_s)`` grows inside a chunk, at most to ``exp(max|A| * max|g|)``. Before
exponentiating, the chunk length is halved until that exponent is at most ``_MAX_EXPONENT`` (40,
i.e. factors below 2.4e17, far from float32 overflow at 3.4e38, and the cumulative sum keeps
float32 relative precision because its largest terms are the most recent ones, which dominate
``h_t``). With typical Mamba values (delta < 0.1, |A| <= 16) chunks of 32 never need halving; a
pathological input degrades towards the sequential loop, never to inf/nan. Everything else is
``exp`` of non-positive numbers (decays) only.
"""
from __future__ import annotations

import math
import os
import warnings
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F

__all__ = ["selective_scan", "selective_scan_reference", "mamba_ssm_available", "numba_available",
           "triton_available", "default_chunk_size"]

Tensor = torch.Tensor
_BACKENDS = ("auto", "numba", "torch", "mamba_ssm", "triton", "reference")
# Largest exponent we let exp() see inside a chunk (see the module docstring).
_MAX_EXPONENT = 40.0
# Work on blocks of channels so that each (batch, channels, L, N) intermediate stays ~cache sized
# on CPU; on GPUs the whole tensor is one block.
_CPU_BLOCK_ELEMENTS = 1 << 19
_TWO_LEVEL_MIN = 1 << 20   # elements of the (b, c, N, chunks) carry from which it runs in two levels

_mamba_fn = None  # cached mamba-ssm selective_scan_fn (or False after a failed import)
_triton_failed = False  # set when the Triton kernels failed on CUDA under "auto": use torch then


# --------------------------------------------------------------------------------------------
# dispatch
# --------------------------------------------------------------------------------------------
def mamba_ssm_available() -> bool:
    """True when CUDA is available and mamba-ssm's kernel imports. Never imports it without CUDA."""
    return _load_mamba() is not None


def _load_mamba():
    global _mamba_fn
    if _mamba_fn is None:
        if not torch.cuda.is_available():
            return None  # don't cache: importing mamba-ssm without CUDA crashes, so never try
        try:  # lazy and guarded: mamba-ssm must never be imported at module level
            from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
            _mamba_fn = _mamba_adapter(selective_scan_fn)
        except Exception:  # ImportError, or a CUDA extension that fails to load
            _mamba_fn = False
    return _mamba_fn or None


def _mamba_adapter(kernel_fn):
    """mamba-ssm's ``selective_scan_fn`` with two of its edge cases mended, so that it keeps our
    semantics: a time-invariant B or C (shape (D, N)) must have A's float32 "weight type" (the
    kernel rejects a bf16 one), and with a time-invariant B the kernel leaves B out of the state it
    returns (it multiplies by B only when forming the output; mamba-ssm PR #371, measured here on
    an H200 with mamba-ssm 2.3.2.post1: the last state differed by exactly that factor), so the
    returned state is multiplied by B."""
    def call(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state):
        if B.dim() == 2:
            B = B.float()
        if C.dim() == 2:
            C = C.float()
        res = kernel_fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
        if return_last_state and B.dim() == 2:
            out, last = res
            return out, last * B
        return res
    return call


def numba_available() -> bool:
    """True when the compiled CPU backend (numba) imports. Imports numba on the first call."""
    return _load_numba() is not None


def _load_numba():
    from facelab.config import import_numba_module

    mod = import_numba_module("facelab.nn.scan_numba")
    return mod.selective_scan_numba if mod is not None else None


def triton_available() -> bool:
    """True when triton imports and its kernels can run here: CUDA, or Triton's interpreter
    (``TRITON_INTERPRET=1`` when triton was first imported)."""
    mod = _load_triton()
    return mod is not None and (torch.cuda.is_available() or mod.interpreted())


def _load_triton():
    """facelab.nn.scan_triton (which imports triton), or None when triton does not import."""
    try:
        import importlib

        return importlib.import_module("facelab.nn.scan_triton")
    except Exception:  # ImportError, or a triton that does not fit this torch
        return None


def _triton_suits(*tensors) -> bool:
    """For "auto": triton imports, has not failed here before, and takes these tensors (CUDA, and
    dtypes it supports; others, e.g. float64, go to the torch scan)."""
    if _triton_failed:
        return False
    mod = _load_triton()
    return mod is not None and mod.supports(*tensors)


def default_chunk_size(device: Union[torch.device, str, None] = None) -> int:
    """Chunk length T for our scan. Tuned on a 2-core CPU (32); GPUs prefer longer chunks (fewer
    carry steps, larger kernels)."""
    dev = torch.device(device) if device is not None else torch.device("cpu")
    return 64 if dev.type == "cuda" else 32


def selective_scan(
    u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
    D: Optional[Tensor] = None, z: Optional[Tensor] = None, delta_bias: Optional[Tensor] = None,
    delta_softplus: bool = False, return_last_state: bool = False, *,
    backend: str = "auto", chunk_size: Optional[int] = None, compile: bool = False,
) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    """Selective scan with mamba-ssm's ``selective_scan_fn`` semantics (see the module docstring).

    ``backend``: ``"auto"`` (for CUDA tensors mamba-ssm's kernel when it imports, else the Triton
    kernels when triton imports; the numba kernels for CPU tensors when numba imports; else the
    chunked torch scan), ``"numba"`` (compiled CPU kernels; raises if numba is missing or a tensor
    is not on the CPU), ``"triton"`` (raises if triton is missing, or the tensors are not on CUDA
    and the interpreter is off), ``"torch"`` (ours, chunked), ``"mamba_ssm"`` (the kernel; raises
    if unavailable) or ``"reference"`` (sequential loop). ``chunk_size`` affects ``"torch"`` and
    ``"triton"``; ``compile`` (``torch.compile`` of the chunk computation; off by default, and
    pointless on CPU) only ``"torch"``.
    Returns ``out`` (batch, D, L) in u's dtype, and with ``return_last_state`` also the final
    state (batch, D, N) in float32.
    """
    global _triton_failed
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    auto = backend == "auto"
    if auto:
        if u.is_cuda:
            backend = ("mamba_ssm" if _load_mamba() is not None else
                       "triton" if _triton_suits(u, delta, A, B, C, D, z, delta_bias) else "torch")
        else:
            on_cpu = all(t is None or t.device.type == "cpu" for t in (u, delta, A, B, C, D, z, delta_bias))
            backend = "numba" if on_cpu and _load_numba() is not None else "torch"
    if backend == "numba":
        fn = _load_numba()
        if fn is None:
            raise RuntimeError("backend='numba' needs an importable numba (pip install numba)")
        if any(t is not None and t.device.type != "cpu" for t in (u, delta, A, B, C, D, z, delta_bias)):
            raise RuntimeError("backend='numba' runs on CPU tensors only")
        _check(u, delta, A, B, C)
        return fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    if backend == "mamba_ssm":
        fn = _load_mamba()
        if fn is None:
            raise RuntimeError("backend='mamba_ssm' needs CUDA and an importable mamba-ssm")
        return fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    if backend == "triton":
        mod = _load_triton()
        if mod is None:
            raise RuntimeError("backend='triton' needs an importable triton (pip install triton)")
        try:
            return mod.selective_scan_triton(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                             return_last_state, chunk_size=chunk_size)
        except (ValueError, TypeError):
            raise
        except Exception as e:  # e.g. a compile failure on this GPU: "auto" must still answer
            if not auto:
                raise
            _triton_failed = True
            warnings.warn(f"selective_scan: the Triton kernels failed ({type(e).__name__}: {e}); "
                          "using the torch scan from now on", RuntimeWarning)
    if backend == "reference":
        return selective_scan_reference(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                        return_last_state)
    return _selective_scan_torch(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                 return_last_state, chunk_size, compile)


# --------------------------------------------------------------------------------------------
# shared input handling
# --------------------------------------------------------------------------------------------
def _check(u, delta, A, B, C):
    if u.dim() != 3 or delta.shape != u.shape:
        raise ValueError(f"u and delta must both be (batch, D, L); got {tuple(u.shape)}, {tuple(delta.shape)}")
    if A.dim() != 2 or A.shape[0] != u.shape[1]:
        raise ValueError(f"A must be (D, N) with D={u.shape[1]}; got {tuple(A.shape)}")
    if A.is_complex() or B.is_complex() or C.is_complex():
        raise NotImplementedError("complex A/B/C are not supported")
    for name, M in (("B", B), ("C", C)):
        if M.dim() not in (2, 3, 4):
            raise ValueError(f"{name} must be (D, N), (batch, N, L) or (batch, G, N, L); got {tuple(M.shape)}")


def _discretisation_step(delta: Tensor, delta_bias: Optional[Tensor], delta_softplus: bool) -> Tensor:
    """delta in float32, with the bias and the softplus (Mamba's Delta = softplus(param + bias))."""
    delta = delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias.float()[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    return delta


def _finish(y: Tensor, u: Tensor, D: Optional[Tensor], z: Optional[Tensor], dtype) -> Tensor:
    """Skip term D*u of (2b) and the SiLU gate, in float32, then back to the input dtype."""
    if D is not None:
        y = y + u.float() * D.float()[:, None]
    if z is not None:
        y = y * F.silu(z.float())
    return y.to(dtype)


def _per_channel(M: Tensor, d: int, batch: int, length: int) -> Tensor:
    """B or C as a float32 tensor broadcastable to (batch, D, L, N) (time before state)."""
    M = M.float()
    if M.dim() == 2:  # (D, N): time-invariant
        return M[None, :, None, :]
    if M.dim() == 3:  # (batch, N, L): shared by all channels
        return M.transpose(1, 2)[:, None]
    g = M.shape[1]  # (batch, G, N, L): channel d uses group d // (D // G)
    if d % g:
        raise ValueError(f"{d} channels cannot be split into {g} groups")
    return M.transpose(2, 3).repeat_interleave(d // g, dim=1)


# --------------------------------------------------------------------------------------------
# the sequential reference
# --------------------------------------------------------------------------------------------
def selective_scan_reference(
    u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
    D: Optional[Tensor] = None, z: Optional[Tensor] = None, delta_bias: Optional[Tensor] = None,
    delta_softplus: bool = False, return_last_state: bool = False,
) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    """Eq. (2a)/(2b) exactly as written: one step of the recurrence per time step, in float32.

    Slow (a Python loop over L) but obviously right; the yardstick for the fast paths.
    """
    _check(u, delta, A, B, C)
    batch, d, length = u.shape
    dt = _discretisation_step(delta, delta_bias, delta_softplus)
    uf, Af = u.float(), A.float()
    Bp, Cp = _per_channel(B, d, batch, length), _per_channel(C, d, batch, length)
    h = uf.new_zeros(batch, d, A.shape[1])
    ys = []
    for t in range(length):
        Bt = Bp[:, :, t if Bp.shape[2] > 1 else 0]
        Ct = Cp[:, :, t if Cp.shape[2] > 1 else 0]
        A_bar = torch.exp(dt[:, :, t, None] * Af)                  # ZOH: A_bar = exp(delta A)
        h = A_bar * h + (dt[:, :, t] * uf[:, :, t])[:, :, None] * Bt  # (2a), B_bar u = delta B u
        ys.append((h * Ct).sum(-1))                                # (2b) without D
    y = torch.stack(ys, dim=-1)
    out = _finish(y, u, D, z, u.dtype)
    return (out, h) if return_last_state else out


# --------------------------------------------------------------------------------------------
# our chunked scan
# --------------------------------------------------------------------------------------------
def _safe_chunk(dt: Tensor, A: Tensor, T: int) -> int:
    """Largest T' <= T (halving) with max|A| * max|cumsum of delta within a chunk| <= _MAX_EXPONENT.

    Per channel bound: |e| <= max_n |A[d, n]| * max_t |g_t|. One small reduction, no (.., N) tensor.
    """
    with torch.no_grad():
        a_max = A.detach().abs().amax(-1)  # (D,)
        length = dt.shape[-1]
        while T > 1:
            nc = -(-length // T)
            g = _cumsum_last(F.pad(dt.detach(), (0, nc * T - length)).view(*dt.shape[:-1], nc, T))
            bound = (g.abs().amax(dim=(0, 2, 3)) * a_max).max()
            if float(bound) <= _MAX_EXPONENT:
                break
            T //= 2
    return T


def _cumsum_last(x: Tensor) -> Tensor:
    """Inclusive cumulative sum over the last (short, chunk-length) dim.

    On CUDA PyTorch's ``cumsum`` over a short innermost dim is slow: measured on an H200 at 14 ms
    for 100 M elements, 95 % of our whole scan's forward (87 ms vs mamba-ssm's kernel 0.5 ms,
    batch 8 x 768 channels x length 1024 x state 16), and its backward is another such cumsum.
    There it is one matrix product with a triangle of ones, ``x @ U`` (one memory-bound pass
    each way; its backward is ``grad @ U^T``), when float32 products are exact ("highest"
    precision; TF32 would round the sums to ~1e-3), and otherwise recursive doubling (log2 T
    shifted adds). ``CUDA_CUMSUM`` picks one ("auto" | "matmul" | "doubling"). Elsewhere torch's
    cumsum is fine.
    """
    if not x.is_cuda:
        return x.cumsum(-1)
    how = CUDA_CUMSUM
    if how == "auto":
        how = "matmul" if x.dtype != torch.float32 or torch.get_float32_matmul_precision() == "highest" else "doubling"
    return _cumsum_matmul(x) if how == "matmul" else _cumsum_doubling(x)


CUDA_CUMSUM = "auto"


def _cumsum_matmul(x: Tensor) -> Tensor:
    n = x.shape[-1]
    upper = torch.ones(n, n, dtype=x.dtype, device=x.device).triu_()   # U[s, t] = 1 for s <= t
    return x @ upper


def _cumsum_doubling(x: Tensor) -> Tensor:
    n, off = x.shape[-1], 1
    while off < n:
        x = x + F.pad(x[..., :-off], (off, 0))
        off *= 2
    return x


def _chunk_states(g: Tensor, x: Tensor, A: Tensor, Bc: Tensor):
    """The parallel part for one block of channels, time innermost (long contiguous rows).

    g: (b, c, nc, T) cumulative delta within each chunk; x = delta*u: (b, c, nc, T); A: (c, N);
    Bc: broadcastable to (b, c, N, nc, T). Returns E = exp(e) with e_t = A g_t the cumulative
    log-decay from the chunk start, and S_t = sum_{s<=t} exp(-e_s) delta_s B_s u_s; both
    (b, c, N, nc, T).
    """
    e = g[:, :, None] * A[None, :, :, None, None]  # e_t = A g_t (<= 0 when A < 0)
    E = e.exp_()                                   # decay since the chunk start: exp of <= 0
    #                                                (in place: the product's backward needs g, A only)
    W = (x[:, :, None] * Bc) / E                   # exp(-e_s) delta_s B_s u_s, bounded by _safe_chunk
    return E, _cumsum_last(W)


def _chunk_outputs(S: Tensor, E: Tensor, h0: Tensor, Cc: Tensor) -> Tensor:
    """y_t = C_t . h_t with h_t = exp(e_t) (h_start + S_t): eq. (2b) with the carried state."""
    return ((S + h0[..., None]) * E * Cc).sum(2)


def _linear_scan(a: Tensor, x: Tensor, products: bool = False):
    """All h_k = a_k h_{k-1} + x_k (h_{-1} = 0) along the last dim, by recursive doubling.
    With ``products``, also the prefix products a_0 ... a_k: returns ``(h, prefix)``."""
    n, off = a.shape[-1], 1
    while off < n:
        x = x + a * F.pad(x[..., :-off], (off, 0))
        if products or off * 2 < n:  # otherwise the last step's products are not needed
            a = a * F.pad(a[..., :-off], (off, 0), value=1.0)
        off *= 2
    return (x, a) if products else x


def _linear_scan_blocked(a: Tensor, x: Tensor, block: int = 8) -> Tensor:
    """The same recurrence as :func:`_linear_scan`, in two levels: doubling inside blocks of
    ``block`` steps (log2(block) steps over the whole tensor, keeping each block's prefix
    products), the recurrence between the blocks' ends on a tensor ``block`` times smaller
    (recursively), then one fix-up ``h = local + prefix * carry_in``. Over 128 chunks that is
    3 + 1 full-size steps instead of 7; on the CPU the carry ran 1.8x faster (one thread,
    8 x 768 x 16 x 128)."""
    n = a.shape[-1]
    if n <= block:
        return _linear_scan(a, x)
    pad = -n % block
    if pad:  # identity steps at the end: a = 1, x = 0
        a, x = F.pad(a, (0, pad), value=1.0), F.pad(x, (0, pad))
    groups = a.shape[-1] // block
    x, a = _linear_scan(a.reshape(*a.shape[:-1], groups, block), x.reshape(*x.shape[:-1], groups, block),
                        products=True)                             # within each block, and its prefix products
    carry = _linear_scan_blocked(a[..., -1], x[..., -1], block)  # the state at each block's end
    carry_in = F.pad(carry[..., :-1], (1, 0))                     # entering each block
    h = x + a * carry_in[..., None]
    return h.reshape(*h.shape[:-2], groups * block)[..., :n]


_compiled = {}


def _maybe_compiled(fn, enabled: bool):
    if not enabled:
        return fn
    if fn not in _compiled:
        _compiled[fn] = torch.compile(fn, dynamic=True)
    return _compiled[fn]


def _scan_block(dt, x, A, Bc, Cc, T, compile):
    """dt, x: (b, c, Lp), Lp = nc*T; Bc/Cc: (b|1, c|1, N, Lp|1). Returns y (b, c, Lp), h_last (b, c, N)."""
    b, c, Lp = dt.shape
    nc, N = Lp // T, A.shape[-1]
    g = _cumsum_last(dt.view(b, c, nc, T))
    x4 = x.view(b, c, nc, T)

    def chunked(M):
        return M.view(*M.shape[:3], nc, T) if M.shape[-1] > 1 else M[..., None]
    Bc, Cc = chunked(Bc), chunked(Cc)
    E, S = _maybe_compiled(_chunk_states, compile)(g, x4, A, Bc)
    # Carry between chunks: h_end(k) = decay(k) * h_end(k-1) + local_end(k) is itself a linear
    # recurrence, over nc = L/T chunks on (b, c, N, nc) tensors; run it as a two-level
    # Hillis-Steele scan. It composes decays by products of numbers in (0, 1], so it stays stable
    # however long the sequence is. The chunk's decay is recomputed from g (small) rather than read
    # as E[..., -1], a strided read that touches every memory sector of E.
    # Two levels pay off on large tensors (memory-bound steps); on the CPU's cache-sized blocks of
    # channels the extra small ops cost more than they save (2x192x1024x16: 35 vs 32 ms).
    decay = (g[..., -1][:, :, None] * A[None, :, :, None]).exp()   # (b, c, N, nc)
    carry = _linear_scan_blocked if decay.numel() >= _TWO_LEVEL_MIN else _linear_scan
    h_end = carry(decay, decay * S[..., -1])
    h0 = F.pad(h_end[..., :-1], (1, 0))  # state entering each chunk (zero before the first)
    y = _maybe_compiled(_chunk_outputs, compile)(S, E, h0, Cc)
    return y.reshape(b, c, Lp), h_end[..., -1]


def _block_of(M: Tensor, c0: int, c1: int, d: int, pad: int) -> Tensor:
    """B or C for channels [c0, c1) as float32 (b|1, c|1, N, Lp|1): state before time, so that the
    long time axis is the contiguous one. A block never straddles two groups (see the caller)."""
    M = M.float()
    if M.dim() == 2:                      # (D, N): time-invariant
        return M[c0:c1, :, None][None]
    if M.dim() == 4:                      # (batch, G, N, L): the block's group
        grp = c0 // (d // M.shape[1])
        M = M[:, grp]
    return F.pad(M, (0, pad))[:, None]    # (batch, N, L) shared by the block's channels


def _selective_scan_torch(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state,
                          chunk_size, compile):
    _check(u, delta, A, B, C)
    batch, d, length = u.shape
    n = A.shape[1]
    groups = 1
    for M in (B, C):
        if M.dim() == 4:
            if d % M.shape[1]:
                raise ValueError(f"{d} channels cannot be split into {M.shape[1]} groups")
            groups = math.lcm(groups, M.shape[1])
    dt = _discretisation_step(delta, delta_bias, delta_softplus)
    Af = A.float()
    T = chunk_size or default_chunk_size(u.device)
    T = max(1, min(T, 1 << max(0, (length - 1).bit_length())))  # no longer than needed
    T = _safe_chunk(dt, Af, T)
    if T == 1:  # only for pathological decays: the plain recurrence is the stable answer
        return selective_scan_reference(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                        return_last_state)
    pad = -length % T
    # zero padding at the end: delta = 0 means decay 1 and no input, so the state is unchanged
    dtp = F.pad(dt, (0, pad))
    xp = F.pad(dt * u.float(), (0, pad))
    # Blocks of channels keep each (b, c, N, L) intermediate near cache size on CPU (and bound the
    # memory of the forward pass); on GPUs one block per group. Blocks never straddle groups.
    per_group = d // groups
    if u.is_cuda:
        step = per_group
    else:
        step = max(1, min(per_group, _CPU_BLOCK_ELEMENTS // max(1, batch * (length + pad) * n)))
    ys, hs = [], []
    for g0 in range(0, d, per_group):
        for c0 in range(g0, g0 + per_group, step):
            c1 = min(c0 + step, g0 + per_group)
            y, h = _scan_block(dtp[:, c0:c1], xp[:, c0:c1], Af[c0:c1],
                               _block_of(B, c0, c1, d, pad), _block_of(C, c0, c1, d, pad), T, compile)
            ys.append(y)
            hs.append(h)
    y = ys[0] if len(ys) == 1 else torch.cat(ys, dim=1)
    h = hs[0] if len(hs) == 1 else torch.cat(hs, dim=1)
    out = _finish(y[..., :length], u, D, z, u.dtype)
    return (out, h) if return_last_state else out
