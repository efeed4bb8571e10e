"""Similarity alignment: Umeyama recovers known transforms; warping puts points on the template."""
import numpy as np
import pytest

from facelab.faces.align import (align_face, five_from_68, invert_affine, similarity_to_template, template_5,
                                 transform_points, umeyama, warp_affine)


def _similarity(angle, scale, t):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[scale * c, -scale * s, t[0]], [scale * s, scale * c, t[1]]])


@pytest.mark.parametrize("angle,scale", [(0.0, 1.0), (0.4, 2.5), (-1.2, 0.3)])
def test_umeyama_recovers_known_2d_similarity(angle, scale):
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, (5, 2))
    m = _similarity(angle, scale, (12.0, -7.0))
    got = umeyama(src, transform_points(src, m))
    np.testing.assert_allclose(got, m, atol=1e-9)


def test_umeyama_3d_is_a_proper_rotation_and_least_squares():
    rng = np.random.default_rng(2)
    src = rng.normal(size=(30, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    dst = 1.7 * src @ q.T + [1, 2, 3] + rng.normal(0, 0.01, (30, 3))
    m = umeyama(src, dst)
    assert np.linalg.det(m[:, :3]) > 0
    np.testing.assert_allclose(m[:, :3] / 1.7, q, atol=0.02)
    # A mirrored target must not be matched by a reflection.
    mirrored = dst * [-1, 1, 1]
    assert np.linalg.det(umeyama(src, mirrored)[:, :3]) > 0


def test_invert_and_transform_round_trip():
    m = _similarity(0.3, 1.5, (4.0, 9.0))
    p = np.random.default_rng(3).uniform(0, 50, (10, 2))
    np.testing.assert_allclose(transform_points(transform_points(p, m), invert_affine(m)), p, atol=1e-9)


def test_align_face_puts_marked_points_on_the_template():
    # Dots drawn at known 5 points of a rotated, scaled "face" must land on the template.
    size = 96
    tmpl = template_5(size, zoom=0.8)
    m_true = _similarity(0.5, 2.0, (40.0, 25.0))
    pts = transform_points(tmpl, m_true)
    img = np.zeros((300, 300), np.float32)
    for x, y in np.rint(pts).astype(int):
        img[y - 2:y + 3, x - 2:x + 3] = 1.0
    crop, m = align_face(img, pts, size, zoom=0.8)
    np.testing.assert_allclose(transform_points(pts, m), tmpl, atol=1e-6)
    for x, y in np.rint(tmpl).astype(int):
        assert crop[y, x] > 0.5, "a dot did not land on its template point"
    assert crop.shape == (size, size) and crop.sum() < 5 * 3 * 3 + 1


def test_warp_identity_keeps_uint8_image():
    img = np.random.default_rng(4).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    out = warp_affine(img, np.array([[1.0, 0, 0], [0, 1.0, 0]]), (20, 30))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, img)


def test_five_from_68_and_template_shapes():
    lm = np.random.default_rng(5).uniform(0, 100, (3, 68, 2))
    five = five_from_68(lm)
    assert five.shape == (3, 5, 2)
    np.testing.assert_allclose(five[:, 3], lm[:, 48])
    t = template_5((100, 200))
    assert t[0, 0] < t[1, 0] and t[2, 1] < t[3, 1]  # eyes left-to-right, mouth below nose
    with pytest.raises(ValueError):
        similarity_to_template(np.zeros((4, 2)))
