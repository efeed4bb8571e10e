"""facelab.synth produces learnable, identity-independent expressions: a small CNN trained
for about a minute on synthetic faces classifies faces of NEW identities (a different seed
draws new identities, poses, lights and backgrounds) into the 7 basic classes
(facelab.config.BASIC7: neutral, happy, sad, surprise, fear, disgust, anger)."""
from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from facelab.config import BASIC7
from facelab.synth import faces
from facelab.synth.generators import single_thread


def _net(classes: int) -> nn.Module:
    def block(i, o):
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2))
    return nn.Sequential(block(3, 16), block(16, 32), block(32, 64), block(64, 64),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, classes))


def _tensor(b) -> torch.Tensor:
    return torch.from_numpy(b.images).permute(0, 3, 1, 2).float().div(255).sub(0.5)


@pytest.mark.slow
@pytest.mark.learning
def test_cnn_learns_expressions_of_new_identities(learning_seed):
    size, n_train, n_test, epochs = 48, 4000, 700, 8
    # default poses, lights, backgrounds and jitter; expressions at 70-100% of their apex
    train = faces(n_train, size, list(BASIC7), seed=0, intensity=(0.7, 1.0))
    # seed 1: new identities, poses, lights and backgrounds
    test = faces(n_test, size, list(BASIC7), seed=1, intensity=(0.7, 1.0))
    x, y = _tensor(train), torch.from_numpy(train.label)
    xt, yt = _tensor(test), torch.from_numpy(test.label)
    torch_state = torch.get_rng_state()
    torch.manual_seed(learning_seed)
    net = _net(len(BASIC7))
    opt = torch.optim.AdamW(net.parameters(), 3e-3, weight_decay=5e-4)
    steps = epochs * ((len(x) + 63) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 4e-3, total_steps=steps)
    g = torch.Generator().manual_seed(learning_seed)
    t0 = time.time()
    with single_thread():
        for _ in range(epochs):
            net.train()
            perm = torch.randperm(len(x), generator=g)
            for i in range(0, len(x), 64):
                idx = perm[i:i + 64]
                xb = x[idx]
                if torch.rand(1, generator=g) < 0.5:  # mirror: these expressions are symmetric
                    xb = xb.flip(3)
                loss = nn.functional.cross_entropy(net(xb), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        net.eval()
        with torch.no_grad():
            pred = net(xt).argmax(1)
    torch.set_rng_state(torch_state)
    acc = (pred == yt).float().mean().item()
    per_class = {BASIC7[c]: round(float((pred[yt == c] == c).float().mean()), 2) for c in range(len(BASIC7))}
    # 7 classes, chance 1/7. Measured over seeds 0-4 x ATEN_CPU_CAPABILITY default/avx2 on the
    # synth-4 engine (scripts/learning_sweep.sh's loop, 2026-12-07): 0.983-0.996 (bound 0.90); on
    # synth-3 (avx512 too) 0.980-0.989.
    print(f"LEARNING synth_cnn acc {acc:.3f}")
    print(f"held-out (new identities) accuracy {acc:.3f}, {time.time() - t0:.0f}s training; {per_class}")
    assert acc >= 0.90, f"held-out accuracy {acc:.3f} < 0.90 (per class {per_class})"
