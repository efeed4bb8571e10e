"""One pairwise IoU for the whole package."""
import numpy as np

from facelab import boxes, metrics_det
from facelab.faces import track


def test_box_iou_values_and_shape():
    a = np.array([[0, 0, 10, 10], [5, 5, 15, 15]])
    b = np.array([[0, 0, 10, 10], [10, 10, 20, 20], [20, 0, 30, 5], [2, 2, 1, 1]])
    iou = boxes.box_iou(a, b)
    assert iou.shape == (2, 4)
    np.testing.assert_allclose(iou[0], [1.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(iou[1], [25 / 175, 25 / 175, 0.0, 0.0])   # 5x5 overlap, union 100 + 100 - 25


def test_every_layer_uses_the_same_box_iou():
    assert metrics_det.box_iou is boxes.box_iou and track.box_iou is boxes.box_iou
