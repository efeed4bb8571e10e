"""facelab.nn.yolox: shapes of YOLOX-s, the pluggable neck, SimOTA, loss, decoding + NMS, EMA,
augmentation (boxes follow the pixels) and letterbox."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from facelab.nn import yolox as Y


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(width=0.125, depth=0.33, make_layer=Y.csp_layer, nc=7):
    bb = Y.CSPDarknet(depth, width)
    neck = Y.PAFPN(bb.out_channels, depth, make_layer)
    return Y.YOLOX(bb, neck, Y.YOLOXHead(nc, neck.out_channels, hidden=int(256 * width)))


def test_yolox_s_backbone_shapes_at_320():
    bb = Y.CSPDarknet(0.33, 0.5)
    assert bb.out_channels == (128, 256, 512)
    with torch.no_grad():
        f = bb(torch.zeros(1, 3, 320, 320))
    assert f["dark3"].shape == (1, 128, 40, 40) and f["dark4"].shape == (1, 256, 20, 20)
    assert f["dark5"].shape == (1, 512, 10, 10)


class KeepChannels(nn.Module):
    """A neck layer that ignores the requested output width (like a VSS block)."""

    def __init__(self, cin, cout, n):
        super().__init__()
        self.conv = nn.Conv2d(cin, cin, 1)
        self.out_channels = cin

    def forward(self, x):
        return self.conv(x)


def test_pafpn_adapts_to_layers_that_keep_channels():
    m = _model(make_layer=KeepChannels)
    assert m.neck.out_channels == (64, 64, 128)  # 2*c3, 2*c3, 2*c4; dark3/4/5 = 32/64/128 at width 0.125
    with torch.no_grad():
        outs = m(torch.zeros(2, 3, 64, 64))
    assert [o.shape for o in outs] == [(2, 12, 8, 8), (2, 12, 4, 4), (2, 12, 2, 2)]


def test_prior_bias_and_decode():
    m = _model()
    with torch.no_grad():
        outs = m(torch.rand(1, 3, 64, 64))
    pred, grids, strides = Y.decode_outputs(outs, m.strides)
    assert pred.shape == (1, 64 + 16 + 4, 12) and grids.shape == (84, 2)
    assert torch.allclose(pred[..., 4].sigmoid().mean(), torch.tensor(0.01), atol=0.02)
    with pytest.raises(ValueError):
        Y.decode_outputs(outs, (8, 16))


def _outputs_with_one_box(nc=3, size=64, strides=(8, 16, 32), cell=(3, 2), wh=(20.0, 12.0), cls=1):
    outs = []
    for s in strides:
        n = size // s
        o = torch.zeros(1, 5 + nc, n, n)
        o[:, 4] = -10.0
        o[:, 5:] = -10.0
        outs.append(o)
    o = outs[0]
    x, y = cell
    o[0, 0, y, x] = o[0, 1, y, x] = 0.5                 # centre of the cell
    o[0, 2, y, x], o[0, 3, y, x] = np.log(wh[0] / 8), np.log(wh[1] / 8)
    o[0, 4, y, x] = 10.0
    o[0, 5 + cls, y, x] = 10.0
    return outs


def test_postprocess_recovers_a_box_and_nms_removes_duplicates():
    outs = _outputs_with_one_box()
    outs[0][0, :, 2, 4] = outs[0][0, :, 2, 3]            # a duplicate one cell to the right
    outs[0][0, 0, 2, 4] = -0.5                           # ...shifted back to the same centre
    outs[0][0, 4, 2, 4] = 5.0                            # with a lower score
    det = Y.postprocess(outs, (8, 16, 32), conf_thre=0.1, nms_thre=0.5)[0]
    assert det.shape == (1, 6)
    cx, cy = 3.5 * 8, 2.5 * 8
    assert torch.allclose(det[0, :4], torch.tensor([cx - 10, cy - 6, cx + 10, cy + 6]), atol=1e-3)
    assert det[0, 5] == 1 and det[0, 4] > 0.99


def simota_one_image(pred, gt_xyxy, gt_cls, centers, strides, num_classes, center_radius=2.5):
    """SimOTA for one image, written plainly: the reference that YOLOXLoss._simota_batched must
    match. pred (A, 5 + C) decoded; returns (fg mask (A,), gt index per fg anchor, IoU per fg anchor)."""
    G = len(gt_xyxy)
    cx, cy = centers[:, 0], centers[:, 1]
    in_box = ((cx[None] > gt_xyxy[:, 0:1]) & (cx[None] < gt_xyxy[:, 2:3]) &
              (cy[None] > gt_xyxy[:, 1:2]) & (cy[None] < gt_xyxy[:, 3:4]))            # (G, A)
    gc = (gt_xyxy[:, :2] + gt_xyxy[:, 2:]) / 2
    r = center_radius * strides[None]
    in_ctr = (((cx[None] - gc[:, 0:1]).abs() < r) & ((cy[None] - gc[:, 1:2]).abs() < r))
    cand = (in_box | in_ctr).any(0)                                                   # (A,)
    if not cand.any():  # tiny box far from every centre: fall back to the nearest anchors
        d = (centers[None] - gc[:, None]).norm(dim=-1)
        cand = torch.zeros_like(cand)
        cand[d.argmin(1)] = True
    both = (in_box & in_ctr)[:, cand]                                                 # (G, Ac)
    p = pred[cand]
    ious = Y.bboxes_iou(gt_xyxy, Y.cxcywh_to_xyxy(p[:, :4]))                              # (G, Ac)
    iou_cost = -torch.log(ious + 1e-8)
    prob = (p[:, 5:].sigmoid() * p[:, 4:5].sigmoid()).sqrt().clamp(1e-6, 1 - 1e-6)    # (Ac, C)
    onehot = F.one_hot(gt_cls, num_classes).float()                              # (G, C)
    cls_cost = -(onehot[:, None] * torch.log(prob[None]) + (1 - onehot[:, None]) * torch.log(1 - prob[None])).sum(-1)
    cost = cls_cost + 3.0 * iou_cost + 1e5 * (~both).float()
    # dynamic k
    n_top = min(10, ious.shape[1])
    dyn_k = ious.topk(n_top, 1).values.sum(1).int().clamp(min=1)
    match = torch.zeros_like(cost, dtype=torch.bool)
    for g in range(G):
        k = min(int(dyn_k[g]), cost.shape[1])
        match[g, cost[g].topk(k, largest=False).indices] = True
    multi = match.sum(0) > 1
    if multi.any():
        best = cost[:, multi].argmin(0)
        match[:, multi] = False
        match[best, multi.nonzero().squeeze(1)] = True
    fg_c = match.any(0)
    matched_gt = match[:, fg_c].float().argmax(0)
    matched_iou = (ious * match.float()).sum(0)[fg_c]
    fg = torch.zeros(len(pred), dtype=torch.bool, device=pred.device)
    idx = cand.nonzero().squeeze(1)
    fg[idx[fg_c]] = True
    return fg, matched_gt, matched_iou


def test_simota_assigns_anchors_inside_the_box_and_loss_backpropagates():
    torch.manual_seed(0)
    m = _model(nc=3)
    loss_fn = Y.YOLOXLoss(3)
    x = torch.rand(2, 3, 64, 64)
    targets = torch.full((2, 4, 5), -1.0)
    targets[0, 0] = torch.tensor([2, 8.0, 8.0, 40.0, 40.0])
    targets[0, 1] = torch.tensor([0, 40.0, 30.0, 60.0, 60.0])   # image 1 has no objects
    outs = m(x)
    pred, grids, strides = Y.decode_outputs(outs, m.strides)
    centers = (grids + 0.5) * strides[:, None]
    gt = targets[0, :2, 1:]
    cls0 = targets[:1, :, 0]
    fg, matched, iou = loss_fn._simota_batched(pred[:1].detach(), targets[:1, :, 1:], cls0.long().clamp(min=0),
                                               cls0 >= 0, centers, strides)
    fg, matched = fg[0], matched[0][fg[0]]
    assert fg.sum() >= 2 and len(matched) == fg.sum() and set(matched.tolist()) == {0, 1}
    c = centers[fg]
    g = gt[matched]
    r = 2.5 * strides[fg][:, None]
    gc = (g[:, :2] + g[:, 2:]) / 2
    assert ((c - gc).abs() < r).all()                    # every assigned anchor is near its gt centre
    loss, logs = loss_fn(outs, targets)
    assert torch.isfinite(loss) and logs["num_fg"] > 0
    loss.backward()
    assert all(p.grad is not None for p in m.head.parameters())
    with pytest.raises(ValueError):
        loss_fn(outs, targets[..., :4])


@pytest.mark.learning
def test_loss_overfits_one_image(learning_seed):
    # One image, one box, 60 Adam steps. The loss of a single step is noisy (SimOTA re-assigns
    # anchors), so the mean of the last 10 steps is compared with the first. Measured here over seeds
    # 0-4 with ATEN_CPU_CAPABILITY default / avx2 / avx512 (AMD EPYC): that ratio is 0.11-0.35, worst
    # 0.348; an Intel Xeon (AVX-512/AMX) gave 0.57 for the old single-step-30 statistic. Bound 0.6.
    torch.manual_seed(learning_seed)
    m = _model(nc=2)
    loss_fn = Y.YOLOXLoss(2)
    x = torch.rand(1, 3, 64, 64)
    t = torch.tensor([[[1, 10.0, 12.0, 42.0, 50.0]]])
    opt = torch.optim.Adam(m.parameters(), 3e-3)
    losses = []
    for _ in range(60):
        loss, _ = loss_fn(m(x), t)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():  # batch statistics (train mode): 60 steps do not settle BN's running ones
        det = Y.postprocess(m(x), m.strides, conf_thre=0.05)[0]
    print(f"LEARNING yolox_overfit last10/first {sum(losses[-10:]) / 10 / losses[0]:.3f}")
    assert sum(losses[-10:]) / 10 < 0.6 * losses[0], (losses[0], losses[-10:])
    assert len(det) and det[0, 5] == 1
    assert Y.bboxes_iou(det[:1, :4], t[0, :, 1:])[0, 0] > 0.5


def test_augment_keeps_boxes_on_their_pixels():
    # white squares on black: after mosaic/mixup/flip every kept box still covers bright pixels
    B, S = 6, 64
    imgs = torch.zeros(B, 3, S, S)
    targets = torch.full((B, 2, 5), -1.0)
    for i in range(B):
        x0, y0 = 4 + 6 * i, 10 + 3 * i
        imgs[i, :, y0:y0 + 24, x0:x0 + 24] = 1.0
        targets[i, 0] = torch.tensor([i % 3, x0, y0, x0 + 24, y0 + 24])
    g = torch.Generator().manual_seed(0)
    out, t = Y.augment_batch(imgs, targets, g, mosaic=1.0, mixup=0.5, flip=0.5, hsv=None, fill=0.0)
    assert out.shape == imgs.shape and t.shape[0] == B and t.shape[-1] == 5
    n = 0
    for i in range(B):
        for row in t[i][t[i, :, 0] >= 0]:
            x1, y1, x2, y2 = row[1:].round().int().tolist()
            assert 0 <= x1 < x2 <= S and 0 <= y1 < y2 <= S
            inside = out[i, 0, y1 + 1:y2 - 1, x1 + 1:x2 - 1]
            assert inside.mean() > 0.4, (i, row, inside.mean())
            n += 1
    assert n >= B


def test_letterbox_and_dataset():
    img = np.zeros((50, 100, 3), np.uint8)
    out, boxes = Y.letterbox(img, np.array([[10, 10, 50, 30]]), 64)
    assert out.shape == (64, 64, 3) and out[40, 0, 0] == 114
    np.testing.assert_allclose(boxes, [[6.4, 6.4, 32, 19.2]])
    ds = Y.LetterboxDetection(([img], [np.array([[10, 10, 50, 30]])], [np.array([3])]), 64, max_objects=4,
                              label_map={3: 0})
    x, t = ds[0]
    assert x.shape == (3, 64, 64) and x.dtype == torch.uint8
    assert t.shape == (4, 5) and t[0, 0] == 0 and (t[1:, 0] == -1).all()
    with pytest.raises(ValueError):
        Y.letterbox(np.zeros((4, 4, 2)), np.zeros((0, 4)), 8)


def _random_batch(seed, B=6, M=5, S=96, C=4):
    g = torch.Generator().manual_seed(seed)
    outs = [torch.randn(B, 5 + C, S // s, S // s, generator=g) for s in (8, 16, 32)]
    t = torch.full((B, M, 5), -1.0)
    for b in range(B):
        n = int(torch.randint(0, M + 1, (1,), generator=g))  # 0..M real boxes, padding after them
        for j in range(n):
            x1, y1 = (torch.rand(2, generator=g) * (S - 20)).tolist()
            w, h = (4 + torch.rand(2, generator=g) * 50).tolist()  # tiny boxes too (the fallback path)
            cls = float(torch.randint(0, C, (1,), generator=g))
            t[b, j] = torch.tensor([cls, x1, y1, min(S, x1 + w), min(S, y1 + h)])
    return outs, t


@pytest.mark.parametrize("seed", range(6))
def test_batched_simota_assigns_like_the_per_image_version(seed):
    outs, t = _random_batch(seed)
    if seed == 0:  # an image whose only box lies off the anchor grid: the nearest-anchor fallback
        t[0] = -1.0
        t[0, 0] = torch.tensor([1.0, 300.0, 300.0, 310.0, 312.0])
    loss_fn = Y.YOLOXLoss(4)
    pred, grids, strides = Y.decode_outputs(outs, loss_fn.strides)
    centers = (grids + 0.5) * strides[:, None]
    valid = t[..., 0] >= 0
    fg, mg, miou = loss_fn._simota_batched(pred, t[..., 1:5], t[..., 0].long().clamp(min=0), valid, centers, strides)
    for b in range(len(t)):
        n = int(valid[b].sum())
        if n == 0:
            assert not fg[b].any()
            continue
        fg1, mg1, miou1 = simota_one_image(pred[b], t[b, :n, 1:5], t[b, :n, 0].long(), centers, strides, 4)
        assert torch.equal(fg[b], fg1)
        assert torch.equal(mg[b][fg[b]], mg1)
        torch.testing.assert_close(miou[b][fg[b]], miou1)


def test_loss_is_the_mean_over_images_of_per_image_losses_when_counts_match():
    # the batched loss on a batch equals the per-image losses recombined by foreground counts
    outs, t = _random_batch(11, B=4, M=3)
    t[:, :2, 0] = torch.tensor([0.0, 1.0])  # every image has >= 2 real boxes
    t[:, :2, 1:] = torch.tensor([[10.0, 10.0, 60.0, 70.0], [40.0, 30.0, 90.0, 90.0]])
    loss_fn = Y.YOLOXLoss(4)
    loss, logs = loss_fn(outs, t)
    parts = [loss_fn([o[b:b + 1] for o in outs], t[b:b + 1]) for b in range(4)]
    n = torch.tensor([p[1]["num_fg"] for p in parts])
    expected = sum(p[0] * k for p, k in zip(parts, n)) / n.sum()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-5)
    assert logs["num_fg"] == pytest.approx(float(n.mean()))
