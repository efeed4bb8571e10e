"""The block-causal mask: generated frame t never depends on speaker frames after t.

The notebook's CTM-Adapter is ``MaskedCrossAttention`` under ``block_causal_mask`` inside
``VideoDiT`` blocks (with causal temporal self-attention); this test builds that path from the
same library pieces, with random (non-zero) weights, and perturbs the speaker after frame t.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from facelab.nn.diffusion import noise_scheduler
from facelab.nn.video_dit import (MaskedCrossAttention, VideoDiT, block_causal_mask, ddim_sample_video,
                                  video_ddpm_loss)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class SpeakerAdapter(nn.Module):
    """Per-frame speaker tokens -> masked cross-attention (the notebook's CTM-Adapter path)."""

    def __init__(self, width, speaker_dim, causal=True, window=None):
        super().__init__()
        self.proj = nn.Linear(speaker_dim, width)
        self.attn = MaskedCrossAttention(width, width, heads=4, zero_init=False)
        self.causal, self.window = causal, window

    def forward(self, h, speaker, frame_times, speaker_times):
        mask = block_causal_mask(frame_times, speaker_times, causal=self.causal, window=self.window)
        return self.attn(h, self.proj(speaker), mask)


def _model(causal=True, causal_time=True, window=None):
    torch.manual_seed(0)
    m = VideoDiT(3, 8, cond_channels=3, patch=2, width=32, depth=2, heads=4, causal_time=causal_time,
                 adapter_factory=lambda w: SpeakerAdapter(w, 6, causal, window))
    with torch.no_grad():       # leave the zero inits: every path must carry signal
        for p in m.parameters():
            p.normal_(0, 0.2)
    return m.eval()


def _inputs(T=6, H=4, S=10):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, T, 3, 8, 8, generator=g)
    ref = torch.randn(2, T, 3, 8, 8, generator=g)
    spk = torch.randn(2, S, 6, generator=g)
    frame_times = torch.arange(T)                  # listener frames 0..T-1
    speaker_times = torch.arange(-H, S - H)        # speaker history -H..T-1
    return x, ref, spk, frame_times, speaker_times


def test_mask_values():
    m = block_causal_mask(torch.arange(3), torch.arange(-1, 3))
    assert m.tolist() == [[True, True, False, False], [True, True, True, False], [True, True, True, True]]
    w = block_causal_mask(torch.arange(3), torch.arange(-1, 3), window=2)
    assert w.tolist() == [[True, True, False, False], [False, True, True, False], [False, False, True, True]]


@pytest.mark.parametrize("t", [0, 2, 4])
def test_perturbing_future_speaker_leaves_frame_t_unchanged(t):
    model = _model()
    x, ref, spk, ft, st = _inputs()
    out = model(x, torch.tensor([500, 500]), ref, speaker=spk, frame_times=ft, speaker_times=st)
    spk2 = spk.clone()
    spk2[:, st > t] += torch.randn_like(spk2[:, st > t]) * 3
    out2 = model(x, torch.tensor([500, 500]), ref, speaker=spk2, frame_times=ft, speaker_times=st)
    assert torch.allclose(out[:, :t + 1], out2[:, :t + 1], atol=1e-5)
    assert (out[:, t + 1:] - out2[:, t + 1:]).abs().max() > 1e-3     # the future does see it


def test_full_ddim_sampling_is_causal_and_noncausal_leaks():
    x, ref, spk, ft, st = _inputs()
    sched = noise_scheduler(1000)
    t = 2
    spk2 = spk.clone()
    spk2[:, st > t] += 3.0
    outs = {}
    for name, kw in (("causal", {}), ("noncausal_adapter", {"causal": False}),
                     ("bidirectional_time", {"causal_time": False})):
        model = _model(**kw)
        a = ddim_sample_video(model, sched, x.shape, steps=4, x_T=x, cond_frames=ref, speaker=spk,
                              frame_times=ft, speaker_times=st)
        b = ddim_sample_video(model, sched, x.shape, steps=4, x_T=x, cond_frames=ref, speaker=spk2,
                              frame_times=ft, speaker_times=st)
        outs[name] = (a[:, :t + 1] - b[:, :t + 1]).abs().max().item()
    assert outs["causal"] < 1e-5
    # both holes leak: a non-causal adapter, or a causal adapter behind bidirectional temporal attention
    assert outs["noncausal_adapter"] > 1e-3 and outs["bidirectional_time"] > 1e-3


