import math

import numpy as np
import pytest
import torch

from facelab.nn import ood


def test_msp_max_logit_energy_values():
    z = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    p = math.exp(2) / (math.exp(2) + 2)
    assert torch.allclose(ood.msp(z), torch.tensor([p, 1 / 3]), atol=1e-6)
    assert torch.equal(ood.max_logit(z), torch.tensor([2.0, 0.0]))
    assert torch.allclose(ood.energy(z), torch.tensor([math.log(math.exp(2) + 2), math.log(3)]), atol=1e-6)
    # temperature T: T * logsumexp(z / T) tends to max_logit as T -> 0
    assert torch.allclose(ood.energy(z, 1e-3), ood.max_logit(z), atol=1e-2)


def test_confident_sample_scores_higher_for_every_score():
    z = torch.tensor([[5.0, 0.0, 0.0, 0.0], [0.3, 0.2, 0.1, 0.0]])
    for fn in ood.SCORES.values():
        s = fn(z)
        assert s[0] > s[1]


def test_neg_ce_matches_cross_entropy():
    g = torch.Generator().manual_seed(0)
    z, y = torch.randn(10, 6, generator=g), torch.randint(0, 6, (10,), generator=g)
    expect = -torch.stack([torch.nn.functional.cross_entropy(z[i:i + 1], y[i:i + 1]) for i in range(10)])
    assert torch.allclose(ood.neg_ce(z, y), expect, atol=1e-6)


def test_evaluate_perfect_and_reversed():
    s = np.r_[np.linspace(1, 2, 20), np.linspace(-2, -1, 10)]
    closed = np.r_[np.ones(20, bool), np.zeros(10, bool)]
    r = ood.evaluate(s, closed)
    assert r["auroc"] == 1.0 and r["fpr95"] == 0.0
    r = ood.evaluate(-s, closed)
    assert r["auroc"] == 0.0 and r["fpr95"] == 1.0


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="shape"):
        ood.msp(torch.zeros(5))
    with pytest.raises(ValueError, match="temperature"):
        ood.energy(torch.zeros(2, 3), 0.0)
    with pytest.raises(ValueError, match="labels"):
        ood.neg_ce(torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="both"):
        ood.evaluate([1.0, 2.0], [True, True])
