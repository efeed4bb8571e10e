"""One exponential moving average of a model's weights, for every notebook that trains with one.

``avg <- d avg + (1 - d) w`` after each optimiser step, on every floating-point parameter and
buffer (integer buffers such as BatchNorm's step counter are copied). The decay ``d`` ramps up
from 0 so that early averages follow a fresh model instead of freezing its random start; the
ramp is the recipe's choice:

* ``ramp="exp"`` - YOLOX / YOLOv5: ``d_n = decay (1 - exp(-n / tau))`` (notebook 01);
* ``ramp="hyperbolic"`` - ``d_n = min(decay, (1 + n) / (10 + n))`` (TensorFlow's
  ``ExponentialMovingAverage`` with ``num_updates``; diffusers' EMA warm-up; notebook 03).

The average is a full copy of the model (``ema.module``, eval mode, no gradients), so it can be
evaluated directly (01) or written back into the trained model with :meth:`EMA.copy_to` (03). It
lives on the model's device: a trainer that moves the model after the copy was taken (accelerate
does) is followed on the next update.
"""
from __future__ import annotations

import math
from copy import deepcopy

import torch
from torch import nn

__all__ = ["EMA"]

_RAMPS = ("exp", "hyperbolic")


def _unwrap(model: nn.Module) -> nn.Module:
    while isinstance(getattr(model, "module", None), nn.Module):  # DDP / accelerate wrappers
        model = model.module
    return getattr(model, "_orig_mod", model)  # torch.compile's wrapper


class EMA:
    def __init__(self, model: nn.Module, decay: float = 0.999, *, ramp: str = "hyperbolic",
                 tau: float = 2000.0, updates: int = 0) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA: decay must be in [0, 1), got {decay!r}")
        if ramp not in _RAMPS:
            raise ValueError(f"EMA: ramp must be one of {_RAMPS}, got {ramp!r}")
        if ramp == "exp" and not tau > 0:
            raise ValueError(f"EMA: ramp 'exp' needs tau > 0, got {tau!r}")
        self.decay, self.ramp, self.tau, self.updates = float(decay), ramp, float(tau), int(updates)
        self.module = deepcopy(_unwrap(model)).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float:
        """``d`` for the update numbered ``self.updates`` (1 for the first)."""
        n = self.updates
        if self.ramp == "exp":
            return self.decay * (1 - math.exp(-n / self.tau))
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.current_decay()
        state = _unwrap(model).state_dict()
        avg = self.module.state_dict()
        device = next(iter(state.values()), torch.empty(0)).device
        if next(iter(avg.values()), torch.empty(0, device=device)).device != device:
            self.module.to(device)
            avg = self.module.state_dict()
        floats, weights = [], []
        for k, v in avg.items():
            w = state[k].detach()
            if v.dtype.is_floating_point:
                floats.append(v)
                weights.append(w.to(v.dtype))
            else:
                v.copy_(w)
        if floats:  # one fused op over all tensors: a per-tensor loop is hundreds of GPU launches per step
            torch._foreach_lerp_(floats, weights, 1 - d)

    def callback(self, source: nn.Module | None = None) -> "_EMACallback":
        """A ``facelab.train.fit`` callback that averages after every optimiser step:
        ``fit(model, data, cfg, callbacks=[ema.callback()])``. ``source``: the module to average
        when it is not the one ``fit`` trains (e.g. the UNet inside a loss wrapper)."""
        return _EMACallback(self, source)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Write the average into ``model`` (same architecture)."""
        state = _unwrap(model).state_dict()
        avg = self.module.state_dict()
        bad = [k for k in avg if k not in state or state[k].shape != avg[k].shape]
        if bad:
            raise ValueError(f"EMA.copy_to: the model lacks (or has other shapes for) {len(bad)} averaged "
                             f"tensors, e.g. {bad[:3]}")
        for k, v in avg.items():
            state[k].copy_(v)


class _EMACallback:
    def __init__(self, ema: EMA, source: nn.Module | None) -> None:
        self.ema, self.source = ema, source

    def on_step_end(self, model: nn.Module, epoch: int, step: int, logs: dict) -> None:
        self.ema.update(self.source if self.source is not None else model)

    def on_epoch_end(self, model: nn.Module, epoch: int, values: dict) -> None:
        pass
