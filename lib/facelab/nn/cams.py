"""Class activation maps for networks with ``forward_features`` and a linear ``fc`` head.

* :func:`cam` - Zhou et al. 2016: ``CAM_c = sum_k w_ck A_k`` (fc weights times the last map).
More methods (GradCAM, GradCAM++, LayerCAM) are added beside it as the notebooks need them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def cam(features: torch.Tensor, fc_weight: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) features, (K, C) fc weights, (B,) class ids -> (B, h, w) raw CAMs.

    Differentiable (attention-consistency losses train through it)."""
    w = fc_weight[classes]                                   # (B, C)
    return torch.einsum("bc,bchw->bhw", w, features)


def normalize_maps(maps: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-map min-max to [0, 1] over the last two dims."""
    flat = maps.flatten(-2)
    lo, hi = flat.min(-1, keepdim=True).values, flat.max(-1, keepdim=True).values
    return ((flat - lo) / (hi - lo + eps)).view_as(maps)


def resize_maps(maps: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """(B, h, w) -> (B, H, W) bilinear."""
    return F.interpolate(maps.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)
