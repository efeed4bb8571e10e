"""facelab.metrics.laplacian_variance: the sharpness measure two notebooks use to compare splits."""
import numpy as np
import pytest

from facelab.metrics import laplacian_variance


def _box_blur(x):
    p = np.pad(x.astype(np.float32), ((0, 0), (1, 1), (1, 1)), mode="edge")
    return sum(p[:, i:i + x.shape[1], j:j + x.shape[2]] for i in range(3) for j in range(3)) / 9


def test_blur_lowers_sharpness_and_grey_equals_colour():
    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 256, (4, 24, 24)).astype(np.uint8)
    blurred = _box_blur(sharp)
    s, b = laplacian_variance(sharp), laplacian_variance(blurred)
    assert s.shape == (4,) and np.all(b < 0.2 * s)
    np.testing.assert_allclose(laplacian_variance(np.repeat(sharp[..., None], 3, -1)), s, rtol=1e-6)


def test_flat_and_linear_images_have_zero_laplacian():
    ramp = np.tile(np.arange(16, dtype=np.float32), (2, 16, 1))
    np.testing.assert_allclose(laplacian_variance(ramp), 0.0, atol=1e-6)


@pytest.mark.parametrize("shape", [(24, 24), (2, 24, 24, 4), (2, 2, 24)])
def test_wrong_shapes_are_rejected(shape):
    with pytest.raises(ValueError, match="expects"):
        laplacian_variance(np.zeros(shape))


# ---------------------------------------------------------------- scikit-learn as an oracle
# Many seeded random draws, with ties (rounded scores) and small positive counts (e.g. 20, where
# 95% TPR is exactly 19 positives: the case an off-by-one in fpr_at_tpr gets wrong).
sk_metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn (a dev dependency) is missing")

from facelab import metrics  # noqa: E402

N_CASES = 500


def _score_cases():
    rng = np.random.default_rng(20240501)
    for i in range(N_CASES):
        n_pos = int(rng.choice([1, 2, 3, 5, 19, 20, 21, 40, 100]))
        n_neg = int(rng.integers(1, 120))
        shift = rng.uniform(-1, 3)
        pos, neg = rng.normal(shift, 1, n_pos), rng.normal(0, 1, n_neg)
        if i % 2 == 0:  # coarse rounding: many ties within and across the two classes
            decimals = int(rng.integers(0, 2))
            pos, neg = pos.round(decimals), neg.round(decimals)
        if i % 50 == 0:  # everything tied
            pos, neg = np.zeros(n_pos), np.zeros(n_neg)
        yield i, pos, neg


def _sk_fpr_at_tpr(pos, neg, target):
    y = np.r_[np.ones(pos.size), np.zeros(neg.size)]
    fpr, tpr, _ = sk_metrics.roc_curve(y, np.r_[pos, neg], drop_intermediate=False)
    return float(fpr[np.searchsorted(tpr, target, side="left")])


def test_auroc_matches_sklearn():
    for i, pos, neg in _score_cases():
        y = np.r_[np.ones(pos.size), np.zeros(neg.size)]
        expected = sk_metrics.roc_auc_score(y, np.r_[pos, neg])
        assert metrics.auroc(pos, neg) == pytest.approx(expected, abs=1e-12), f"case {i}"


@pytest.mark.parametrize("target", [0.95, 0.9, 0.5, 1.0])
def test_fpr_at_tpr_matches_sklearn_roc_curve(target):
    for i, pos, neg in _score_cases():
        assert metrics.fpr_at_tpr(pos, neg, target) == _sk_fpr_at_tpr(pos, neg, target), f"case {i}"


def test_fpr_at_tpr_drop_intermediate_does_not_change_distinct_scores():
    # Without ties, sklearn's default (drop_intermediate=True) curve gives the same FPR95.
    rng = np.random.default_rng(7)
    for i in range(200):
        pos, neg = rng.normal(1, 1, 20), rng.normal(0, 1, int(rng.integers(5, 80)))
        y = np.r_[np.ones(pos.size), np.zeros(neg.size)]
        fpr, tpr, _ = sk_metrics.roc_curve(y, np.r_[pos, neg])
        assert metrics.fpr_at_tpr(pos, neg) == fpr[np.searchsorted(tpr, 0.95, side="left")], f"case {i}"


def test_fpr_at_tpr_with_20_positives_keeps_19():
    # 20 positives 1..20, negatives between them: 95% TPR keeps 19 positives (threshold 2), so the
    # negatives at 1.5 stay below it and the one at 0 too; only the one at 2.5 counts.
    pos = np.arange(1, 21, dtype=float)
    neg = np.array([0.0, 1.5, 2.5, 1.5])
    assert metrics.fpr_at_tpr(pos, neg, 0.95) == pytest.approx(1 / 4)
    assert metrics.fpr_at_tpr(pos, neg, 1.0) == pytest.approx(3 / 4)
    # a negative tied with the threshold positive counts as a false positive
    assert metrics.fpr_at_tpr(pos, np.array([2.0, 0.0]), 0.95) == pytest.approx(1 / 2)


def test_fpr_at_tpr_rejects_bad_input():
    with pytest.raises(ValueError, match="tpr must be"):
        metrics.fpr_at_tpr([1.0], [0.0], 1.5)
    with pytest.raises(ValueError, match="at least one"):
        metrics.fpr_at_tpr([], [0.0])
    with pytest.raises(ValueError, match="NaN"):
        metrics.fpr_at_tpr([np.nan, 1.0], [0.0])


def _label_cases():
    rng = np.random.default_rng(99)
    for i in range(N_CASES):
        k = int(rng.integers(2, 8))
        n = int(rng.integers(1, 60))
        y_true = rng.integers(0, k, n)
        y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, k, n))
        if i % 3 == 0:  # a class that is never predicted (it may still be in y_true)
            never = int(rng.integers(0, k))
            y_pred = np.where(y_pred == never, (never + 1) % k, y_pred)
        yield i, k, y_true, y_pred


def test_macro_f1_matches_sklearn():
    saw_unpredicted = 0
    for i, k, y_true, y_pred in _label_cases():
        expected = sk_metrics.f1_score(y_true, y_pred, average="macro", zero_division=0)
        saw_unpredicted += bool(set(y_true) - set(y_pred))
        assert metrics.macro_f1(y_true, y_pred) == pytest.approx(expected, abs=1e-12), f"case {i}"
        # n_classes larger than the labels seen: classes absent from both arrays are left out
        assert metrics.macro_f1(y_true, y_pred, k + 2) == pytest.approx(expected, abs=1e-12), f"case {i}"
    assert saw_unpredicted > 50


def test_confusion_matrix_matches_sklearn():
    for i, k, y_true, y_pred in _label_cases():
        expected = sk_metrics.confusion_matrix(y_true, y_pred, labels=list(range(k)))
        np.testing.assert_array_equal(metrics.confusion_matrix(y_true, y_pred, k), expected, err_msg=f"case {i}")
