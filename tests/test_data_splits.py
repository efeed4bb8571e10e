"""facelab.data.resplit_if_degraded: a blurred training split is set aside, a sound one is kept."""
from __future__ import annotations

import numpy as np
import pytest

from facelab.data import median_sharpness, resplit_if_degraded


def _faces(n, seed, blur=False):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 24, 24)).astype(np.float32)
    if blur:  # 5x5 box blur, three times: smooth like the FER2013 train copy
        for _ in range(3):
            p = np.pad(x, ((0, 0), (2, 2), (2, 2)), mode="edge")
            x = sum(p[:, i:i + 24, j:j + 24] for i in range(5) for j in range(5)) / 25
    return x.astype(np.uint8), rng.integers(0, 3, n)


def test_a_blurred_train_split_is_replaced_by_stratified_halves_of_eval():
    tr_x, tr_y = _faces(60, 0, blur=True)
    ev_x, ev_y = _faces(41, 1)
    a_x, a_y, b_x, b_y, info = resplit_if_degraded(tr_x, tr_y, ev_x, ev_y, seed=3)
    assert info["resplit"] and info["sharpness"]["eval"] > 10 * info["sharpness"]["train"]
    assert len(a_y) + len(b_y) == len(ev_y)
    for c in np.unique(ev_y):  # per class: half (rounded down) trains, the rest evaluates
        n = int((ev_y == c).sum())
        assert (a_y == c).sum() == n // 2 and (b_y == c).sum() == n - n // 2
    # the halves are disjoint images of the evaluation split, and the seed fixes them
    rows = {r.tobytes() for r in ev_x}
    assert {r.tobytes() for r in a_x} | {r.tobytes() for r in b_x} == rows
    assert not {r.tobytes() for r in a_x} & {r.tobytes() for r in b_x}
    again = resplit_if_degraded(tr_x, tr_y, ev_x, ev_y, seed=3)
    other = resplit_if_degraded(tr_x, tr_y, ev_x, ev_y, seed=4)
    assert np.array_equal(again[0], a_x) and not np.array_equal(other[0], a_x)


def test_comparable_splits_come_back_unchanged():
    tr_x, tr_y = _faces(30, 0)
    ev_x, ev_y = _faces(20, 1)
    a_x, a_y, b_x, b_y, info = resplit_if_degraded(tr_x, tr_y, ev_x, ev_y, seed=0)
    assert not info["resplit"]
    assert a_x is not None and np.array_equal(a_x, tr_x) and np.array_equal(b_y, ev_y)


def test_bad_input_says_what_was_expected():
    x, y = _faces(10, 0)
    with pytest.raises(ValueError, match="differ in length"):
        resplit_if_degraded(x, y[:5], x, y, seed=0)
    with pytest.raises(ValueError, match="ratio"):
        resplit_if_degraded(x, y, x, y, seed=0, ratio=1.0)
    with pytest.raises(ValueError, match="no images"):
        median_sharpness(x[:0])


def test_median_sharpness_uses_all_images_or_an_even_sample():
    x, _ = _faces(9, 0)
    from facelab.metrics import laplacian_variance
    assert median_sharpness(x, n=None) == float(np.median(laplacian_variance(x)))
    assert median_sharpness(x, n=3) == float(np.median(laplacian_variance(x[[0, 4, 8]])))