def test_attention_map_and_loss_shapes():
    model = _model()
    x, ref, spk, ft, st = _inputs()
    model(x, torch.tensor([10, 10]), ref, speaker=spk, frame_times=ft, speaker_times=st)
    att = model.adapters()[0].attn.last_attention
    assert att.shape == (2, 6, 10)
    assert torch.all(att[:, 0, st > 0] == 0)                        # frame 0 puts no weight after 0
    loss = video_ddpm_loss(model, noise_scheduler(1000), x, frame_weight=torch.ones(2, 6), cond_frames=ref,
                           speaker=spk, frame_times=ft, speaker_times=st)
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_zero_init_adapter_is_identity_at_start():
    torch.manual_seed(0)
    a = MaskedCrossAttention(32, 6)
    h = torch.randn(1, 4, 16, 32)
    assert torch.all(a(h, torch.randn(1, 5, 6), torch.ones(4, 5, dtype=torch.bool)) == 0)
    with pytest.raises(ValueError, match="mask"):
        a(h, torch.randn(1, 5, 6), torch.ones(3, 5, dtype=torch.bool))


def test_known_frames_are_kept_and_sdedit_start():
    from facelab.nn.video_dit import noise_to

    class Zero(nn.Module):                     # an x0 model that always predicts 0
        def __init__(self):
            super().__init__()
            self.p = nn.Parameter(torch.zeros(1))

        def forward(self, x, t, **kw):
            return torch.zeros_like(x) + self.p

    sched = noise_scheduler(1000)
    x = torch.randn(2, 6, 3, 4, 4)
    known = torch.tensor([True, True, False, False, True, True])
    out = ddim_sample_video(Zero(), sched, x.shape, steps=5, prediction="sample", known=(x, known),
                            generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out[:, known], x[:, known], atol=1e-6)       # known frames exact at the end
    assert out[:, ~known].abs().max() < 1e-5                           # the rest is the model's x0 (= 0)
    g = torch.Generator().manual_seed(0)
    xt = noise_to(sched, x, 200, g)
    assert xt.shape == x.shape and not torch.allclose(xt, x)
    with pytest.raises(ValueError):
        block_causal_mask(torch.arange(3), torch.arange(3), window=0)


@pytest.mark.parametrize("speaker, leaks", [("causal", False), ("noncausal", True)])
def test_notebook_ctm_adapter_is_block_causal(speaker, leaks):
    """The same property through the notebook's own CTM-Adapter and DiTaiListener-Gen
    (exported to ``facelab.papers.ditailistener``): speaker frames after t do not reach frame t."""
    from facelab.papers import ditailistener as DL

    torch.manual_seed(0)
    model = DL.listener_dit(3, 8, speaker=speaker, audio_dim=2, motion_dim=4, patch=2, width=32, depth=2, heads=4)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    model.eval()
    x, ref, spk, ft, st = _inputs()
    cond = DL.condition_frames(ref[:, 0], torch.zeros_like(x), torch.zeros(2, x.shape[1], dtype=torch.bool))
    t = 2
    spk2 = spk.clone()
    spk2[:, st > t] += 3.0
    with torch.no_grad():
        a = model(x, torch.tensor([500, 500]), cond, speaker=spk, frame_times=ft, speaker_times=st)
        b = model(x, torch.tensor([500, 500]), cond, speaker=spk2, frame_times=ft, speaker_times=st)
    past = (a[:, :t + 1] - b[:, :t + 1]).abs().max().item()
    assert (past > 1e-3) if leaks else (past < 1e-5)
    assert (a[:, t + 1:] - b[:, t + 1:]).abs().max() > 1e-3
