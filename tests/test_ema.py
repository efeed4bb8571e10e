"""facelab.nn.ema.EMA: both ramps, copy-back, integer buffers, device following, bad input."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from facelab.nn.ema import EMA


def _zeroed_linear():
    net = nn.Linear(2, 2)
    with torch.no_grad():
        net.weight.zero_()
        net.bias.zero_()
    return net


def test_exp_ramp_follows_the_yolox_formula():
    m = nn.Linear(2, 1)
    ema = EMA(m, 0.9, ramp="exp", tau=1.0)
    w0 = m.weight.detach().clone()
    with torch.no_grad():
        m.weight.add_(1.0)
    ema.update(m)
    d = 0.9 * (1 - math.exp(-1.0))
    torch.testing.assert_close(ema.module.weight, d * w0 + (1 - d) * (w0 + 1))


def test_hyperbolic_ramp_tracks_and_copies_back():
    net = _zeroed_linear()
    ema = EMA(net, decay=0.5)
    with torch.no_grad():
        net.weight.fill_(1.0)
    ema.update(net)  # warm-up: d = min(0.5, 2/11) = 2/11
    torch.testing.assert_close(ema.module.weight, torch.full((2, 2), 9 / 11))
    for _ in range(20):
        ema.update(net)
    other = nn.Linear(2, 2)
    ema.copy_to(other)
    torch.testing.assert_close(other.weight, torch.ones(2, 2), atol=1e-5, rtol=0)
    torch.testing.assert_close(other.bias, torch.zeros(2))


def test_the_average_does_not_train_and_integer_buffers_are_copied():
    net = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)).train()
    ema = EMA(net, 0.9)
    assert not any(p.requires_grad for p in ema.module.parameters()) and not ema.module.training
    net(torch.randn(8, 3))  # BatchNorm counts a step (int64 buffer)
    ema.update(net)
    assert int(ema.module[1].num_batches_tracked) == 1


def test_the_average_follows_the_model_to_its_device():
    # a trainer moves the model after the copy was taken (notebook 01's first GPU run crashed on
    # it); "meta" stands in for the GPU: the update must move the average, not mix devices
    m = nn.Linear(2, 1)
    ema = EMA(m, 0.9, ramp="exp", tau=1.0)
    m.to("meta")
    ema.update(m)
    assert ema.module.weight.device.type == "meta"


def test_wrappers_are_unwrapped():
    class Wrapper(nn.Module):  # what DDP / accelerate put around a model
        def __init__(self, module):
            super().__init__()
            self.module = module
    net = _zeroed_linear()
    ema = EMA(Wrapper(net), 0.5)
    assert isinstance(ema.module, nn.Linear)
    ema.copy_to(Wrapper(nn.Linear(2, 2)))


def test_bad_input_is_refused_with_what_was_expected():
    net = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="decay"):
        EMA(net, decay=1.0)
    with pytest.raises(ValueError, match="ramp"):
        EMA(net, 0.9, ramp="linear")
    with pytest.raises(ValueError, match="tau"):
        EMA(net, 0.9, ramp="exp", tau=0)
    ema = EMA(net, 0.9)
    with pytest.raises(ValueError, match="lacks"):
        ema.copy_to(nn.Conv2d(1, 1, 1))  # same names, other shapes
    with pytest.raises(ValueError, match="lacks"):
        ema.copy_to(nn.Sequential(nn.Linear(2, 2)))


def test_ema_callback_equals_updating_after_every_step_by_hand():
    """fit(callbacks=[ema.callback()]) gives the same average as the old pre-step hook plus a
    final update (what notebooks 01 and 03 did before)."""
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset

    from facelab.nn.ema import EMA
    from facelab.train import TrainConfig, fit

    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(64, 4, generator=g), torch.randint(0, 2, (64,), generator=g))
    cfg = TrainConfig(epochs=2, batch_size=16, lr=1e-2, progress=False)

    def run(use_callback):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
        ema = EMA(model, 0.9)
        if use_callback:
            fit(model, data, cfg, callbacks=[ema.callback()])
        else:
            fit(model, data, cfg, on_step=lambda e, i: ema.update(model) if (e or i) else None)
            ema.update(model)
        return torch.cat([p.flatten() for p in ema.module.parameters()]), ema.updates

    (a, na), (b, nb) = run(True), run(False)
    assert na == nb == 8 and torch.equal(a, b)
