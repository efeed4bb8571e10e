"""Post-hoc open-set (out-of-distribution) scores from a closed-set classifier's logits.

Every score follows one convention: **higher = more likely closed-set** (in-distribution), so
the closed set is the positive class of :func:`facelab.metrics.auroc` and
:func:`facelab.metrics.fpr_at_tpr`, as in the open-set FER paper (Zhang et al., AAAI 2024).

* :func:`msp` - maximum softmax probability (Hendrycks & Gimpel, ICLR 2017);
* :func:`max_logit` - the largest logit (Hendrycks et al., ICML 2022; what the open-set FER
  code's "baseline" computes);
* :func:`energy` - negative free energy ``T * logsumexp(logits / T)`` (Liu et al., NeurIPS 2020);
* :func:`neg_ce` - minus the cross-entropy against given (pseudo-)labels, the open-set FER
  detector's score;
* :func:`evaluate` - AUROC and FPR at 95 % TPR of one score, closed set positive.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from facelab import metrics


def _logits(logits) -> torch.Tensor:
    t = torch.as_tensor(logits)
    if t.ndim != 2 or t.shape[1] < 2:
        raise ValueError(f"expected logits of shape (N, K) with K >= 2 classes, got {tuple(t.shape)}")
    if not torch.is_floating_point(t):
        t = t.float()
    return t.detach().float()


def msp(logits) -> torch.Tensor:
    """(N, K) logits -> (N,) maximum softmax probability."""
    return _logits(logits).softmax(1).max(1).values


def max_logit(logits) -> torch.Tensor:
    """(N, K) logits -> (N,) largest logit."""
    return _logits(logits).max(1).values


def energy(logits, temperature: float = 1.0) -> torch.Tensor:
    """(N, K) logits -> (N,) negative energy ``T * logsumexp(logits / T)`` (high = closed)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    return temperature * torch.logsumexp(_logits(logits) / temperature, dim=1)


def neg_ce(logits, labels) -> torch.Tensor:
    """(N, K) logits, (N,) labels -> (N,) ``-CE(logits, label)`` per sample (high = closed)."""
    z = _logits(logits)
    y = torch.as_tensor(labels).long().view(-1)
    if y.shape[0] != z.shape[0]:
        raise ValueError(f"neg_ce: {z.shape[0]} logits but {y.shape[0]} labels")
    if y.numel() and (y.min() < 0 or y.max() >= z.shape[1]):
        raise ValueError(f"neg_ce: labels must lie in 0..{z.shape[1] - 1}, got {int(y.min())}..{int(y.max())}")
    return -F.cross_entropy(z, y, reduction="none")


SCORES = {"msp": msp, "max_logit": max_logit, "energy": energy}


def evaluate(scores, is_closed, tpr: float = 0.95) -> dict[str, float]:
    """AUROC and FPR at ``tpr`` TPR of ``scores`` (high = closed); ``is_closed`` (N,) bools."""
    s = np.asarray(torch.as_tensor(scores).detach().cpu().float().numpy() if isinstance(scores, torch.Tensor)
                   else scores, float).ravel()
    c = np.asarray(is_closed, bool).ravel()
    if s.shape != c.shape:
        raise ValueError(f"evaluate: {s.size} scores but {c.size} closed/open flags")
    if c.all() or not c.any():
        raise ValueError("evaluate: need both closed-set (True) and open-set (False) samples")
    return {"auroc": metrics.auroc(s[c], s[~c]), "fpr95": metrics.fpr_at_tpr(s[c], s[~c], tpr)}
