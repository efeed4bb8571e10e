"""The generic parts of YOLOX (Ge et al. 2021, arXiv 2107.08430) that a YOLOX-style detector needs.

* building blocks: :class:`BaseConv`, :class:`DWConv`, :class:`Focus`, :class:`Bottleneck`,
  :class:`SPPBottleneck`, :class:`CSPLayer`;
* :class:`CSPDarknet` (``depth``/``width`` multipliers: YOLOX-s is 0.33 / 0.50) returning the
  stride 8/16/32 maps ``dark3``/``dark4``/``dark5``;
* :class:`PAFPN`, whose four CSP layers come from a factory ``make_layer(in_ch, out_ch, n)``,
  so a paper can replace them (FER-YOLO-Mamba's VSS blocks keep their channel count; the convs
  after each layer read the layer's ``out_channels``);
* :class:`YOLOXHead` (decoupled: cls branch, reg + obj branch), :class:`YOLOX` (backbone + neck + head);
* :class:`YOLOXLoss`: SimOTA label assignment, IoU loss on boxes, BCE on objectness and classes
  (the classification target is the IoU-weighted one-hot, as in YOLOX);
* :func:`decode_outputs` + :func:`postprocess` (score = obj * cls, class-aware NMS);
* :func:`augment_batch` (mosaic, mixup, flip, saturation/value jitter on a
  batch of tensors), :func:`letterbox` and :class:`LetterboxDetection` (padded fixed-size targets
  so the default DataLoader collate works).

Targets everywhere are ``(B, M, 5)`` float tensors of ``[class, x1, y1, x2, y2]`` in input pixels,
rows with ``class < 0`` are padding. Raw head outputs are a list of ``(B, 5 + C, H, W)`` maps:
``[dx, dy, log w, log h, obj logit, class logits...]``.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BaseConv", "DWConv", "Focus", "Bottleneck", "SPPBottleneck", "CSPLayer", "CSPDarknet", "PAFPN",
           "YOLOXHead", "YOLOX", "YOLOXLoss", "bboxes_iou", "decode_outputs", "postprocess",
           "augment_batch", "letterbox", "LetterboxDetection", "pad_targets", "csp_layer", "count_flops",
           "throughput", "count_params"]

Tensor = torch.Tensor


# --------------------------------------------------------------------------------------------
# blocks
# --------------------------------------------------------------------------------------------
class BaseConv(nn.Module):
    """Conv2d (no bias) -> BatchNorm (YOLOX's eps 1e-3, momentum 0.03) -> SiLU."""

    def __init__(self, in_channels: int, out_channels: int, ksize: int, stride: int = 1, groups: int = 1,
                 act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, ksize, stride, (ksize - 1) // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU(inplace=True) if act else nn.Identity()
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


class DWConv(nn.Module):
    """Depthwise ``ksize`` conv followed by a pointwise conv (YOLOX's ``depthwise=True`` variant)."""

    def __init__(self, in_channels: int, out_channels: int, ksize: int, stride: int = 1) -> None:
        super().__init__()
        self.dconv = BaseConv(in_channels, in_channels, ksize, stride, groups=in_channels)
        self.pconv = BaseConv(in_channels, out_channels, 1)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        return self.pconv(self.dconv(x))


class Focus(nn.Module):
    """Space-to-depth (each 2x2 pixel block becomes 4 channels), then a conv: the YOLOX stem."""

    def __init__(self, in_channels: int, out_channels: int, ksize: int = 3) -> None:
        super().__init__()
        self.conv = BaseConv(in_channels * 4, out_channels, ksize)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] % 2 or x.shape[-2] % 2:
            raise ValueError(f"Focus needs an even input size, got {tuple(x.shape[-2:])}")
        tl, bl = x[..., ::2, ::2], x[..., 1::2, ::2]
        tr, br = x[..., ::2, 1::2], x[..., 1::2, 1::2]
        return self.conv(torch.cat((tl, bl, tr, br), 1))


class Bottleneck(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, shortcut: bool = True, expansion: float = 1.0,
                 depthwise: bool = False) -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = BaseConv(in_channels, hidden, 1)
        self.conv2 = DWConv(hidden, out_channels, 3) if depthwise else BaseConv(hidden, out_channels, 3)
        self.use_add = shortcut and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv2(self.conv1(x))
        return y + x if self.use_add else y


class SPPBottleneck(nn.Module):
    """Spatial pyramid pooling (max pools 5, 9, 13, stride 1) between two 1x1 convs."""

    def __init__(self, in_channels: int, out_channels: int, kernel_sizes: Sequence[int] = (5, 9, 13)) -> None:
        super().__init__()
        hidden = in_channels // 2
        self.conv1 = BaseConv(in_channels, hidden, 1)
        self.m = nn.ModuleList([nn.MaxPool2d(k, 1, k // 2) for k in kernel_sizes])
        self.conv2 = BaseConv(hidden * (len(kernel_sizes) + 1), out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        return self.conv2(torch.cat([x] + [m(x) for m in self.m], 1))


class CSPLayer(nn.Module):
    """Cross-stage partial layer: two 1x1 branches, ``n`` bottlenecks on one, concat, 1x1."""

    def __init__(self, in_channels: int, out_channels: int, n: int = 1, shortcut: bool = True,
                 expansion: float = 0.5, depthwise: bool = False) -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = BaseConv(in_channels, hidden, 1)
        self.conv2 = BaseConv(in_channels, hidden, 1)
        self.conv3 = BaseConv(2 * hidden, out_channels, 1)
        self.m = nn.Sequential(*[Bottleneck(hidden, hidden, shortcut, 1.0, depthwise) for _ in range(n)])
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        return self.conv3(torch.cat((self.m(self.conv1(x)), self.conv2(x)), 1))


def csp_layer(in_channels: int, out_channels: int, n: int) -> CSPLayer:
    """YOLOX's neck layer (no shortcut): the default ``make_layer`` of :class:`PAFPN`."""
    return CSPLayer(in_channels, out_channels, n, shortcut=False)


# --------------------------------------------------------------------------------------------
# backbone, neck, head
# --------------------------------------------------------------------------------------------
class CSPDarknet(nn.Module):
    """YOLOX's backbone. ``width`` scales channels (base 64), ``depth`` the CSP repeats (base 3).

    Returns ``{"dark3", "dark4", "dark5"}`` at strides 8/16/32 with ``out_channels`` =
    (256, 512, 1024) x width.
    """

    def __init__(self, depth: float = 0.33, width: float = 0.5, depthwise: bool = False) -> None:
        super().__init__()
        if depth <= 0 or width <= 0:
            raise ValueError(f"depth and width multipliers must be > 0, got {depth}, {width}")
        Conv = DWConv if depthwise else BaseConv
        c = max(int(64 * width), 4)
        d = max(round(3 * depth), 1)
        self.stem = Focus(3, c, 3)
        self.dark2 = nn.Sequential(Conv(c, 2 * c, 3, 2), CSPLayer(2 * c, 2 * c, d, depthwise=depthwise))
        self.dark3 = nn.Sequential(Conv(2 * c, 4 * c, 3, 2), CSPLayer(4 * c, 4 * c, 3 * d, depthwise=depthwise))
        self.dark4 = nn.Sequential(Conv(4 * c, 8 * c, 3, 2), CSPLayer(8 * c, 8 * c, 3 * d, depthwise=depthwise))
        self.dark5 = nn.Sequential(Conv(8 * c, 16 * c, 3, 2), SPPBottleneck(16 * c, 16 * c),
                                   CSPLayer(16 * c, 16 * c, d, shortcut=False, depthwise=depthwise))
        self.out_channels = (4 * c, 8 * c, 16 * c)

    def forward(self, x: Tensor) -> dict:
        x = self.dark2(self.stem(x))
        d3 = self.dark3(x)
        d4 = self.dark4(d3)
        return {"dark3": d3, "dark4": d4, "dark5": self.dark5(d4)}


class PAFPN(nn.Module):
    """YOLOX's path-aggregation neck over a backbone's dark3/4/5 maps.

    ``make_layer(in_channels, out_channels, n) -> nn.Module`` builds its four CSP layers
    (``C3_p4``, ``C3_p3``, ``C3_n3``, ``C3_n4``); the module must expose ``out_channels``, which
    may differ from the requested one (a block that keeps its channel count); the convs that
    follow each layer adapt to it. ``out_channels`` lists the three outputs' channels (P3, P4, P5).
    """

    def __init__(self, in_channels: Sequence[int], depth: float = 0.33,
                 make_layer: Callable[[int, int, int], nn.Module] = csp_layer, depthwise: bool = False) -> None:
        super().__init__()
        Conv = DWConv if depthwise else BaseConv
        c3, c4, c5 = in_channels
        n = max(round(3 * depth), 1)
        self.lateral_conv0 = BaseConv(c5, c4, 1)
        self.C3_p4 = make_layer(2 * c4, c4, n)
        self.reduce_conv1 = BaseConv(self.C3_p4.out_channels, c3, 1)
        self.C3_p3 = make_layer(2 * c3, c3, n)
        self.bu_conv2 = Conv(self.C3_p3.out_channels, c3, 3, 2)
        self.C3_n3 = make_layer(2 * c3, c4, n)
        self.bu_conv1 = Conv(self.C3_n3.out_channels, c4, 3, 2)
        self.C3_n4 = make_layer(2 * c4, c5, n)
        self.out_channels = (self.C3_p3.out_channels, self.C3_n3.out_channels, self.C3_n4.out_channels)

    def forward(self, feats: dict) -> tuple:
        x3, x4, x5 = feats["dark3"], feats["dark4"], feats["dark5"]
        p5 = self.lateral_conv0(x5)                                              # stride 32
        f4 = self.C3_p4(torch.cat([F.interpolate(p5, scale_factor=2.0, mode="nearest"), x4], 1))
        p4 = self.reduce_conv1(f4)                                               # stride 16
        out3 = self.C3_p3(torch.cat([F.interpolate(p4, scale_factor=2.0, mode="nearest"), x3], 1))  # stride 8
        out4 = self.C3_n3(torch.cat([self.bu_conv2(out3), p4], 1))              # stride 16
        out5 = self.C3_n4(torch.cat([self.bu_conv1(out4), p5], 1))              # stride 32
        return out3, out4, out5


class YOLOXHead(nn.Module):
    """Decoupled head: per level a 1x1 stem, then two 3x3 convs for classes and two for box + obj."""

    def __init__(self, num_classes: int, in_channels: Sequence[int], hidden: int = 128, depthwise: bool = False,
                 prior_prob: float = 1e-2) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        Conv = DWConv if depthwise else BaseConv
        self.num_classes = num_classes
        self.stems = nn.ModuleList([BaseConv(c, hidden, 1) for c in in_channels])
        self.cls_convs = nn.ModuleList([nn.Sequential(Conv(hidden, hidden, 3), Conv(hidden, hidden, 3)) for _ in in_channels])
        self.reg_convs = nn.ModuleList([nn.Sequential(Conv(hidden, hidden, 3), Conv(hidden, hidden, 3)) for _ in in_channels])
        self.cls_preds = nn.ModuleList([nn.Conv2d(hidden, num_classes, 1) for _ in in_channels])
        self.reg_preds = nn.ModuleList([nn.Conv2d(hidden, 4, 1) for _ in in_channels])
        self.obj_preds = nn.ModuleList([nn.Conv2d(hidden, 1, 1) for _ in in_channels])
        b = -math.log((1 - prior_prob) / prior_prob)  # start every anchor at p(object) = prior_prob
        for conv in list(self.cls_preds) + list(self.obj_preds):
            nn.init.constant_(conv.bias, b)

    def forward(self, feats: Sequence[Tensor]) -> list:
        outs = []
        for k, x in enumerate(feats):
            x = self.stems[k](x)
            c = self.cls_convs[k](x)
            r = self.reg_convs[k](x)
            outs.append(torch.cat([self.reg_preds[k](r), self.obj_preds[k](r), self.cls_preds[k](c)], 1))
        return outs


class YOLOX(nn.Module):
    """backbone -> neck -> head; ``forward`` returns the raw per-level maps (see the module doc)."""

    def __init__(self, backbone: nn.Module, neck: nn.Module, head: YOLOXHead, strides: Sequence[int] = (8, 16, 32)):
        super().__init__()
        self.backbone, self.neck, self.head = backbone, neck, head
        self.strides = tuple(strides)
        self.num_classes = head.num_classes

    def forward(self, x: Tensor) -> list:
        return self.head(self.neck(self.backbone(x)))


# --------------------------------------------------------------------------------------------
# decoding, IoU, NMS
# --------------------------------------------------------------------------------------------
def decode_outputs(outputs: Sequence[Tensor], strides: Sequence[int]) -> tuple:
    """Raw maps -> ``(pred (B, A, 5 + C) with boxes cx, cy, w, h in pixels and raw logits,
    grids (A, 2), anchor strides (A,))``. Each map's stride must be input size / map size: a
    map whose size disagrees with its stride (the official FER-YOLO-Mamba quirk) decodes
    to the wrong place, so the caller passes the strides it trained with."""
    if len(outputs) != len(strides):
        raise ValueError(f"{len(outputs)} output maps but {len(strides)} strides")
    preds, grids, ss = [], [], []
    for out, s in zip(outputs, strides):
        b, c, h, w = out.shape
        p = out.float().permute(0, 2, 3, 1).reshape(b, h * w, c)
        yy, xx = torch.meshgrid(torch.arange(h, device=out.device), torch.arange(w, device=out.device), indexing="ij")
        g = torch.stack((xx, yy), -1).reshape(-1, 2).float()
        xy = (p[..., :2] + g) * s
        wh = torch.exp(p[..., 2:4].clamp(max=10.0)) * s
        preds.append(torch.cat([xy, wh, p[..., 4:]], -1))
        grids.append(g)
        ss.append(torch.full((h * w,), float(s), device=out.device))
    return torch.cat(preds, 1), torch.cat(grids), torch.cat(ss)


def cxcywh_to_xyxy(b: Tensor) -> Tensor:
    return torch.cat([b[..., :2] - b[..., 2:] / 2, b[..., :2] + b[..., 2:] / 2], -1)


def xyxy_to_cxcywh(b: Tensor) -> Tensor:
    return torch.cat([(b[..., :2] + b[..., 2:]) / 2, b[..., 2:] - b[..., :2]], -1)


def bboxes_iou(a: Tensor, b: Tensor, xyxy: bool = True) -> Tensor:
    """Pairwise IoU (..., N, M) of boxes ``a`` (..., N, 4) and ``b`` (..., M, 4) (leading dims
    broadcast: a batch of images at once)."""
    if not xyxy:
        a, b = cxcywh_to_xyxy(a), cxcywh_to_xyxy(b)
    tl = torch.maximum(a[..., :, None, :2], b[..., None, :, :2])
    br = torch.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
    inter = (br - tl).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    return inter / (area_a[..., :, None] + area_b[..., None, :] - inter + 1e-9)


@torch.no_grad()
def postprocess(outputs: Sequence[Tensor], strides: Sequence[int], conf_thre: float = 0.05,
                nms_thre: float = 0.5, max_det: int = 100) -> list:
    """Raw maps -> one ``(n, 6)`` float tensor per image: ``x1, y1, x2, y2, score, class`` with
    score = sigmoid(obj) * max sigmoid(cls), boxes above ``conf_thre``, class-aware NMS."""
    from torchvision.ops import batched_nms

    pred, _, _ = decode_outputs(outputs, strides)
    boxes = cxcywh_to_xyxy(pred[..., :4])
    obj = pred[..., 4].sigmoid()
    cls_p, cls_id = pred[..., 5:].sigmoid().max(-1)
    score = obj * cls_p
    result = []
    for i in range(pred.shape[0]):
        keep = score[i] > conf_thre
        b, s, c = boxes[i][keep], score[i][keep], cls_id[i][keep]
        k = batched_nms(b, s, c, nms_thre)[:max_det]
        result.append(torch.cat([b[k], s[k, None], c[k, None].float()], 1).cpu())
    return result


# --------------------------------------------------------------------------------------------
# loss with SimOTA
# --------------------------------------------------------------------------------------------
class YOLOXLoss(nn.Module):
    """YOLOX's loss: SimOTA assignment, then ``(5 * IoU loss + obj BCE + cls BCE) / num_fg``.

    SimOTA (YOLOX Sec. 2.3): candidates are anchors whose centre lies inside a ground-truth box
    or within ``center_radius`` strides of its centre. Cost = cls BCE + 3 * (-log IoU) (+1e5 for
    candidates outside box-and-centre). Each ground truth takes its ``k`` cheapest anchors, with
    k = the sum of its top-10 IoUs (at least 1); an anchor claimed twice goes to the cheaper one.
    Targets: obj = 1 on assigned anchors; cls = one-hot x IoU of the prediction; box = the gt.
    """

    def __init__(self, num_classes: int, strides: Sequence[int] = (8, 16, 32), center_radius: float = 2.5,
                 iou_type: str = "iou", use_l1: bool = False) -> None:
        super().__init__()
        if iou_type not in ("iou", "giou"):
            raise ValueError(f"iou_type must be 'iou' or 'giou', got {iou_type!r}")
        self.num_classes, self.strides = num_classes, tuple(strides)
        self.center_radius, self.iou_type, self.use_l1 = center_radius, iou_type, use_l1

    def forward(self, outputs: Sequence[Tensor], targets: Tensor) -> tuple:
        """``targets`` (B, M, 5): ``[class, x1, y1, x2, y2]``, class < 0 for padding. Returns
        ``(loss, {"iou": ..., "obj": ..., "cls": ..., "num_fg": ...})``."""
        if targets.dim() != 3 or targets.shape[-1] != 5:
            raise ValueError(f"targets must be (batch, M, 5) [cls, x1, y1, x2, y2], got {tuple(targets.shape)}")
        pred, grids, strides = decode_outputs(outputs, self.strides)
        B, A, _ = pred.shape
        C = self.num_classes
        raw = torch.cat([o.float().permute(0, 2, 3, 1).reshape(B, -1, o.shape[1]) for o in outputs], 1)
        centers = (grids + 0.5) * strides[:, None]
        valid = targets[..., 0] >= 0                                            # (B, M)
        gt_xyxy = targets[..., 1:5].float()
        gt_cls = targets[..., 0].long().clamp(min=0)
        with torch.no_grad():
            fg, matched_gt, matched_iou = self._simota_batched(pred.detach(), gt_xyxy, gt_cls, valid, centers, strides)
        # targets of the foreground anchors, image-major then anchor order (as a per-image loop gives)
        bi, ai = fg.nonzero(as_tuple=True)
        g = matched_gt[bi, ai]
        num_fg_t = fg.sum().float().clamp(min=1.0)
        flat = pred.reshape(B * A, -1)
        fg_flat = fg.reshape(-1)
        boxes = cxcywh_to_xyxy(flat[fg_flat, :4])
        reg_target = gt_xyxy[bi, g]
        cls_target = F.one_hot(gt_cls[bi, g], C).float() * matched_iou[bi, ai, None]
        loss_iou = self._iou_loss(boxes, reg_target).sum() / num_fg_t
        obj_target = fg_flat[:, None].float()
        loss_obj = F.binary_cross_entropy_with_logits(flat[:, 4:5], obj_target, reduction="sum") / num_fg_t
        loss_cls = F.binary_cross_entropy_with_logits(flat[fg_flat, 5:], cls_target, reduction="sum") / num_fg_t
        loss = 5.0 * loss_iou + loss_obj + loss_cls
        logs = {"iou": loss_iou.item(), "obj": loss_obj.item(), "cls": loss_cls.item(),
                "num_fg": float(fg.sum()) / B}
        if self.use_l1:
            gt = xyxy_to_cxcywh(reg_target)
            s = strides[ai][:, None]
            l1_t = torch.cat([gt[:, :2] / s - grids[ai], torch.log(gt[:, 2:] / s + 1e-8)], 1)
            loss_l1 = F.l1_loss(raw.reshape(B * A, -1)[fg_flat, :4], l1_t, reduction="sum") / num_fg_t
            loss = loss + loss_l1
            logs["l1"] = loss_l1.item()
        return loss, logs

    def _iou_loss(self, p: Tensor, t: Tensor) -> Tensor:
        tl = torch.maximum(p[:, :2], t[:, :2])
        br = torch.minimum(p[:, 2:], t[:, 2:])
        inter = (br - tl).clamp(min=0).prod(-1)
        ap, at = (p[:, 2:] - p[:, :2]).prod(-1), (t[:, 2:] - t[:, :2]).prod(-1)
        union = ap + at - inter + 1e-16
        iou = inter / union
        if self.iou_type == "iou":
            return 1 - iou ** 2
        c = (torch.maximum(p[:, 2:], t[:, 2:]) - torch.minimum(p[:, :2], t[:, :2])).prod(-1) + 1e-16
        return 1 - (iou - (c - union) / c).clamp(-1, 1)

    def _simota_batched(self, pred: Tensor, gt_xyxy: Tensor, gt_cls: Tensor, valid: Tensor, centers: Tensor,
                        strides: Tensor):
        """SimOTA (see the class docstring) for a whole batch at once, with no per-image or per-box
        Python loop and one or two host synchronisations. Why: in notebook 01's demo on an H200 both
        detectors trained at the same ~5 steps/s at batch 32, so something outside the networks
        bounded them; a per-image assignment (~10 syncs and ~60 small kernels per image) is the prime
        suspect (not yet measured on a GPU). pred (B, A, 5 + C) decoded; gt_xyxy (B, M, 4); gt_cls
        (B, M); valid (B, M) marks real boxes. Returns fg (B, A), matched gt index (B, A) and IoU
        (B, A) (the last two meaningful where fg). tests/test_yolox.py keeps the plain per-image
        version and checks this one against it (equal up to the order of exactly tied costs)."""
        B, A, _ = pred.shape
        M = gt_xyxy.shape[1]
        inf = torch.finfo(torch.float32).max
        cx, cy = centers[:, 0], centers[:, 1]
        x1, y1, x2, y2 = (gt_xyxy[..., i:i + 1] for i in range(4))                    # (B, M, 1)
        in_box = (cx > x1) & (cx < x2) & (cy > y1) & (cy < y2)                          # (B, M, A)
        gcx, gcy = (x1 + x2) / 2, (y1 + y2) / 2
        r = self.center_radius * strides
        in_ctr = ((cx - gcx).abs() < r) & ((cy - gcy).abs() < r)
        in_box, in_ctr = in_box & valid[..., None], in_ctr & valid[..., None]
        cand = (in_box | in_ctr).any(1)                                                 # (B, A)
        # boxes far from every centre: the nearest anchor of each box (only in images with no candidate;
        # one host sync per batch decides whether that is needed at all)
        if not bool((cand.any(1) | ~valid.any(1)).all()):
            d = torch.cdist(torch.stack([gcx, gcy], -1).reshape(B, M, 2), centers[None].expand(B, -1, -1))
            nearest = F.one_hot(d.argmin(-1), A).bool() & valid[..., None]              # (B, M, A)
            cand = torch.where(cand.any(1, keepdim=True), cand, nearest.any(1))
        both = in_box & in_ctr
        ious = bboxes_iou(gt_xyxy, cxcywh_to_xyxy(pred[..., :4])) * cand[:, None]       # (B, M, A); non-candidates 0
        iou_cost = -torch.log(ious + 1e-8)
        prob = (pred[..., 5:].sigmoid() * pred[..., 4:5].sigmoid()).sqrt().clamp(1e-6, 1 - 1e-6)   # (B, A, C)
        log_p, log_q = torch.log(prob), torch.log(1 - prob)
        # BCE of each anchor against each box's one-hot class: sum_c log(1-p) + (log p - log(1-p))[cls]
        cls_cost = -(log_q.sum(-1)[:, None, :] + torch.gather(
            (log_p - log_q).transpose(1, 2), 1, gt_cls[..., None].expand(B, M, A)))    # (B, M, A)
        cost = cls_cost + 3.0 * iou_cost + 1e5 * (~both).float()
        cost = cost.masked_fill(~cand[:, None] | ~valid[..., None], inf)
        n_cand = cand.sum(1, keepdim=True)                                              # (B, 1)
        n_top = min(10, A)
        dyn_k = ious.topk(n_top, -1).values.sum(-1).int().clamp(min=1)
        dyn_k = torch.minimum(dyn_k, n_cand).clamp(max=n_top)                           # (B, M)
        top_cost, top_idx = cost.topk(n_top, -1, largest=False)                         # ascending
        take = (torch.arange(n_top, device=cost.device) < dyn_k[..., None]) & (top_cost < inf) & valid[..., None]
        match = torch.zeros(B, M, A, dtype=torch.bool, device=cost.device)
        match.scatter_(-1, top_idx, take)
        multi = match.sum(1) > 1                                                        # (B, A)
        if bool(multi.any()):  # an anchor claimed by several boxes goes to the cheapest box
            best = F.one_hot(cost.transpose(1, 2).argmin(-1), M).transpose(1, 2).bool()  # (B, M, A)
            match = torch.where(multi[:, None], best, match)
        fg = match.any(1)
        matched_gt = match.float().argmax(1)
        matched_iou = (ious * match).sum(1)
        return fg, matched_gt, matched_iou


# --------------------------------------------------------------------------------------------
# data: letterbox, padded targets, batch augmentation
# --------------------------------------------------------------------------------------------
def letterbox(image: np.ndarray, boxes: np.ndarray, size: int, fill: int = 114) -> tuple:
    """Resize ``image`` (H, W, 3) uint8 keeping its aspect ratio so the longer side is ``size``,
    pad to ``size x size`` (top-left aligned, grey ``fill``), and scale ``boxes`` (K, 4) alike."""
    from PIL import Image

    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, -1)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"letterbox expects an (H, W, 3) or (H, W) image, got shape {image.shape}")
    h, w = image.shape[:2]
    r = size / max(h, w)
    nh, nw = max(1, round(h * r)), max(1, round(w * r))
    out = np.full((size, size, 3), fill, np.uint8)
    out[:nh, :nw] = np.asarray(Image.fromarray(image).resize((nw, nh), Image.BILINEAR))
    return out, np.asarray(boxes, np.float32).reshape(-1, 4) * r


def pad_targets(boxes: np.ndarray, labels: np.ndarray, max_objects: int) -> np.ndarray:
    """(max_objects, 5) ``[class, x1, y1, x2, y2]`` rows, padding rows with class -1."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    labels = np.asarray(labels).reshape(-1)
    if len(boxes) != len(labels):
        raise ValueError(f"{len(boxes)} boxes but {len(labels)} labels")
    t = np.full((max_objects, 5), -1.0, np.float32)
    k = min(len(boxes), max_objects)
    t[:k, 0] = labels[:k]
    t[:k, 1:] = boxes[:k]
    return t


class LetterboxDetection(torch.utils.data.Dataset):
    """Wrap ``(image, boxes, labels)`` items (facelab.data detection readers, or arrays) into
    ``(uint8 image (3, size, size), targets (max_objects, 5))`` for the default collate.

    ``source`` is a dataset or a tuple ``(images (N, H, W, 3) uint8, boxes list, labels list)``.
    ``label_map`` (optional dict) renumbers labels (e.g. canonical ids -> 0..6 head indices);
    boxes whose label is not in it are dropped.
    """

    def __init__(self, source, size: int, max_objects: int = 16, label_map: Optional[dict] = None) -> None:
        self.source, self.size, self.max_objects, self.label_map = source, int(size), int(max_objects), label_map
        if isinstance(source, tuple):
            if len(source) != 3 or len(source[0]) != len(source[1]) or len(source[1]) != len(source[2]):
                raise ValueError("array source must be (images, boxes list, labels list) of equal length")

    def __len__(self) -> int:
        return len(self.source[0]) if isinstance(self.source, tuple) else len(self.source)

    def raw(self, i: int) -> tuple:
        if isinstance(self.source, tuple):
            img, boxes, labels = self.source[0][i], self.source[1][i], self.source[2][i]
        else:
            img, boxes, labels = self.source[i]
        img = np.asarray(img)
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        labels = np.asarray(labels, np.int64).reshape(-1)
        if self.label_map is not None:
            keep = np.array([int(l) in self.label_map for l in labels], bool)
            boxes, labels = boxes[keep], np.array([self.label_map[int(l)] for l in labels[keep]], np.int64)
        if img.shape[:2] != (self.size, self.size):
            img, boxes = letterbox(img, boxes, self.size)
        elif img.ndim == 2:
            img = np.repeat(img[..., None], 3, -1)
        return img, boxes, labels

    def __getitem__(self, i: int):
        img, boxes, labels = self.raw(i)
        return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))), torch.from_numpy(
            pad_targets(boxes, labels, self.max_objects))


def _valid(t: Tensor, min_size: float = 2.0) -> Tensor:
    return (t[:, 0] >= 0) & ((t[:, 3] - t[:, 1]) > min_size) & ((t[:, 4] - t[:, 2]) > min_size)


def _stack_targets(rows: list, width: int | None = None) -> Tensor:
    m = max([len(r) for r in rows] + [1, width or 0])
    out = torch.full((len(rows), m, 5), -1.0, device=rows[0].device if rows else None)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def augment_batch(images: Tensor, targets: Tensor, gen: torch.Generator, *, mosaic: float = 0.5,
                  mixup: float = 0.5, flip: float = 0.5, hsv: Sequence[float] = (0.0, 0.7, 0.4),
                  fill: float = 114 / 255) -> tuple:
    """YOLOX's training augmentation, done on a batch (any device; images float in [0, 1];
    the random draws come from ``gen``, a CPU generator, so results do not depend on the device).

    * mosaic (prob ``mosaic`` per image): four images of the batch (this one and three random)
      around a random centre of a 2S x 2S canvas; a random window of 1-2 S around the centre is
      resized back to S (YOLOX then applies a random affine; this crop-resize is its scale part);
    * mixup (prob ``mixup`` per image): average with another (augmented) image of the batch and
      keep both images' boxes;
    * horizontal flip, and saturation/value gains in ``[1 - g, 1 + g]`` (``hsv`` = hue, sat, value;
      the hue shift is not applied here).
    Boxes are clipped; boxes under 2 px or keeping < 20% of their area are dropped.
    Returns ``(images, targets)`` with as many target rows as the busiest image needs.
    """
    images = images.float()
    B, _, S, _ = images.shape
    rnd = lambda *shape: torch.rand(*shape, generator=gen)  # noqa: E731
    # The boxes are a few numbers per image: their bookkeeping runs on the CPU. On a GPU each
    # boolean mask below would be a host synchronisation (~100 per batch of 32), and those syncs,
    # not the arithmetic, made the step slow. One copy out here, one copy back at the end.
    device = images.device
    targets = targets.detach().to("cpu")
    rows = [t[t[:, 0] >= 0].clone() for t in targets]
    orig = [r.clone() for r in rows]  # mosaics read the un-augmented images and boxes
    out = images.clone()
    if mosaic > 0:
        for i in range(B):
            if rnd(1).item() >= mosaic:
                continue
            idx = [i] + torch.randint(0, B, (3,), generator=gen).tolist()
            canvas = torch.full((3, 2 * S, 2 * S), fill, device=images.device)
            xc, yc = [int(S * (0.5 + rnd(1).item())) for _ in range(2)]
            new = []
            for q, j in enumerate(idx):
                x0 = xc - S if q in (0, 2) else xc
                y0 = yc - S if q in (0, 1) else yc
                cx0, cy0 = max(x0, 0), max(y0, 0)
                cx1, cy1 = min(x0 + S, 2 * S), min(y0 + S, 2 * S)
                canvas[:, cy0:cy1, cx0:cx1] = images[j, :, cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
                t = orig[j].clone()
                t[:, [1, 3]] = (t[:, [1, 3]] + x0).clamp(cx0, cx1)
                t[:, [2, 4]] = (t[:, [2, 4]] + y0).clamp(cy0, cy1)
                new.append(t)
            win = int(S * (1 + rnd(1).item()))
            wx0 = min(max(xc - win // 2, 0), 2 * S - win)
            wy0 = min(max(yc - win // 2, 0), 2 * S - win)
            crop = canvas[:, wy0:wy0 + win, wx0:wx0 + win]
            out[i] = F.interpolate(crop[None], size=(S, S), mode="bilinear", align_corners=False)[0]
            t = torch.cat(new)
            area0 = (t[:, 3] - t[:, 1]) * (t[:, 4] - t[:, 2])
            t[:, [1, 3]] = ((t[:, [1, 3]] - wx0) * S / win).clamp(0, S)
            t[:, [2, 4]] = ((t[:, [2, 4]] - wy0) * S / win).clamp(0, S)
            area1 = (t[:, 3] - t[:, 1]) * (t[:, 4] - t[:, 2]) * (win / S) ** 2
            t = t[_valid(t) & (area1 > 0.2 * area0)]
            rows[i] = t
    if mixup > 0:
        src, src_rows = out.clone(), [r.clone() for r in rows]
        for i in range(B):
            if B < 2 or rnd(1).item() >= mixup:
                continue
            j = (i + 1 + int(torch.randint(0, B - 1, (1,), generator=gen))) % B
            out[i] = 0.5 * src[i] + 0.5 * src[j]
            rows[i] = torch.cat([src_rows[i], src_rows[j]])
    if flip > 0:
        for i in range(B):
            if rnd(1).item() < flip:
                out[i] = out[i].flip(-1)
                t = rows[i]
                t[:, [1, 3]] = S - t[:, [3, 1]]
    if hsv is not None and (hsv[1] > 0 or hsv[2] > 0):
        sat = (1 + hsv[1] * (2 * rnd(B, 1, 1, 1) - 1)).to(images.device)
        val = (1 + hsv[2] * (2 * rnd(B, 1, 1, 1) - 1)).to(images.device)
        grey = (0.299 * out[:, 0:1] + 0.587 * out[:, 1:2] + 0.114 * out[:, 2:3])
        out = ((grey + (out - grey) * sat) * val).clamp(0, 1)
    return out, _stack_targets(rows).to(device, non_blocking=True)


# --------------------------------------------------------------------------------------------
# cost: parameters, FLOPs, throughput
# --------------------------------------------------------------------------------------------
def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_flops(model: nn.Module, size: int = 320, batch: int = 1) -> int:
    """FLOPs of one forward pass at ``size x size`` (``torch.utils.flop_counter``: counts
    convolutions and matrix products, i.e. 2 per multiply-add; element-wise ops and custom
    kernels such as a selective scan are not counted: add them separately)."""
    from torch.utils.flop_counter import FlopCounterMode

    p = next(model.parameters())
    was = model.training
    model.eval()
    with FlopCounterMode(display=False) as fc:
        model(torch.zeros(batch, 3, size, size, device=p.device, dtype=p.dtype))
    model.train(was)
    return int(fc.get_total_flops())


def throughput(model: nn.Module, size: int = 320, batch: int = 1, *, device=None, amp_dtype=None,
               channels_last: bool = False, compile: Optional[str] = None, cuda_graph: bool = False,
               reps: int = 10, warmup: int = 3, min_seconds: float = 0.0) -> float:
    """Inference images/s of ``model`` (forward pass only, no decoding/NMS) on random input.

    ``amp_dtype`` (e.g. ``torch.bfloat16``): autocast; ``channels_last``: NHWC memory format for
    model and input; ``compile``: a ``torch.compile`` mode ("default", "reduce-overhead",
    "max-autotune"); ``cuda_graph``: capture one forward in a CUDA graph and replay it (CUDA
    only; the model must not synchronise with the host). Runs ``warmup`` calls, then at least
    ``reps`` calls and ``min_seconds``; returns images per second.
    """
    import time

    dev = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.to(dev).eval()
    x = torch.rand(batch, 3, size, size, device=dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    fn = torch.compile(model, mode=compile) if compile else model
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    ctx = (lambda: torch.autocast(dev.type, dtype=amp_dtype)) if amp_dtype is not None else torch.no_grad

    def call():
        with torch.no_grad(), ctx():
            return fn(x)

    if cuda_graph:
        if dev.type != "cuda":
            raise ValueError("cuda_graph=True needs a CUDA device")
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(max(warmup, 2)):
                call()
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            call()
        run = graph.replay
    else:
        run = call
    for _ in range(warmup):
        run()
    sync()
    n, t0 = 0, time.perf_counter()
    while n < reps or time.perf_counter() - t0 < min_seconds:
        run()
        n += 1
    sync()
    return n * batch / (time.perf_counter() - t0)
