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
