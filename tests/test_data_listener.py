"""facelab.data.listener on generated fixtures: ViCo processed layout, LM-Listener .pth, resampling, audio."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facelab.data import listener as L
from facelab.data.base import DatasetLayoutError


def _vico(root, n=2, T=45, ta=75):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        fid, lis, spk = f"clip{i}", f"lis{i}", f"spk{i}"
        rows.append(f"{i},{fid},{lis},{spk}")
        for v in (lis, spk):
            (root / "emoca" / v).mkdir(parents=True)
            np.save(root / "emoca" / v / "exp.npy", rng.normal(size=(T, 50)).astype(np.float32))
            np.save(root / "emoca" / v / "pose.npy", rng.normal(size=(T, 6)).astype(np.float32))
        (root / "audio_feats").mkdir(exist_ok=True)
        np.save(root / "audio_feats" / f"{fid}.npy", rng.normal(size=(ta, 8)).astype(np.float32))
    (root / "RLD_data.csv").write_text("idx,file_id,listener,speaker\n" + "\n".join(rows) + "\n")


def test_resample_50_to_30_is_linear_interpolation_at_frame_times():
    t_in = np.arange(50) / 50.0
    x = np.stack([3 * t_in + 1, np.sin(t_in)], 1)
    y = L.resample_time(x, 50, 30)
    assert y.shape == (30, 2)                      # 0.98 s of input covers 30 frames at 30 fps
    t_out = np.arange(30) / 30.0
    assert np.allclose(y[:, 0], 3 * t_out + 1, atol=1e-5)           # exact on a linear signal
    assert np.allclose(y[:, 1], np.interp(t_out, t_in, x[:, 1]), atol=1e-6)
    # frame 1 at 33.3 ms lies 2/3 of the way from 20 ms to 40 ms
    assert np.allclose(y[1], x[1] / 3 + 2 * x[2] / 3, atol=1e-6)


def test_read_vico_layout_and_resampling(tmp_path):
    _vico(tmp_path)
    clips = L.read_vico(tmp_path)
    assert len(clips) == 2
    c = clips[0]
    assert c.speaker.shape == c.listener.shape == (45, 56)
    assert c.audio.shape == (45, 8)                 # 75 frames at 50 fps -> 45 at 30 fps
    exp = np.load(tmp_path / "emoca" / "lis0" / "exp.npy")
    assert np.allclose(c.listener[:, 6:], exp)      # [pose 6 | exp 50]


def test_read_vico_rejects_wrong_layout(tmp_path):
    with pytest.raises(DatasetLayoutError, match="RLD_data.csv"):
        L.read_vico(tmp_path)
    _vico(tmp_path)
    (tmp_path / "emoca" / "spk1" / "pose.npy").unlink()
    with pytest.raises(DatasetLayoutError, match="pose.npy"):
        L.read_vico(tmp_path)


def test_read_vico_rejects_mismatched_lengths(tmp_path):
    _vico(tmp_path, n=1)
    np.save(tmp_path / "emoca" / "spk0" / "exp.npy", np.zeros((40, 50), np.float32))
    np.save(tmp_path / "emoca" / "spk0" / "pose.npy", np.zeros((40, 6), np.float32))
    with pytest.raises(ValueError, match="speaker has 40 frames but listener has 45"):
        L.read_vico(tmp_path)


def _pth(path, drop=None, T=30):
    d = {"p0_exp": torch.randn(T, 50), "p1_exp": torch.randn(T, 50), "p0_pose": torch.randn(T, 6),
         "p1_pose": torch.randn(T, 6), "hubert_feat": torch.randn(50, 16)}
    if drop:
        d.pop(drop)
    torch.save(d, path)
    return d


def test_read_lm_listener_segment(tmp_path):
    d = _pth(tmp_path / "seg.pth")
    c = L.read_lm_listener(tmp_path / "seg.pth")
    assert c.listener.shape == (30, 56) and c.audio.shape == (30, 16)
    assert np.allclose(c.listener[:, :6], d["p0_pose"].numpy()) and np.allclose(c.speaker[:, 6:], d["p1_exp"].numpy())


def test_read_lm_listener_missing_key(tmp_path):
    _pth(tmp_path / "bad.pth", drop="hubert_feat")
    with pytest.raises(ValueError, match="lacks key.*hubert_feat"):
        L.read_lm_listener(tmp_path / "bad.pth")


def test_engine_motion_layout():
    from facelab.mesh import AU_NAMES

    aus = np.zeros((4, 20), np.float32)
    aus[:, list(AU_NAMES).index("AU26")] = 5.0
    pose = np.tile([[0.1, -0.2, 0.05]], (4, 1)).astype(np.float32)
    m = L.engine_motion(aus, pose)
    assert m.shape == (4, 56)
    assert np.allclose(m[:, :3], pose) and np.allclose(m[:, 3], 0.4) and np.allclose(m[:, 26:], 0)
    assert np.allclose(m[:, 6 + list(AU_NAMES).index("AU26")], 2.5)
    with pytest.raises(ValueError, match="20"):
        L.engine_motion(aus[:, :10], pose)


def test_audio_checks_resample_silence_short():
    sr = 8000
    t = np.arange(sr) / sr
    x = 0.3 * np.sin(2 * np.pi * 440 * t)
    y = L.check_audio(x, sr)
    assert len(y) == 16000                              # 1 s resampled to 16 kHz
    with pytest.raises(ValueError, match="silent"):
        L.check_audio(np.zeros(16000), 16000)
    with pytest.raises(ValueError, match="too short"):
        L.check_audio(x[:800], sr)


def test_log_mel_is_per_frame_causal():
    rng = np.random.default_rng(0)
    x = rng.normal(scale=0.1, size=16000).astype(np.float32)
    f = L.log_mel(x, 25, 25.0)
    assert f.shape == (25, 20) and np.isfinite(f).all()
    x2 = x.copy()
    x2[640 * 10:] += 0.5                                # change audio from frame 10 on
    f2 = L.log_mel(x2, 25, 25.0)
    assert np.allclose(f[:10], f2[:10]) and not np.allclose(f[10:], f2[10:])
    with pytest.raises(ValueError, match="need"):
        L.log_mel(x, 30, 25.0)
