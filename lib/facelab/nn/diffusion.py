"""Generic diffusion helpers on ``diffusers``: a small conditional UNet, the DDPM loss, DDIM
sampling with classifier-free guidance, DDIM inversion and x0 prediction.

Notation (Ho et al. 2020; Song et al. 2021, DDIM): with ``abar_t`` the cumulative product of
``1 - beta``, a noisy sample is ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps``. The network
predicts ``eps``; then

* x0 prediction:  ``x0_hat = (x_t - sqrt(1 - abar_t) eps_hat) / sqrt(abar_t)``
* DDIM step (eta = 0), t -> s < t:  ``x_s = sqrt(abar_s) x0_hat + sqrt(1 - abar_s) eps_hat``
* DDIM inversion, s -> t > s: the same formula read backwards, with ``eps_hat`` taken at s
  (the usual approximation that eps changes little between neighbouring steps);
* classifier-free guidance (Ho & Salimans 2022): ``eps = eps_u + w (eps_c - eps_u)``.

The step functions are written here, on a ``diffusers`` scheduler's ``alphas_cumprod`` and
timesteps, so that sampling and inversion are exact mirrors of each other and the x0 used by
guidance is the same one the step uses. Everything works on any ``eps`` model with the
``UNet2DConditionModel`` call signature ``unet(x, t, encoder_hidden_states=...).sample``.

Three parameterisations of the network output are supported everywhere (``prediction``):
``"epsilon"`` (the noise, Ho et al. 2020), ``"sample"`` (x0 itself) and ``"v_prediction"``
(``v = sqrt(abar_t) eps - sqrt(1 - abar_t) x0``, Salimans & Ho 2022). :class:`EpsView` presents
any of them as an eps model, so sampling, CFG and inversion are written once. For short
from-scratch training, :func:`sample_timesteps` can draw t from a logit-normal density that
puts the updates on the middle noise levels (Esser et al. 2024, SD3 §3.1); the exponential
moving average of the weights is :class:`facelab.nn.ema.EMA`.

``to_latent`` / ``from_latent`` give a lossless "latent" for small pixel models: a
space-to-depth reshuffle (``pixel_unshuffle``) that halves the side and multiplies channels,
so a 32 px grey image becomes a 16x16x4 tensor, like Stable Diffusion's 4-channel latent.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..config import progress


# ----------------------------------------------------------------------------- models
def small_unet(sample_size: int, in_channels: int, *, block_out_channels: Sequence[int] = (32, 64),
               layers_per_block: int = 1, cross_attention_dim: int = 384, attention_levels: Sequence[bool] | None = None,
               attention_head_dim: int = 8, norm_num_groups: int = 8, out_channels: int | None = None):
    """A ``diffusers.UNet2DConditionModel`` small enough to train from scratch on a CPU.

    ``attention_levels[i]`` says whether resolution level i has (self + cross) attention
    (default: all but the first, full-resolution level; the mid block always has it).
    """
    from diffusers import UNet2DConditionModel

    boc = tuple(int(c) for c in block_out_channels)
    if not boc or any(c % norm_num_groups for c in boc):
        raise ValueError(f"small_unet: block_out_channels {boc} must be non-empty multiples of norm_num_groups={norm_num_groups}")
    if sample_size % (2 ** (len(boc) - 1)):
        raise ValueError(f"small_unet: sample_size {sample_size} must be divisible by 2**{len(boc) - 1}")
    levels = list(attention_levels) if attention_levels is not None else [i > 0 for i in range(len(boc))]
    if len(levels) != len(boc):
        raise ValueError(f"small_unet: attention_levels has {len(levels)} entries for {len(boc)} levels")
    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in levels)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(levels))
    return UNet2DConditionModel(sample_size=sample_size, in_channels=in_channels,
                                out_channels=out_channels or in_channels, block_out_channels=boc,
                                layers_per_block=layers_per_block, down_block_types=down, up_block_types=up,
                                cross_attention_dim=cross_attention_dim, attention_head_dim=attention_head_dim,
                                norm_num_groups=norm_num_groups)


def noise_scheduler(num_train_timesteps: int = 1000, beta_schedule: str = "squaredcos_cap_v2"):
    """A ``DDIMScheduler`` (epsilon prediction) whose ``alphas_cumprod`` both training and sampling use."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule,
                         prediction_type="epsilon", clip_sample=False, set_alpha_to_one=True)


