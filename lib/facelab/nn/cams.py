"""Class activation maps for networks with ``forward_features``, global average pooling and a linear ``fc``.

* :func:`cam` - Zhou et al. 2016: ``CAM_c = sum_k w_ck A_k`` (fc weights times the last map).
* :func:`gradcam` - Selvaraju et al. 2017: ``ReLU(sum_k alpha_k A_k)``, ``alpha_k`` = the
  spatial mean of ``dy_c / dA_k``.
* :func:`gradcam_pp` - Chattopadhay et al. 2018: the weights are a pixel-weighted sum of the
  positive gradients, ``w_k = sum_ij a_kij ReLU(g_kij)`` with
  ``a_kij = g_kij^2 / (2 g_kij^2 + (sum_ab A_kab) g_kij^3)`` (Eq. 19, the closed form for
  ``exp(y_c)``: the spatial sum of the activations times the gradient cubed *at that pixel*).
* :func:`layercam` - Jiang et al. 2021: ``ReLU(sum_k ReLU(g_k) * A_k)``, a weight per pixel.
* :func:`layer_attention` - the channel mean of a feature map (the "layer attention" the
  AU-guided FER paper aligns with AU heatmaps and scores by ATT-COS).

The gradient methods take the features and ``dy_c/dA`` (see :func:`features_and_grads`);
:func:`explain` runs any of them on a model in one call. Maps come out raw at the feature
resolution; :func:`normalize_maps` and :func:`resize_maps` bring them to [0, 1] at image size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

CAM_METHODS = ("cam", "gradcam", "gradcam++", "layercam")


def cam(features: torch.Tensor, fc_weight: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) features, (K, C) fc weights, (B,) class ids -> (B, h, w) raw CAMs.

    Differentiable (attention-consistency losses train through it)."""
    w = fc_weight[classes]                                   # (B, C)
    return torch.einsum("bc,bchw->bhw", w, features)


def _check_pair(features: torch.Tensor, grads: torch.Tensor, name: str) -> None:
    if features.ndim != 4 or grads.shape != features.shape:
        raise ValueError(f"{name}: expected features and gradients of one (B, C, h, w) shape, "
                         f"got {tuple(features.shape)} and {tuple(grads.shape)}")


def gradcam(features: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) features and their gradients ``dy_c/dA`` -> (B, h, w) Grad-CAM (>= 0)."""
    _check_pair(features, grads, "gradcam")
    alpha = grads.mean((2, 3))                               # (B, C)
    return F.relu(torch.einsum("bc,bchw->bhw", alpha, features))


def gradcam_pp(features: torch.Tensor, grads: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """(B, C, h, w) features and ``dy_c/dA`` -> (B, h, w) Grad-CAM++ (>= 0).

    With the score passed through ``exp``, the higher derivatives are powers of the first
    (Chattopadhay et al., Eq. 19), so only ``g = dy_c/dA`` is needed.
    """
    _check_pair(features, grads, "gradcam_pp")
    g2, g3 = grads.pow(2), grads.pow(3)
    # Chattopadhay et al. 2018, Eq. 19:
    #   alpha_kij = g_kij^2 / (2 g_kij^2 + sum_ab A_kab * g_kij^3)
    # The activation sum is over space per channel; g^3 stays per pixel (not summed with A).
    denom = 2 * g2 + features.sum((2, 3), keepdim=True) * g3
    alpha = g2 / torch.where(denom.abs() > eps, denom, torch.full_like(denom, eps))
    w = (alpha * F.relu(grads)).sum((2, 3))                  # (B, C)
    return F.relu(torch.einsum("bc,bchw->bhw", w, features))


def layercam(features: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) features and ``dy_c/dA`` -> (B, h, w) LayerCAM (>= 0)."""
    _check_pair(features, grads, "layercam")
    return F.relu((F.relu(grads) * features).sum(1))


def layer_attention(features: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, h, w): the channel mean (differentiable)."""
    if features.ndim != 4:
        raise ValueError(f"layer_attention: expected (B, C, h, w) features, got {tuple(features.shape)}")
    return features.mean(1)


def _head(model, features: torch.Tensor) -> torch.Tensor:
    pooled = model.pool(features) if hasattr(model, "pool") else features.mean((2, 3), keepdim=True)
    return model.fc(pooled.flatten(1))


def features_and_grads(model, x: torch.Tensor, classes: torch.Tensor | None = None):
    """Run ``model`` on ``x``; return ``(features, dy_c/dfeatures, logits)`` for ``classes``
    (default: the predicted class). The model's parameters get no gradient."""
    if not (hasattr(model, "forward_features") and hasattr(model, "fc")):
        raise TypeError("features_and_grads: expected a model with forward_features() and an fc head "
                        "(facelab.nn.backbones.fer_classifier)")
    with torch.enable_grad():
        feats = model.forward_features(x).detach().requires_grad_(True)
        logits = _head(model, feats)
        if classes is None:
            classes = logits.argmax(1)
        score = logits.gather(1, classes.view(-1, 1).to(logits.device)).sum()
        (grads,) = torch.autograd.grad(score, feats)
    return feats.detach(), grads.detach(), logits.detach()


def explain(model, x: torch.Tensor, method: str = "cam", classes: torch.Tensor | None = None
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """``method`` in :data:`CAM_METHODS` -> ``(maps (B, h, w) raw, logits)`` for ``classes``
    (default: the predicted class, as the paper's evaluation does)."""
    m = method.lower().replace("_", "").replace("pp", "++")
    if m not in CAM_METHODS:
        raise ValueError(f"unknown CAM method {method!r}: expected one of {', '.join(CAM_METHODS)}")
    if m == "cam":
        with torch.no_grad():
            feats = model.forward_features(x)
            logits = _head(model, feats)
            cls = logits.argmax(1) if classes is None else classes.to(logits.device)
            return cam(feats, model.fc.weight, cls), logits
    feats, grads, logits = features_and_grads(model, x, classes)
    fn = {"gradcam": gradcam, "gradcam++": gradcam_pp, "layercam": layercam}[m]
    return fn(feats, grads), logits


def normalize_maps(maps: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-map min-max to [0, 1] over the last two dims."""
    flat = maps.flatten(-2)
    lo, hi = flat.min(-1, keepdim=True).values, flat.max(-1, keepdim=True).values
    return ((flat - lo) / (hi - lo + eps)).view_as(maps)


def resize_maps(maps: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """(B, h, w) -> (B, H, W) bilinear."""
    return F.interpolate(maps.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)
