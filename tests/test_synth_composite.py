"""facelab.synth.paste_faces: scenes of real face crops with exact boxes."""
import numpy as np
import pytest

from facelab import synth
from facelab.boxes import box_iou


def _crops(n=5):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 48, 48), dtype=np.uint8), np.arange(n) % 7


def test_paste_faces_boxes_hold_the_pasted_crops():
    faces, labels = _crops()
    faces[:] = 255                                                # white faces on darker backgrounds
    imgs, boxes, labs = synth.paste_faces(faces, labels, 6, 96, 3, (20, 40), seed=0)
    assert imgs.shape == (6, 96, 96) and imgs.dtype == np.uint8 and len(boxes) == len(labs) == 6
    for img, b, lab in zip(imgs, boxes, labs):
        assert 1 <= len(b) <= 3 and len(lab) == len(b) and set(lab.tolist()) <= set(labels.tolist())
        if len(b) > 1:
            iou = box_iou(b, b)
            assert (iou[~np.eye(len(b), dtype=bool)] < 0.02).all()
        for x0, y0, x1, y1 in b.astype(int):
            assert 20 <= x1 - x0 <= 40 and x1 - x0 == y1 - y0
            inner = img[y0 + 3:y1 - 3, x0 + 3:x1 - 3]            # inside the feathered edge: the face
            assert inner.min() >= 250


def test_paste_faces_is_seeded_and_rejects_bad_input():
    faces, labels = _crops()
    a = synth.paste_faces(faces, labels, 3, 64, 2, (16, 32), seed=1)
    b = synth.paste_faces(faces, labels, 3, 64, 2, (16, 32), seed=1)
    assert np.array_equal(a[0], b[0]) and all(np.array_equal(x, y) for x, y in zip(a[1], b[1]))
    with pytest.raises(ValueError, match="grey uint8 crops"):
        synth.paste_faces(faces[..., None], labels, 3, 64, 2, (16, 32), seed=1)
    with pytest.raises(ValueError, match="face_px"):
        synth.paste_faces(faces, labels, 3, 64, 2, (16, 80), seed=1)
