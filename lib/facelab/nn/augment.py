"""The batch augmentations the FER notebooks share, on tensors already on their device.

* :func:`random_hflip` - mirror a random half of the batch (with the same mirror applied to any
  per-image maps passed along, e.g. AU heatmaps, so they stay aligned with their faces);
* :func:`random_erase` - torchvision's RandomErasing, batched: one random box per image (with
  probability ``p``) set to ``value``;
* :func:`flip_erase` - both, flip first (the EAC / open-set FER recipe).

Randomness comes from torch's global generator (seeded by ``facelab.config.seed_everything`` and
by ``facelab.train.fit``), drawn in a fixed order, so a seed reproduces a run.
"""
from __future__ import annotations

import math

import torch

__all__ = ["random_hflip", "random_erase", "flip_erase"]


def random_hflip(x: torch.Tensor, *maps: torch.Tensor, p: float = 0.5, dim: int = -1):
    """Mirror each image of ``x`` along ``dim`` (the width) with probability ``p``; ``maps``
    (batch-first tensors whose width is their ``dim``) are mirrored with their image.

    Returns ``x`` alone, or ``(x, *maps)`` when maps are given."""
    flip = torch.rand(x.shape[0], device=x.device) < p
    out = [torch.where(flip.view(-1, *([1] * (x.ndim - 1))), x.flip(dim), x)]
    for m in maps:
        out.append(torch.where(flip.view(-1, *([1] * (m.ndim - 1))), m.flip(dim), m))
    return out[0] if not maps else tuple(out)


def random_erase(x: torch.Tensor, p: float = 0.5, scale=(0.02, 0.25), ratio=(0.3, 3.3),
                 value: float = 0.0) -> torch.Tensor:
    """One random box per image of ``x`` (B, C, H, W), with probability ``p``, set to ``value``:
    area a fraction in ``scale`` of the image, aspect ratio log-uniform in ``ratio``."""
    if x.ndim != 4:
        raise ValueError(f"random_erase: expected (B, C, H, W), got {tuple(x.shape)}")
    B, _, H, W = x.shape
    dev = x.device
    area = torch.empty(B, device=dev).uniform_(*scale) * H * W
    r = torch.empty(B, device=dev).uniform_(math.log(ratio[0]), math.log(ratio[1])).exp()
    h, w = (area * r).sqrt().clamp(1, H), (area / r).sqrt().clamp(1, W)
    top, left = torch.rand(B, device=dev) * (H - h), torch.rand(B, device=dev) * (W - w)
    ys, xs = torch.arange(H, device=dev)[None, :, None], torch.arange(W, device=dev)[None, None, :]
    box = ((ys >= top[:, None, None]) & (ys < (top + h)[:, None, None])
           & (xs >= left[:, None, None]) & (xs < (left + w)[:, None, None]))
    box &= (torch.rand(B, device=dev) < p)[:, None, None]
    return x.masked_fill(box[:, None], value)


def flip_erase(x: torch.Tensor, p_flip: float = 0.5, p_erase: float = 0.5) -> torch.Tensor:
    """Mirror a random half, then erase a random box (B, C, H, W)."""
    return random_erase(random_hflip(x, p=p_flip), p=p_erase)
