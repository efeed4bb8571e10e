"""facelab.metrics_motion against hand-computed and scipy references (DIM's definitions)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from facelab import metrics_motion as mm


def _dim_fd(a, b):
    """DIM's calculate_frechet_distance with scipy's sqrtm (the reference)."""
    mu1, s1 = a.mean(0), np.atleast_2d(np.cov(a, rowvar=False))
    mu2, s2 = b.mean(0), np.atleast_2d(np.cov(b, rowvar=False))
    cm = linalg.sqrtm(s1 @ s2)
    cm = np.real(cm)
    d = mu1 - mu2
    return float(d @ d + np.trace(s1) + np.trace(s2) - 2 * np.trace(cm))


def _data(n=3, T=60, seed=0):
    rng = np.random.default_rng(seed)
    gt = rng.normal(size=(n, T, 56))
    pred = gt + rng.normal(scale=0.5, size=gt.shape) + 0.3
    spk = rng.normal(size=(n, T, 56))
    return gt, pred, spk


def test_fd_matches_scipy_per_sequence_mean():
    gt, pred, _ = _data()
    for part, cols in (("exp", slice(6, 56)), ("pose", slice(0, 6))):
        ref = np.mean([_dim_fd(p[:, cols], g[:, cols]) for g, p in zip(gt, pred)])
        assert mm.fd(gt, pred, part) == pytest.approx(ref, rel=1e-6)


def test_fd_of_identical_sequences_is_zero_and_shift_adds_squared_norm():
    gt, _, _ = _data()
    assert mm.fd(gt, gt, "pose") == pytest.approx(0.0, abs=1e-8)
    assert mm.fd(gt, gt + 2.0, "pose") == pytest.approx(6 * 4.0, rel=1e-8)   # ||mu diff||^2 = 6 * 2^2


def test_paired_fd_concatenates_speaker_and_listener():
    gt, pred, spk = _data()
    cols = slice(0, 6)
    ref = np.mean([_dim_fd(np.c_[s[:, cols], p[:, cols]], np.c_[s[:, cols], g[:, cols]])
                   for g, p, s in zip(gt, pred, spk)])
    assert mm.paired_fd(gt, pred, spk, "pose") == pytest.approx(ref, rel=1e-6)
    # a listener that copies the speaker with the right timing scores better than a shuffled one
    rng = np.random.default_rng(1)
    s = rng.normal(size=(1, 200, 56))
    good = s.copy()
    bad = s[:, rng.permutation(200)]
    assert mm.paired_fd(s, good, s) < 1e-8 < mm.paired_fd(s, bad, s)
    assert mm.fd(s, bad) == pytest.approx(0.0, abs=1e-8)   # plain FD cannot see the timing


def test_mse_variance_rpcc_by_hand():
    gt, pred, spk = _data()
    assert mm.mse(gt, pred, "exp") == pytest.approx(np.mean((pred[..., 6:] - gt[..., 6:]) ** 2))
    assert mm.variance(pred, "pose") == pytest.approx(np.mean([np.var(p[:, :6], 0).sum() for p in pred]))
    ref = np.mean([abs(np.corrcoef(g[:, 6:].ravel(), s[:, 6:].ravel())[0, 1]
                       - np.corrcoef(p[:, 6:].ravel(), s[:, 6:].ravel())[0, 1]) for g, p, s in zip(gt, pred, spk)])
    assert mm.rpcc(gt, pred, spk, "exp") == pytest.approx(ref, rel=1e-9)


def test_si_div_entropy_bounds():
    from sklearn.cluster import KMeans

    gt, pred, _ = _data(T=100)
    v = mm.si_div(gt, pred, "pose")
    g = np.concatenate(gt)[:, :6]
    km = KMeans(n_clusters=20, random_state=0, n_init="auto").fit(g)
    h = np.bincount(km.predict(np.concatenate(pred)[:, :6]), minlength=20) / 300
    assert v == pytest.approx(-(h * np.log2(h + 1e-6)).sum())
    assert 0 < v <= np.log2(20) + 1e-6
    # every predicted frame the same: one cluster, entropy ~ 0
    const = np.broadcast_to(gt[0, 0], gt.shape).copy()
    assert mm.si_div(gt, const, "pose") < 0.01


def test_all_metrics_keys_and_bad_input():
    gt, pred, spk = _data()
    m = mm.all_metrics(gt, pred, spk)
    assert set(m) == {f"{k}_{p}" for k in ("fd", "pfd", "mse", "sid", "var", "rpcc") for p in ("exp", "pose")}
    with pytest.raises(ValueError, match=r"\(frames, 56\)"):
        mm.fd(gt[..., :50], pred[..., :50])
    with pytest.raises(ValueError, match="sequences"):
        mm.fd(gt, pred[:2])


def test_seam_jump_sees_a_step_and_its_smoothing():
    t = np.linspace(0, 1, 24)
    smooth = np.tile(t[None, :, None], (2, 1, 3))
    step = smooth.copy()
    step[:, 12:] += 1.0                                   # a seam at frame 12
    assert mm.seam_jump(step, [12]) > 10 * mm.seam_jump(smooth, [12])
    ramp = step.copy()
    ramp[:, 10:14] = smooth[:, 10:14] + np.linspace(0.2, 0.8, 4)[None, :, None]   # spread over 4 frames
    assert mm.seam_jump(ramp, [12], radius=2) < mm.seam_jump(step, [12], radius=2)
    assert mm.seam_jump(step, [12], radius=2) == pytest.approx(np.sqrt(((step[0, 12] - step[0, 11]) ** 2).mean()))
