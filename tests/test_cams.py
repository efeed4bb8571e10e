"""CAM, GradCAM, GradCAM++, LayerCAM and layer attention (facelab.nn.cams)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facelab.nn import cams
from facelab.nn.backbones import fer_classifier


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return fer_classifier("small", 5, width=8).eval()


def test_cam_sums_to_logits_for_gap_head(net):
    x = torch.randn(3, 3, 32, 32)
    feats = net.forward_features(x)
    cls = torch.tensor([0, 2, 4])
    m = cams.cam(feats, net.fc.weight, cls)
    logits = net(x)
    # GAP + linear: the spatial mean of the CAM plus the bias is the class logit.
    assert torch.allclose(m.mean((1, 2)) + net.fc.bias[cls], logits[torch.arange(3), cls], atol=1e-5)


def test_gradient_methods_against_closed_forms(net):
    """With GAP + fc the gradient dy_c/dA_k is w_ck / (h w) everywhere, so Grad-CAM and LayerCAM
    have closed forms in the fc weights."""
    x = torch.randn(2, 3, 32, 32)
    cls = torch.tensor([1, 3])
    feats, grads, _ = cams.features_and_grads(net, x, cls)
    hw = feats.shape[2] * feats.shape[3]
    w = net.fc.weight[cls].detach()
    assert torch.allclose(grads, (w / hw)[:, :, None, None].expand_as(grads), atol=1e-6)
    raw = torch.einsum("bc,bchw->bhw", w, feats)
    assert torch.allclose(cams.gradcam(feats, grads), torch.relu(raw) / hw, atol=1e-6)
    assert torch.allclose(cams.layercam(feats, grads),
                          torch.relu(torch.einsum("bc,bchw->bhw", torch.relu(w) / hw, feats)), atol=1e-6)


def _gradcam_pp_numpy(A: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Grad-CAM++ written out pixel by pixel from Chattopadhay et al. 2018, Eq. 19 (exp score):
    alpha_kij = g_kij^2 / (2 g_kij^2 + (sum_ab A_kab) g_kij^3), w_k = sum_ij alpha_kij relu(g_kij),
    map = relu(sum_k w_k A_k)."""
    B, K, H, W = A.shape
    out = np.zeros((B, H, W))
    for b in range(B):
        for k in range(K):
            s = A[b, k].sum()
            w = 0.0
            for i in range(H):
                for j in range(W):
                    gij = g[b, k, i, j]
                    den = 2 * gij ** 2 + s * gij ** 3
                    alpha = gij ** 2 / den if den != 0 else 0.0
                    w += alpha * max(gij, 0.0)
            out[b] += w * A[b, k]
    return np.maximum(out, 0.0)


def test_gradcam_pp_follows_eq19_with_spatially_varying_gradients():
    rng = np.random.default_rng(1)
    A = rng.random((2, 4, 3, 3))
    # Gradients that vary over space (some negative); |sum A * g| < 2 keeps every denominator > 0.
    g = rng.uniform(-0.2, 0.6, (2, 4, 3, 3))
    expected = _gradcam_pp_numpy(A, g)
    out = cams.gradcam_pp(torch.from_numpy(A), torch.from_numpy(g)).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)
    # The formula that summed A * g^3 over space in the denominator gives a clearly different map:
    old_alpha = g ** 2 / (2 * g ** 2 + (A * g ** 3).sum((2, 3), keepdims=True))
    old = np.maximum(np.einsum("bk,bkhw->bhw", (old_alpha * np.maximum(g, 0)).sum((2, 3)), A), 0)
    assert np.abs(old - expected).max() > 0.1 * np.abs(expected).max()


def test_gradcam_pp_with_spatially_constant_gradients():
    # Spatially constant gradients (a GAP head): alpha is constant per channel, and both the
    # per-pixel and the spatially summed denominators agree (the case the old formula got right).
    rng = np.random.default_rng(2)
    A = rng.random((1, 3, 4, 4))
    c = np.array([0.3, 0.1, 0.2])
    g = np.broadcast_to(c[None, :, None, None], A.shape).copy()
    s = A.sum((2, 3))[0]
    alpha = c ** 2 / (2 * c ** 2 + s * c ** 3)
    w = alpha * c * 16
    expected = np.maximum(np.einsum("k,khw->hw", w, A[0]), 0)[None]
    np.testing.assert_allclose(cams.gradcam_pp(torch.from_numpy(A), torch.from_numpy(g)).numpy(), expected,
                               rtol=1e-10)


@pytest.mark.parametrize("method", cams.CAM_METHODS)
def test_explain_shapes_and_no_parameter_grads(net, method):
    x = torch.randn(4, 3, 32, 32)
    maps, logits = cams.explain(net, x, method)
    assert maps.shape == (4, 4, 4) and logits.shape == (4, 5)
    assert all(p.grad is None for p in net.parameters())
    n = cams.normalize_maps(cams.resize_maps(maps, 16))
    assert n.shape == (4, 16, 16) and float(n.min()) >= 0 and float(n.max()) <= 1 + 1e-6
    if method != "cam":
        assert float(maps.min()) >= 0


def test_explain_default_class_is_the_prediction(net):
    x = torch.randn(2, 3, 32, 32)
    a, logits = cams.explain(net, x, "gradcam++")
    b, _ = cams.explain(net, x, "gradcam++", classes=logits.argmax(1))
    assert torch.allclose(a, b)


def test_layer_attention_and_errors():
    f = torch.rand(2, 6, 4, 4, requires_grad=True)
    att = cams.layer_attention(f)
    assert torch.allclose(att, f.mean(1))
    att.sum().backward()
    assert f.grad is not None
    with pytest.raises(ValueError, match="unknown CAM method"):
        cams.explain(fer_classifier("small", 3, width=4), torch.randn(1, 3, 16, 16), "scorecam")
    with pytest.raises(ValueError, match="one"):
        cams.gradcam(torch.rand(1, 2, 3, 3), torch.rand(1, 2, 3, 4))
    with pytest.raises(ValueError):
        cams.layer_attention(torch.rand(2, 3, 4))
