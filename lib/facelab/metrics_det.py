"""Detection metrics of the PASCAL VOC kind: AP per class at an IoU threshold, mAP, and
precision / recall / F1 at a score threshold (what FER-YOLO-Mamba reports, from the
``utils_map.py`` of the YOLOX code it builds on).

* A detection is a true positive when its IoU with a not-yet-matched ground-truth box of the
  same class is >= ``iou_thr`` (0.5 for mAP@0.5); detections are visited in descending score,
  so each ground truth is matched at most once and duplicates count as false positives.
* AP is the area under the precision-recall curve with VOC2010+'s all-point interpolation
  (precision made monotone from the right, summed over the recall steps); ``use_07_metric=True``
  gives VOC2007's 11-point version instead.
* A class with no ground-truth box has no AP (NaN) and is left out of the mAP.
* Precision / recall / F1 per class count only detections with score >= ``score_thr``
  (0.5 in the official evaluation), and are macro-averaged over classes with ground truth.

Inputs: ``detections`` one ``(n, 6)`` array per image ``[x1, y1, x2, y2, score, class]``,
``ground_truth`` one ``(boxes (k, 4), labels (k,))`` pair per image (pixels, x1y1x2y2).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .boxes import box_iou

__all__ = ["voc_ap", "evaluate_detections", "box_iou"]


def _np(x) -> np.ndarray:
    try:
        import torch

        if isinstance(x, torch.Tensor):
            return x.detach().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    return np.asarray(x)


def voc_ap(recall: np.ndarray, precision: np.ndarray, use_07_metric: bool = False) -> float:
    """Area under a precision-recall curve (points in detection order)."""
    recall, precision = np.asarray(recall, np.float64), np.asarray(precision, np.float64)
    if recall.shape != precision.shape:
        raise ValueError(f"recall and precision differ in shape: {recall.shape} vs {precision.shape}")
    if use_07_metric:
        return float(np.mean([precision[recall >= t].max() if (recall >= t).any() else 0.0
                              for t in np.linspace(0, 1, 11)]))
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def evaluate_detections(detections: Sequence, ground_truth: Sequence, num_classes: int, *,
                        iou_thr: float = 0.5, score_thr: float = 0.5, class_names: Sequence[str] | None = None,
                        use_07_metric: bool = False) -> dict:
    """VOC evaluation. Returns a flat dict: ``mAP``, ``precision``, ``recall``, ``F1`` (macro over
    classes with ground truth, at ``score_thr``), and per class ``AP/<name>``, ``precision/<name>``,
    ``recall/<name>``, ``F1/<name>``, ``n_gt/<name>``; also ``class_agnostic_AP`` (every box one
    class: how well faces are found, whatever their expression)."""
    if len(detections) != len(ground_truth):
        raise ValueError(f"{len(detections)} detection lists but {len(ground_truth)} ground-truth entries")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    names = list(class_names) if class_names is not None else [str(c) for c in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names for {num_classes} classes")
    dets, gts = [], []
    for i, (d, g) in enumerate(zip(detections, ground_truth)):
        d = _np(d).astype(np.float64).reshape(-1, 6)
        boxes, labels = _np(g[0]).astype(np.float64).reshape(-1, 4), _np(g[1]).astype(np.int64).reshape(-1)
        if len(boxes) != len(labels):
            raise ValueError(f"image {i}: {len(boxes)} ground-truth boxes but {len(labels)} labels")
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"image {i}: ground-truth labels must be in 0..{num_classes - 1}, got {labels}")
        dets.append(d)
        gts.append((boxes, labels))
    out: dict = {}
    aps, ps, rs, fs = [], [], [], []
    for c in range(num_classes):
        ap, p, r, f, n_gt = _class_stats(dets, gts, c, iou_thr, score_thr, use_07_metric)
        name = names[c]
        out[f"AP/{name}"], out[f"precision/{name}"] = ap, p
        out[f"recall/{name}"], out[f"F1/{name}"], out[f"n_gt/{name}"] = r, f, n_gt
        if n_gt > 0:
            aps.append(ap), ps.append(p), rs.append(r), fs.append(f)
    out["mAP"] = float(np.mean(aps)) if aps else float("nan")
    out["precision"] = float(np.mean(ps)) if ps else float("nan")
    out["recall"] = float(np.mean(rs)) if rs else float("nan")
    out["F1"] = float(np.mean(fs)) if fs else float("nan")
    agn_d = [np.concatenate([d[:, :5], np.zeros((len(d), 1))], 1) for d in dets]
    agn_g = [(b, np.zeros_like(l)) for b, l in gts]
    out["class_agnostic_AP"] = _class_stats(agn_d, agn_g, 0, iou_thr, score_thr, use_07_metric)[0]
    return out


def _class_stats(dets, gts, c, iou_thr, score_thr, use_07):
    n_gt = int(sum((l == c).sum() for _, l in gts))
    recs = []  # (score, image, box)
    for i, d in enumerate(dets):
        for row in d[d[:, 5] == c]:
            recs.append((row[4], i, row[:4]))
    if n_gt == 0:
        return float("nan"), float("nan"), float("nan"), float("nan"), 0
    if not recs:
        return 0.0, 0.0, 0.0, 0.0, n_gt
    recs.sort(key=lambda r: -r[0])
    used = {i: np.zeros(int((l == c).sum()), bool) for i, (_, l) in enumerate(gts)}
    tp = np.zeros(len(recs))
    for k, (_, i, box) in enumerate(recs):
        gb = gts[i][0][gts[i][1] == c]
        if len(gb) == 0:
            continue
        iou = box_iou(box[None], gb)[0]
        j = int(iou.argmax())
        if iou[j] >= iou_thr and not used[i][j]:
            used[i][j] = True
            tp[k] = 1
    ctp, cfp = np.cumsum(tp), np.cumsum(1 - tp)
    rec = ctp / n_gt
    prec = ctp / np.maximum(ctp + cfp, 1e-12)
    ap = voc_ap(rec, prec, use_07)
    scores = np.array([r[0] for r in recs])
    sel = scores >= score_thr
    ntp = tp[sel].sum()
    p = float(ntp / sel.sum()) if sel.any() else 0.0
    r = float(ntp / n_gt)
    f = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return ap, p, r, f, n_gt
