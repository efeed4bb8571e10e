"""CAM, GradCAM, GradCAM++, LayerCAM and layer attention (facelab.nn.cams)."""
from __future__ import annotations

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


def test_gradcam_pp_matches_a_loop():
    torch.manual_seed(1)
    A = torch.rand(2, 4, 3, 3)
    g = torch.randn(2, 4, 3, 3)
    out = cams.gradcam_pp(A, g)
    ref = torch.zeros(2, 3, 3)
    for b in range(2):
        for k in range(4):
            den = 2 * g[b, k] ** 2 + (A[b, k] * g[b, k] ** 3).sum()
            alpha = g[b, k] ** 2 / den
            ref[b] += (alpha * torch.relu(g[b, k])).sum() * A[b, k]
    assert torch.allclose(out, torch.relu(ref), atol=1e-5)


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
