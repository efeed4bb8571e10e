"""A small video diffusion transformer with a per-block hook for conditioning adapters, and the
block-causal attention mask that keeps generated frame t from seeing anything after t.

Pieces (DiT: Peebles & Xie 2023; factorised space-time attention: Latte / CogVideoX-style):

* :func:`block_causal_mask` (frame level): query frame at time ``q`` may attend a key at time
  ``k`` iff ``k <= q`` (``causal``) and ``k > q - window`` (``window``); :func:`expand_mask`
  repeats it over the tokens of each frame ("block" causal: all tokens of a frame share a row).
* :class:`MaskedCrossAttention`: cross-attention from video tokens to context tokens under such a
  mask, with an always-visible learned null token (a frame with no visible key still gets a
  well-defined softmax), optional zero-initialised output projection, and the last attention
  map kept for inspection (``last_attention``: (B, T, S) averaged over heads and frame tokens).
* :class:`VideoDiT`: patch tokens per frame, spatial attention inside a frame, temporal
  attention across frames at each patch position (causal when ``causal_time``), an optional
  adapter after self-attention (``adapter_factory(width)``; called as
  ``adapter(h, speaker, frame_times, speaker_times)`` on h (B, T, N, W)), an MLP; every sublayer
  gated by timestep AdaLN-Zero. Conditioning frames (a reference image, known frames and their
  mask) enter by channel concatenation, as image-to-video DiTs do.

Why the temporal self-attention is causal too: the frames of a clip are denoised jointly, so a
future listener frame that saw a future speaker frame would pass it back to frame t through
bidirectional temporal attention; with both masks causal, generated frame t depends on speaker
frames <= t only, through every block and every sampling step (``tests/test_video_dit.py``).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


# ----------------------------------------------------------------------------- masks
def block_causal_mask(frame_times, key_times, *, causal: bool = True, window: int | None = None) -> torch.Tensor:
    """(Tq, Tk) bool, True where query frame i may attend key j: ``key <= query`` when ``causal``
    and ``key > query - window`` when ``window`` is given (frames)."""
    q = torch.as_tensor(frame_times).reshape(-1, 1)
    k = torch.as_tensor(key_times).reshape(1, -1)
    m = torch.ones(q.shape[0], k.shape[1], dtype=torch.bool, device=q.device)
    if causal:
        m &= k <= q
    if window is not None:
        if window < 1:
            raise ValueError(f"block_causal_mask: window must be >= 1 frame, got {window}")
        m &= k > q - window
    return m


def expand_mask(mask: torch.Tensor, q_per_frame: int, k_per_frame: int = 1) -> torch.Tensor:
    """Repeat a frame-level (Tq, Tk) mask to token level (Tq * q_per_frame, Tk * k_per_frame)."""
    return mask.repeat_interleave(q_per_frame, 0).repeat_interleave(k_per_frame, 1)


def sinusoid(x: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding (..., dim) of real-valued positions/timesteps ``x`` (...)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=x.device, dtype=torch.float32) / half)
    a = x.float()[..., None] * freqs
    return torch.cat([a.cos(), a.sin()], -1)


# ----------------------------------------------------------------------------- attention
class MaskedCrossAttention(nn.Module):
    """Video tokens (B, T, N, W) attend context tokens (B, S, Dc) under a frame-level (T, S) mask."""

    def __init__(self, width: int, context_dim: int, heads: int = 4, zero_init: bool = True):
        super().__init__()
        if width % heads:
            raise ValueError(f"MaskedCrossAttention: width {width} not divisible by heads {heads}")
        self.heads = heads
        self.norm = nn.LayerNorm(width)
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(context_dim, 2 * width)
        self.null = nn.Parameter(torch.zeros(1, 1, context_dim))   # always visible: "attend nothing"
        self.out = nn.Linear(width, width)
        if zero_init:   # the adapter starts as the identity on the backbone (ControlNet / adapter practice)
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)
        self.last_attention: torch.Tensor | None = None

    def forward(self, h: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, N, W = h.shape
        S = context.shape[1]
        if mask.shape != (T, S):
            raise ValueError(f"MaskedCrossAttention: mask {tuple(mask.shape)} does not match {T} frames x {S} keys")
        ctx = torch.cat([self.null.expand(B, 1, -1).to(context), context], 1)
        full = torch.cat([torch.ones(T, 1, dtype=torch.bool, device=mask.device), mask], 1)
        tok = expand_mask(full, N).to(h.device)                                   # (T*N, S+1)
        hd = W // self.heads
        q = self.q(self.norm(h).reshape(B, T * N, W)).view(B, T * N, self.heads, hd).transpose(1, 2)
        k, v = self.kv(ctx).view(B, S + 1, 2, self.heads, hd).permute(2, 0, 3, 1, 4)
        logits = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        logits = logits.masked_fill(~tok, float("-inf"))
        att = logits.softmax(-1)                                                  # (B, H, T*N, S+1)
        self.last_attention = att.detach()[..., 1:].mean(1).view(B, T, N, S).mean(2)
        y = (att @ v).transpose(1, 2).reshape(B, T, N, W)
        return self.out(y)


class _SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        B, L, W = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, W // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(B, L, W))


def _modulate(x, shift, scale):
    return x * (1 + scale) + shift


class DiTBlock(nn.Module):
    """Spatial attention, temporal attention, [adapter], MLP; AdaLN-Zero from the conditioning vector."""

    def __init__(self, width: int, heads: int, adapter: nn.Module | None = None, mlp_ratio: float = 4.0):
        super().__init__()
        self.norms = nn.ModuleList([nn.LayerNorm(width, elementwise_affine=False, eps=1e-6) for _ in range(3)])
        self.spatial = _SelfAttention(width, heads)
        self.temporal = _SelfAttention(width, heads)
        self.adapter = adapter
        self.mlp = nn.Sequential(nn.Linear(width, int(width * mlp_ratio)), nn.GELU(approximate="tanh"),
                                 nn.Linear(int(width * mlp_ratio), width))
        self.ada = nn.Linear(width, 9 * width)      # (shift, scale, gate) x 3 sublayers
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def forward(self, h, c, time_mask, speaker=None, frame_times=None, speaker_times=None):
        B, T, N, W = h.shape
        mods = self.ada(F.silu(c)).view(B, 1, 1, 9, W).unbind(3)
        # spatial attention: the N tokens of one frame
        x = _modulate(self.norms[0](h), mods[0], mods[1]).reshape(B * T, N, W)
        h = h + mods[2] * self.spatial(x).view(B, T, N, W)
        # temporal attention: one patch position across frames (causal mask when given)
        x = _modulate(self.norms[1](h), mods[3], mods[4]).transpose(1, 2).reshape(B * N, T, W)
        h = h + mods[5] * self.temporal(x, time_mask).view(B, N, T, W).transpose(1, 2)
        if self.adapter is not None and speaker is not None:
            h = h + self.adapter(h, speaker, frame_times, speaker_times)
        x = _modulate(self.norms[2](h), mods[6], mods[7])
        return h + mods[8] * self.mlp(x)


class VideoDiT(nn.Module):
    """eps-prediction DiT over (B, T, C, H, W) frames.

    ``forward(x, t, cond_frames, speaker=None, frame_times=None, speaker_times=None, text=None)``:
    ``cond_frames`` (B, T, cond_channels, H, W) are concatenated to the noisy frames; ``text``
    (B, text_dim) pooled text embeddings add to the timestep embedding (AdaLN); ``frame_times``
    (T,) and ``speaker_times`` (S,) are integer frame times on one clock, used by the temporal
    position embedding, the causal masks and the adapters.
    """

    def __init__(self, channels: int, size: int, *, cond_channels: int = 0, patch: int = 2, width: int = 64,
                 depth: int = 2, heads: int = 4, causal_time: bool = True, text_dim: int | None = None,
                 adapter_factory: Callable[[int], nn.Module] | None = None):
        super().__init__()
        if size % patch:
            raise ValueError(f"VideoDiT: frame size {size} not divisible by patch {patch}")
        self.channels, self.size, self.patch, self.width = channels, size, patch, width
        self.causal_time = causal_time
        self.n_tokens = (size // patch) ** 2
        self.embed = nn.Conv2d(channels + cond_channels, width, patch, stride=patch)
        self.pos = nn.Parameter(torch.randn(1, 1, self.n_tokens, width) * 0.02)
        self.t_mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.text = nn.Linear(text_dim, width) if text_dim else None
        self.blocks = nn.ModuleList([DiTBlock(width, heads, adapter_factory(width) if adapter_factory else None)
                                     for _ in range(depth)])
        self.final_norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Linear(width, 2 * width)
        self.final = nn.Linear(width, patch * patch * channels)
        for m in (self.final_ada, self.final):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def adapters(self) -> list[nn.Module]:
        return [b.adapter for b in self.blocks if b.adapter is not None]

    def forward(self, x, t, cond_frames=None, speaker=None, frame_times=None, speaker_times=None, text=None):
        B, T, C, H, W = x.shape
        if cond_frames is not None:
            x = torch.cat([x, cond_frames], 2)
        h = self.embed(x.reshape(B * T, -1, H, W))                          # (B T, W, H/p, W/p)
        h = h.flatten(2).transpose(1, 2).reshape(B, T, self.n_tokens, self.width) + self.pos
        if frame_times is None:
            frame_times = torch.arange(T)
        frame_times = torch.as_tensor(frame_times, device=x.device)
        h = h + sinusoid(frame_times.float(), self.width)[None, :, None]    # temporal position
        c = self.t_mlp(sinusoid(torch.as_tensor(t, device=x.device).float().expand(B), self.width))
        if text is not None and self.text is not None:
            c = c + self.text(text)
        time_mask = block_causal_mask(frame_times, frame_times) if self.causal_time else None
        for blk in self.blocks:
            h = blk(h, c, time_mask, speaker, frame_times, speaker_times)
        shift, scale = self.final_ada(F.silu(c)).view(B, 1, 1, 2, self.width).unbind(3)
        out = self.final(_modulate(self.final_norm(h), shift, scale))       # (B, T, N, p*p*C)
        g, p = self.size // self.patch, self.patch
        out = out.view(B, T, g, g, p, p, C).permute(0, 1, 6, 2, 4, 3, 5)
        return out.reshape(B, T, C, H, W)


# ----------------------------------------------------------------------------- training and sampling
def video_ddpm_loss(model: nn.Module, scheduler, x0: torch.Tensor, *, frame_weight: torch.Tensor | None = None,
                    generator: torch.Generator | None = None, prediction: str = "epsilon", **cond) -> torch.Tensor:
    """``|| eps - eps_theta(x_t, t, cond) ||^2`` over (B, T, C, H, W) frames, one timestep per clip
    (Ho et al. 2020, Eq. 14), or its x0 / v counterpart (``prediction``, see
    :func:`facelab.nn.diffusion.training_target`); ``frame_weight`` (B, T) weights frames (0 = known)."""
    from .diffusion import sample_timesteps, training_target

    B = x0.shape[0]
    t = sample_timesteps(B, scheduler.config.num_train_timesteps, generator=generator).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator, device="cpu").to(x0)
    ab = scheduler.alphas_cumprod.to(x0.device)[t].view(B, 1, 1, 1, 1).to(x0)
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
    target = training_target(scheduler, x0, noise, t.cpu(), prediction)
    err = (model(xt, t, **cond) - target).pow(2).mean((2, 3, 4))                # (B, T)
    if frame_weight is None:
        return err.mean()
    return (err * frame_weight).sum() / frame_weight.sum().clamp_min(1e-8)


@torch.no_grad()
def ddim_sample_video(model: nn.Module, scheduler, shape, *, steps: int = 20, x_T: torch.Tensor | None = None,
                      generator: torch.Generator | None = None, prediction: str = "epsilon",
                      known: tuple[torch.Tensor, torch.Tensor] | None = None, start_index: int = 0,
                      **cond) -> torch.Tensor:
    """Deterministic DDIM (eta = 0) from ``x_T`` or fresh noise of ``shape`` (B, T, C, H, W); the
    model's output is read as ``prediction`` (epsilon / sample / v_prediction).

    ``known = (frames, mask)`` ((B, T, ...) clean frames, (T,) bool) inpaints: after every step the
    known frames are replaced by themselves forward-noised to the new timestep, with one fixed noise
    draw (replacement inpainting, as RePaint without resampling, Lugmayr et al. 2022), so the
    generated frames are denoised against the true neighbours at every noise level.

    ``start_index`` > 0 starts at the ``start_index``-th of the ``steps`` timesteps: pass ``x_T`` =
    the frames to edit, forward-noised to that timestep (:func:`noise_to`), for SDEdit-style
    video-to-video editing (Meng et al. 2022) that keeps what the noise level does not erase."""
    from .diffusion import ddim_step, output_to_eps, timesteps

    ts = timesteps(scheduler, steps)[start_index:]
    x = x_T if x_T is not None else torch.randn(tuple(shape), generator=generator, device="cpu")
    dev = next(model.parameters()).device
    x = x.to(dev)
    if known is not None:
        k_frames, k_mask = known[0].to(dev), known[1].to(dev)
        k_noise = torch.randn(tuple(k_frames.shape), generator=generator, device="cpu").to(dev)
    for i, t in enumerate(ts):
        tt = torch.full((x.shape[0],), t, device=dev, dtype=torch.long)
        eps = output_to_eps(scheduler, x, model(x, tt, **cond), tt.cpu(), prediction)
        t_next = ts[i + 1] if i + 1 < len(ts) else -1
        x = ddim_step(scheduler, x, eps, t, t_next)
        if known is not None:
            ab = float(scheduler.alphas_cumprod[t_next]) if t_next >= 0 else 1.0
            x[:, k_mask] = ab ** 0.5 * k_frames[:, k_mask] + (1 - ab) ** 0.5 * k_noise[:, k_mask]
    return x


def noise_to(scheduler, x0: torch.Tensor, t: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``: clean frames forward-noised to timestep ``t``."""
    ab = float(scheduler.alphas_cumprod[int(t)])
    eps = torch.randn(tuple(x0.shape), generator=generator, device="cpu").to(x0)
    return ab ** 0.5 * x0 + (1 - ab) ** 0.5 * eps
