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


def test_closed_form_for_diagonal_covariances():
    # Diagonal S_a, S_b commute: d^2 = ||mu_a - mu_b||^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2
    rng = np.random.default_rng(3)
    for _ in range(50):
        dim = int(rng.integers(1, 12))
        mu_a, mu_b = rng.normal(size=dim), rng.normal(size=dim)
        a, b = rng.uniform(0.01, 5, dim), rng.uniform(0.01, 5, dim)
        expected = float(((mu_a - mu_b) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum())
        assert frechet_distance_stats(mu_a, np.diag(a), mu_b, np.diag(b)) == pytest.approx(expected, rel=1e-10,
                                                                                          abs=1e-12)


def test_closed_form_under_a_shared_rotation_and_singular_covariances():
    # Rotating both Gaussians by one orthogonal Q leaves the distance unchanged, so the diagonal
    # closed form holds for R diag(a) R^T vs R diag(b) R^T; zero variances (rank-deficient) included.
    rng = np.random.default_rng(4)
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    a = np.r_[rng.uniform(0.1, 3, 5), 0.0, 0.0, 0.0]
    b = np.r_[rng.uniform(0.1, 3, 4), 0.0, 0.0, 2.0, 0.0]
    expected = float(((np.sqrt(a) - np.sqrt(b)) ** 2).sum())
    d = frechet_distance_stats(np.zeros(8), q @ np.diag(a) @ q.T, np.zeros(8), q @ np.diag(b) @ q.T)
    assert d == pytest.approx(expected, rel=1e-8, abs=1e-10)


def test_few_samples_many_dims_is_finite_and_symmetric():
    # n < d: both covariances are singular (the case sqrtm used to need a regularised retry for).
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(10, 40)), rng.normal(0.5, 1.0, size=(12, 40))
    d_ab, d_ba = frechet_distance(a, b), frechet_distance(b, a)
    assert np.isfinite(d_ab) and d_ab > 0
    assert d_ab == pytest.approx(d_ba, rel=1e-8)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_matches_scipy_sqrtm_on_well_conditioned_covariances():
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(6)
    for _ in range(20):
        x, y = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
        sa, sb = x @ x.T + np.eye(6), y @ y.T + 0.5 * np.eye(6)
        tr = np.trace(np.real(linalg.sqrtm(sa @ sb)))
        expected = float(np.trace(sa) + np.trace(sb) - 2 * tr)
        assert frechet_distance_stats(np.zeros(6), sa, np.zeros(6), sb) == pytest.approx(expected, rel=1e-8)


def test_nonfinite_statistics_are_rejected():
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance_stats(np.zeros(2), np.full((2, 2), np.nan), np.zeros(2), np.eye(2))
