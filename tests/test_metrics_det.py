"""facelab.metrics_det: VOC AP / mAP, precision, recall, F1 on hand-checked cases."""
from __future__ import annotations

import math

import numpy as np
import pytest

from facelab.metrics_det import box_iou, evaluate_detections, voc_ap


def test_box_iou():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 1 / 3, 0.0]])


def test_voc_ap_all_point_and_11_point():
    # detections: TP, FP, TP with 2 ground truths -> recall .5, .5, 1; precision 1, .5, 2/3
    rec, prec = np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3])
    assert voc_ap(rec, prec) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert voc_ap(rec, prec, use_07_metric=True) == pytest.approx((6 * 1 + 5 * 2 / 3) / 11)


def test_perfect_detections_give_map_one():
    gts = [(np.array([[0, 0, 10, 10], [20, 20, 40, 40]]), np.array([0, 1])), (np.array([[5, 5, 9, 9]]), np.array([2]))]
    dets = [np.array([[0, 0, 10, 10, 0.9, 0], [20, 20, 40, 40, 0.8, 1]]), np.array([[5, 5, 9, 9, 0.7, 2]])]
    m = evaluate_detections(dets, gts, 3)
    assert m["mAP"] == 1.0 and m["precision"] == 1.0 and m["recall"] == 1.0 and m["F1"] == 1.0
    assert m["class_agnostic_AP"] == 1.0


def test_duplicates_wrong_class_and_missing_class():
    gts = [(np.array([[0, 0, 10, 10]]), np.array([0])), (np.array([[0, 0, 10, 10]]), np.array([0]))]
    dets = [np.array([[0, 0, 10, 10, 0.9, 0], [1, 0, 10, 10, 0.8, 0]]),   # a duplicate: FP
            np.array([[0, 0, 10, 10, 0.95, 1]])]                           # right box, wrong class
    m = evaluate_detections(dets, gts, 3, class_names=["a", "b", "c"])
    # class a: dets (0.9 TP), (0.8 FP); 2 gts -> recall .5, precision 1 then .5 -> AP = .5
    assert m["AP/a"] == pytest.approx(0.5)
    assert math.isnan(m["AP/b"]) and math.isnan(m["AP/c"]) and m["n_gt/b"] == 0
    assert m["mAP"] == pytest.approx(0.5)                                  # only class a counts
    assert m["precision/a"] == pytest.approx(0.5) and m["recall/a"] == pytest.approx(0.5)
    assert m["class_agnostic_AP"] == pytest.approx(1.0)                    # both faces found first


def test_score_threshold_and_iou_threshold():
    gts = [(np.array([[0, 0, 10, 10]]), np.array([0]))]
    dets = [np.array([[0, 0, 10, 10, 0.3, 0]])]
    m = evaluate_detections(dets, gts, 1, score_thr=0.5)
    assert m["mAP"] == 1.0 and m["precision"] == 0.0 and m["recall"] == 0.0 and m["F1"] == 0.0
    shifted = [np.array([[4, 0, 14, 10, 0.9, 0]])]   # IoU 6/14 < 0.5
    assert evaluate_detections(shifted, gts, 1)["mAP"] == 0.0
    assert evaluate_detections(shifted, gts, 1, iou_thr=0.4)["mAP"] == 1.0


def test_bad_input():
    with pytest.raises(ValueError):
        evaluate_detections([np.zeros((0, 6))], [], 2)
    with pytest.raises(ValueError):
        evaluate_detections([np.zeros((0, 6))], [(np.zeros((1, 4)), np.array([5]))], 2)
    with pytest.raises(ValueError):
        voc_ap(np.zeros(2), np.zeros(3))
