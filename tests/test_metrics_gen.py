import numpy as np
import pytest

from facelab.metrics_gen import frechet_distance, frechet_distance_stats


def test_identical_sets_have_zero_distance():
    x = np.random.default_rng(0).normal(size=(500, 6))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)


def test_mean_shift_adds_squared_norm():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 5))
    shift = np.array([1.0, -2.0, 0.5, 0.0, 3.0])
    assert frechet_distance(x, x + shift) == pytest.approx(float(shift @ shift), rel=1e-6)


def test_closed_form_for_scaled_isotropic_gaussians():
    # N(0, a^2 I) vs N(0, b^2 I): d^2 = dim * (a - b)^2
    d = frechet_distance_stats(np.zeros(3), 4 * np.eye(3), np.zeros(3), 9 * np.eye(3))
    assert d == pytest.approx(3 * (2 - 3) ** 2)


def test_more_different_sets_are_farther():
    rng = np.random.default_rng(2)
    a, b, c = rng.normal(size=(300, 4)), rng.normal(size=(300, 4)), rng.normal(1.0, 2.0, size=(300, 4))
    assert frechet_distance(a, b) < frechet_distance(a, c)


def test_bad_input_says_what_was_expected():
    with pytest.raises(ValueError, match=r"\(n, d\)"):
        frechet_distance(np.zeros(5), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="widths differ"):
        frechet_distance(np.zeros((5, 2)), np.zeros((5, 3)))