def to_latent(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Images in [0, 1], (B, C, H, W) -> space-to-depth latent in [-1, 1], (B, C f^2, H/f, W/f)."""
    if x.ndim != 4:
        raise ValueError(f"to_latent: expected (B, C, H, W) images, got shape {tuple(x.shape)}")
    z = x * 2 - 1
    return F.pixel_unshuffle(z, factor) if factor > 1 else z


def from_latent(z: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Inverse of :func:`to_latent` (not clamped: clamp when you want displayable images)."""
    x = F.pixel_shuffle(z, factor) if factor > 1 else z
    return (x + 1) / 2


# ----------------------------------------------------------------------------- parameterisations
PREDICTIONS = ("epsilon", "sample", "v_prediction")
TIMESTEP_SAMPLING = ("uniform", "logit_normal")


def _check_prediction(prediction: str) -> None:
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")


def training_target(scheduler, x0: torch.Tensor, noise: torch.Tensor, t, prediction: str = "epsilon") -> torch.Tensor:
    """What the network regresses at ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise``:
    ``noise`` (epsilon), ``x0`` (sample) or ``v = sqrt(abar_t) noise - sqrt(1 - abar_t) x0``."""
    _check_prediction(prediction)
    if prediction == "epsilon":
        return noise
    if prediction == "sample":
        return x0
    ab = _abar(scheduler, t, x0)
    return ab.sqrt() * noise - (1 - ab).sqrt() * x0


def output_to_eps(scheduler, x_t: torch.Tensor, out: torch.Tensor, t, prediction: str = "epsilon") -> torch.Tensor:
    """The eps implied by a network output ``out`` of the given parameterisation at ``(x_t, t)``."""
    _check_prediction(prediction)
    if prediction == "epsilon":
        return out
    ab = _abar(scheduler, t, x_t)
    if prediction == "sample":
        return (x_t - ab.sqrt() * out) / (1 - ab).sqrt().clamp_min(1e-4)
    return (1 - ab).sqrt() * x_t + ab.sqrt() * out


class EpsView(nn.Module):
    """Presents a UNet trained with ``prediction`` ("sample" / "v_prediction" / "epsilon") as an eps
    model with the same call signature (``.sample`` is eps), so :func:`cfg_eps`, :func:`ddim_sample`
    and :func:`ddim_invert` run unchanged. CFG stays exact: eps is affine in the output at fixed x_t."""

    def __init__(self, unet: nn.Module, scheduler, prediction: str = "epsilon"):
        super().__init__()
        _check_prediction(prediction)
        self.unet, self.scheduler, self.prediction = unet, scheduler, prediction

    def forward(self, x, t, encoder_hidden_states=None, **kw):
        from types import SimpleNamespace

        out = self.unet(x, t, encoder_hidden_states=encoder_hidden_states, **kw).sample
        tt = torch.as_tensor(t, device="cpu").long()
        tt = tt.expand(x.shape[0]) if tt.ndim == 0 else tt
        return SimpleNamespace(sample=output_to_eps(self.scheduler, x, out, tt, self.prediction))


def sample_timesteps(n: int, num_train_timesteps: int = 1000, *, kind: str = "uniform", uniform_frac: float = 0.0,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` training timesteps in ``0..num_train_timesteps-1`` (long, on the CPU).

    ``"uniform"``: DDPM's choice. ``"logit_normal"``: ``t / T = sigmoid(u)``, ``u ~ N(0, 1)``
    (Esser et al. 2024), which spends the updates on the middle noise levels where a sample's
    layout and class are decided; ``uniform_frac`` of the draws stay uniform so that the nearly
    clean and the nearly pure-noise ends are still trained.
    """
    if kind not in TIMESTEP_SAMPLING:
        raise ValueError(f"sample_timesteps: kind must be one of {TIMESTEP_SAMPLING}, got {kind!r}")
    if not 0.0 <= uniform_frac <= 1.0:
        raise ValueError(f"sample_timesteps: uniform_frac must be in [0, 1], got {uniform_frac!r}")
    uni = torch.randint(0, num_train_timesteps, (n,), generator=generator, device="cpu")
    if kind == "uniform":
        return uni
    mid = (torch.sigmoid(torch.randn(n, generator=generator, device="cpu")) * (num_train_timesteps - 1)).round().long()
    if uniform_frac <= 0:
        return mid
    return torch.where(torch.rand(n, generator=generator, device="cpu") < uniform_frac, uni, mid)


# ----------------------------------------------------------------------------- training
def ddpm_loss(unet: nn.Module, scheduler, x0: torch.Tensor, cond: torch.Tensor, *,
              null_cond: torch.Tensor | None = None, cond_drop: float = 0.0,
              generator: torch.Generator | None = None, cross_attention_kwargs: dict | None = None,
              prediction: str = "epsilon", timestep_sampling: str = "uniform", uniform_frac: float = 0.0) -> torch.Tensor:
    """The DDPM "simple" loss ``|| eps - eps_theta(x_t, t, c) ||^2`` (Ho et al. 2020, Eq. 14), or
    its x0 / v counterparts (``prediction``, see :func:`training_target`).

    ``cond`` (B, L, D) are the conditioning tokens; with probability ``cond_drop`` a sample's
    tokens are replaced by ``null_cond`` (L, D) or (1, L, D), which trains the unconditional
    branch classifier-free guidance needs. Timesteps come from :func:`sample_timesteps`.
    """
    if x0.shape[0] != cond.shape[0]:
        raise ValueError(f"ddpm_loss: {x0.shape[0]} samples but {cond.shape[0]} conditions")
    _check_prediction(prediction)
    b, dev = x0.shape[0], x0.device
    if cond_drop > 0:
        if null_cond is None:
            raise ValueError("ddpm_loss: cond_drop > 0 needs null_cond (the empty caption's tokens)")
        drop = torch.rand(b, generator=generator, device="cpu").to(dev) < cond_drop
        cond = torch.where(drop[:, None, None], null_cond.reshape(1, *cond.shape[1:]).to(cond), cond)
    t = sample_timesteps(b, scheduler.config.num_train_timesteps, kind=timestep_sampling, uniform_frac=uniform_frac,
                         generator=generator)
    noise = torch.randn(x0.shape, generator=generator, device="cpu").to(dev, x0.dtype)
    ab = scheduler.alphas_cumprod[t].view(b, *([1] * (x0.ndim - 1))).to(dev, x0.dtype)
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
    out = unet(xt, t.to(dev), encoder_hidden_states=cond, cross_attention_kwargs=cross_attention_kwargs).sample
    return F.mse_loss(out.float(), training_target(scheduler, x0, noise, t, prediction).float())


# ----------------------------------------------------------------------------- sampling
def _abar(scheduler, t, ref: torch.Tensor) -> torch.Tensor:
    """``abar_t`` as a broadcastable tensor; ``t < 0`` means "clean" (abar = 1)."""
    ac = scheduler.alphas_cumprod
    if isinstance(t, torch.Tensor) and t.ndim > 0:
        a = torch.where(t >= 0, ac[t.clamp_min(0).cpu()], torch.ones(()))
        return a.to(ref.device, ref.dtype).view(-1, *([1] * (ref.ndim - 1)))
    t = int(t)
    return torch.tensor(1.0 if t < 0 else float(ac[t]), device=ref.device, dtype=ref.dtype)


def predict_x0(scheduler, x_t: torch.Tensor, eps: torch.Tensor, t) -> torch.Tensor:
    """``x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)`` (DDIM, Eq. 9)."""
    ab = _abar(scheduler, t, x_t)
    return (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()


def ddim_step(scheduler, x_t: torch.Tensor, eps: torch.Tensor, t, t_next) -> torch.Tensor:
    """Deterministic DDIM update from timestep ``t`` to ``t_next`` (either direction; -1 = clean)."""
    x0 = predict_x0(scheduler, x_t, eps, t)
    ab_next = _abar(scheduler, t_next, x_t)
    return ab_next.sqrt() * x0 + (1 - ab_next).sqrt() * eps


def timesteps(scheduler, steps: int) -> list[int]:
    """The ``steps`` DDIM timesteps, noisiest first (diffusers' "leading" spacing)."""
    if steps < 1 or steps > scheduler.config.num_train_timesteps:
        raise ValueError(f"timesteps: steps must be in 1..{scheduler.config.num_train_timesteps}, got {steps}")
    scheduler.set_timesteps(steps)
    return [int(t) for t in scheduler.timesteps]


def cfg_eps(unet: nn.Module, x: torch.Tensor, t: int, cond: torch.Tensor, uncond: torch.Tensor | None,
            guidance_scale: float = 1.0, cross_attention_kwargs: dict | None = None) -> torch.Tensor:
    """``eps_u + w (eps_c - eps_u)`` in one batched call (just ``eps_c`` when w == 1 or no uncond)."""
    tt = torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.long)
    if uncond is None or guidance_scale == 1.0:
        return unet(x, tt, encoder_hidden_states=cond, cross_attention_kwargs=cross_attention_kwargs).sample
    un = uncond.expand(x.shape[0], *cond.shape[1:]) if uncond.shape[0] == 1 else uncond
    out = unet(torch.cat([x, x]), torch.cat([tt, tt]), encoder_hidden_states=torch.cat([un.to(cond), cond]),
               cross_attention_kwargs=cross_attention_kwargs).sample
    e_u, e_c = out.chunk(2)
    return e_u + guidance_scale * (e_c - e_u)


@torch.no_grad()
def ddim_sample(unet: nn.Module, scheduler, cond: torch.Tensor, *, steps: int = 50, guidance_scale: float = 1.0,
                uncond: torch.Tensor | None = None, x_T: torch.Tensor | None = None, shape: Sequence[int] | None = None,
                start_index: int = 0, generator: torch.Generator | None = None,
                cross_attention_kwargs: dict | None = None,
                callback: Callable[[int, int, torch.Tensor, torch.Tensor], None] | None = None) -> torch.Tensor:
    """DDIM sampling (eta = 0) with classifier-free guidance.

    Starts from ``x_T`` (e.g. an inverted latent; then ``start_index`` says at which of the
    ``steps`` timesteps it lives) or from Gaussian noise of ``shape`` (latent shape, without the
    batch). ``callback(i, t, x_t, x0_hat)`` sees every step. Returns the final x0.
    """
    ts = timesteps(scheduler, steps)
    if not 0 <= start_index < len(ts):
        raise ValueError(f"ddim_sample: start_index must be in 0..{len(ts) - 1}, got {start_index}")
    if x_T is None:
        if shape is None:
            raise ValueError("ddim_sample: give x_T or the latent shape")
        x = torch.randn((cond.shape[0], *shape), generator=generator, device="cpu").to(cond.device, cond.dtype)
    else:
        x = x_T
    for i in progress(range(start_index, len(ts)), desc="DDIM sampling"):
        t = ts[i]
        t_next = ts[i + 1] if i + 1 < len(ts) else -1
        eps = cfg_eps(unet, x, t, cond, uncond, guidance_scale, cross_attention_kwargs)
        if callback is not None:
            callback(i, t, x, predict_x0(scheduler, x, eps, t))
        x = ddim_step(scheduler, x, eps, t, t_next)
    return x


@torch.no_grad()
def ddim_invert(unet: nn.Module, scheduler, x0: torch.Tensor, cond: torch.Tensor, *, steps: int = 50,
                stop_index: int = 0, guidance_scale: float = 1.0, uncond: torch.Tensor | None = None,
                cross_attention_kwargs: dict | None = None) -> torch.Tensor:
    """DDIM inversion: run the deterministic sampler backwards from clean ``x0``.

    Returns the latent at ``timesteps(steps)[stop_index]``, i.e. the ``x_T`` that
    ``ddim_sample(..., x_T=..., start_index=stop_index)`` turns back into (about) ``x0``.
    ``stop_index=0`` inverts all the way to the noisiest timestep.
    """
    ts = timesteps(scheduler, steps)
    if not 0 <= stop_index < len(ts):
        raise ValueError(f"ddim_invert: stop_index must be in 0..{len(ts) - 1}, got {stop_index}")
    rev = ts[::-1]                    # cleanest first
    x = x0
    t_prev = -1
    for t in rev[:len(ts) - stop_index]:
        # eps of the current (less noisy) point, asked at the target timestep t (as diffusers'
        # DDIMInverseScheduler does); the DDIM formula then jumps from t_prev up to t.
        eps = cfg_eps(unet, x, t, cond, uncond, guidance_scale, cross_attention_kwargs)
        x = ddim_step(scheduler, x, eps, t_prev, t)
        t_prev = t
    return x
