"""The papers' blocks as the notebooks write them, imported from the generated ``facelab.papers``
modules (``python -m facelab export``): shapes and invariants that hold for any weights."""
from __future__ import annotations

import pytest
import torch

from facelab.nn.backbones import fer_classifier
from facelab.papers import au_guided_fer, facetrack_mm, fer_yolo_mamba, implicit_morphable_faces, open_set_fer


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_ss2d_fast_backend_matches_the_sequential_scan():
    torch.manual_seed(0)
    layer = fer_yolo_mamba.SS2D(16, d_state=8).eval()
    x = torch.randn(2, 5, 7, 16)
    with torch.no_grad():
        fast = layer(x)
        layer.backend = "reference"
        ref = layer(x)
    assert fast.shape == x.shape
    assert (fast - ref).abs().max().item() < 1e-4


def test_ss2d_rows_route_is_causal_and_eight_routes_see_everything():
    torch.manual_seed(0)
    fields = {}
    for name, dirs in (("rows", ("rows",)), ("all", fer_yolo_mamba.ORDER_NAMES)):
        layer = fer_yolo_mamba.SS2D(8, d_state=4, directions=dirs, backend="reference")
        x = torch.randn(1, 6, 6, 8, requires_grad=True)
        layer(x)[0, 3, 3].abs().sum().backward()
        fields[name] = x.grad.abs().sum(-1)[0]
    # rows only: positions after (3, 3) in raster order are invisible except through the 3x3 conv
    assert (fields["rows"][5] == 0).all()
    assert (fields["all"] > 0).all()


def test_detector_heads_sit_at_strides_8_16_32_and_vss_needs_even_channels():
    model = fer_yolo_mamba.build_detector("vss", 0.125, 0.33, 7, d_state=4).eval()
    with torch.no_grad():
        outs = model(torch.zeros(1, 3, 96, 96))
    assert [o.shape[-1] for o in outs] == [12, 6, 3]
    with pytest.raises(ValueError, match="even channel count"):
        fer_yolo_mamba.VSSBlock(7)
    with pytest.raises(ValueError, match="'vss' or 'csp'"):
        fer_yolo_mamba.build_detector("transformer")


def test_stc_connector_and_gate_shapes():
    conn = facetrack_mm.STCConnector(32, 48, facetrack_mm.FACE_GRIDS[6])
    z = conn(torch.zeros(2, 8, 4, 4, 32))
    assert z.shape == (2, 4, 6, 48)          # T' = T / 2, 2x3 face tokens, LM width
    gate = facetrack_mm.InstructionGate(48, 2)
    w = gate(torch.randn(2, 5, 48), torch.ones(2, 5, dtype=torch.bool))
    assert torch.allclose(w.sum(-1), torch.ones(2))
    mixed = facetrack_mm.mix_streams([z, torch.zeros(2, 4, 4, 48)], w)
    assert mixed.shape == (2, 4 * 10, 48)


def test_texture_lookup_reads_the_texel_under_uv():
    tex = torch.zeros(1, 3, 4, 4)
    tex[0, :, 1, 2] = torch.tensor([1.0, 0.5, 0.25])        # row 1 (v), column 2 (u)
    uv = torch.tensor([[[(2 + 0.5) / 4, (1 + 0.5) / 4]]])    # the texel's centre
    colour = implicit_morphable_faces.MorphableFace.lookup(tex, uv)
    assert torch.allclose(colour[0, 0], torch.tensor([1.0, 0.5, 0.25]))


def test_morphable_face_codes_change_the_sdf_and_texture():
    torch.manual_seed(0)
    model = implicit_morphable_faces.MorphableFace(n_shapes=3, n_ids=2, dim=8, width=32, depth=2, tex_res=16)
    x = torch.rand(1, 10, 3) - 0.5
    f0, _ = model.sdf(x, model.z_geo.weight[:1, None].expand(-1, 10, -1), model.z_exp.weight[:1, None].expand(-1, 10, -1))
    f1, _ = model.sdf(x, model.z_geo.weight[1:2, None].expand(-1, 10, -1), model.z_exp.weight[:1, None].expand(-1, 10, -1))
    assert f0.shape == (1, 10) and not torch.equal(f0, f1)
    with torch.no_grad():
        tex = model.texture(model.z_col.weight)
    assert tex.shape == (2, 3, 16, 16) and float(tex.min()) >= 0 and float(tex.max()) <= 1


def test_cam_of_each_class_averages_to_its_logit_minus_bias():
    torch.manual_seed(0)
    net = open_set_fer.CAMNet(fer_classifier("small", 6, width=8)).eval()
    with torch.no_grad():
        logits, cam_maps = net(torch.randn(3, 3, 32, 32))
    assert cam_maps.shape[:2] == (3, 6)
    torch.testing.assert_close(cam_maps.mean((2, 3)) + net.net.fc.bias, logits, rtol=1e-4, atol=1e-5)


def test_attention_consistency_is_zero_for_flip_equivariant_maps_only():
    maps = torch.rand(2, 6, 5, 7)
    assert open_set_fer.attention_consistency(maps, maps.flip(-1)).item() < 1e-12
    assert open_set_fer.attention_consistency(maps, maps).item() > 1e-3


def test_alignment_loss_is_one_minus_cosine_over_valid_faces():
    feats = torch.rand(2, 4, 6, 6)
    attention = feats.mean(1)
    loss_same = au_guided_fer.alignment_loss(feats, attention, torch.tensor([True, True]))
    assert loss_same.item() < 1e-6
    orthogonal = torch.zeros(2, 6, 6)
    feats_left = torch.zeros(2, 4, 6, 6)
    feats_left[..., :3] = 1.0
    orthogonal[..., 3:] = 1.0
    assert abs(au_guided_fer.alignment_loss(feats_left, orthogonal, torch.tensor([True, False])).item() - 1.0) < 1e-6
    assert au_guided_fer.alignment_loss(feats_left, orthogonal, torch.tensor([False, False])).item() == 0.0


def test_decoupled_attention_adds_an_au_branch_and_freezes_the_unet():
    """SynFER's AU adapter (notebook 03): with the AU branch scaled to 0 the UNet's output is the
    text-only output; the AU tokens change it otherwise; only the new K/V projections train."""
    from diffusers import UNet2DConditionModel

    from facelab.papers import synfer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(16, 32), norm_num_groups=8, cross_attention_dim=16,
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), attention_head_dim=4).eval()
    x, t = torch.randn(2, 4, 8, 8), torch.tensor([10, 500])
    txt = torch.randn(2, 5, 16)
    with torch.no_grad():
        plain = unet(x, t, encoder_hidden_states=txt).sample
    new = synfer.install_decoupled_attention(unet, n_extra=3, scale=0.0)
    adapter = synfer.AUAdapter(20, 3, 16)
    au_tokens = adapter(torch.rand(2, 20) * 5)
    assert au_tokens.shape == (2, 3, 16)
    ctx = torch.cat([txt, au_tokens.detach()], 1)
    with torch.no_grad():
        off = unet(x, t, encoder_hidden_states=ctx).sample
        for p in new:
            p.scale = 1.0
        on = unet(x, t, encoder_hidden_states=ctx).sample
    torch.testing.assert_close(off, plain, rtol=1e-4, atol=1e-5)
    assert (on - plain).abs().max() > 1e-3
    trainable = {n for n, p in unet.named_parameters() if p.requires_grad}
    assert trainable and all("to_k_au" in n or "to_v_au" in n for n in trainable)
    with pytest.raises(ValueError, match="AU tokens"):
        unet(x, t, encoder_hidden_states=txt[:, :2])
