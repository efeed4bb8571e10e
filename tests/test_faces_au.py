"""AU codebook, heatmap geometry, and AU estimation on meshes the AU-to-mesh model made."""
import numpy as np
import pytest

from facelab import mesh
from facelab.faces.au import AU_CODEBOOK, au_heatmap, codebook_aus, expression_aus
from facelab.faces.au_estimate import estimate_aus


@pytest.fixture(scope="module")
def face68():
    """68 points of the model's neutral face, frontal, in a 224 px image (y down)."""
    m = mesh.au_mesh_model().mesh(np.zeros(20, np.float32))[mesh.MESH68, :2].astype(np.float64)
    m[:, 1] *= -1
    m -= m.mean(0)
    return m * (150 / np.ptp(m[:, 0])) + 112


def _mass(hm, lm, idx, r=6):
    """Heatmap mean in discs around the given landmarks."""
    yy, xx = np.mgrid[:hm.shape[0], :hm.shape[1]]
    sel = np.zeros(hm.shape, bool)
    for x, y in lm[idx]:
        sel |= (xx - x) ** 2 + (yy - y) ** 2 <= r * r
    return hm[sel].mean()


BROWS = list(range(17, 27))
MOUTH_CORNERS = [48, 54]
MOUTH = list(range(48, 60))


def test_codebook_follows_the_paper():
    assert expression_aus("happy") == ("AU06", "AU12", "AU25")
    assert "AU10" in AU_CODEBOOK["disgust"] and "AU05" not in AU_CODEBOOK["disgust"]
    assert len(AU_CODEBOOK["anger"]) == 9 and AU_CODEBOOK["neutral"] == ()
    assert expression_aus(1) == AU_CODEBOOK["happy"]  # canonical id 1 = happy
    assert codebook_aus(("AU6", "12")) == ("AU06", "AU12")
    with pytest.raises(ValueError):
        codebook_aus("AU99")


def test_happy_peaks_at_mouth_corners_and_cheeks_not_brows(face68):
    hm = au_heatmap(face68, "happy", 224)
    assert hm.shape == (224, 224) and hm.dtype == np.float32 and hm.max() == pytest.approx(1.0)
    y, x = np.unravel_index(hm.argmax(), hm.shape)
    assert y > face68[BROWS, 1].max() + 10  # the peak is well below the brows
    assert _mass(hm, face68, MOUTH_CORNERS) > 0.5
    assert _mass(hm, face68, BROWS) < 0.05


def test_surprise_lights_brows_and_mouth(face68):
    hm = au_heatmap(face68, "surprise", 224)
    assert _mass(hm, face68, BROWS) > 0.4
    assert _mass(hm, face68, [57, 62, 66]) > 0.5
    assert _mass(hm, face68, [3, 13]) < 0.05  # not the jaw sides


def test_neutral_is_all_zero_and_flagged(face68):
    hm, valid = au_heatmap(np.stack([face68, face68]), ["neutral", "anger"], 64, image_size=224,
                           return_valid=True)
    assert valid.tolist() == [False, True]
    assert hm[0].max() == 0 and hm[1].max() == pytest.approx(1.0)


def test_resolution_independence(face68):
    big = au_heatmap(face68, "fear", 224)
    small = au_heatmap(face68, "fear", 56, image_size=224)
    pooled = big.reshape(56, 4, 56, 4).mean((1, 3))
    assert np.corrcoef(pooled.ravel(), small.ravel())[0, 1] > 0.95
    # The same mask, not a resized one: a 4x smaller map still has its holes and edges.
    assert abs(pooled.mean() - small.mean()) < 0.02


def test_batch_matches_single_and_follows_roll(face68):
    labels = ["happy", "sad", "contempt"]
    batch = au_heatmap(np.stack([face68] * 3), labels, 96, image_size=224)
    for i, lab in enumerate(labels):
        np.testing.assert_allclose(batch[i], au_heatmap(face68, lab, 96, image_size=224), atol=1e-6)
    # Contempt is one-sided: only the subject's right (image-left) mouth corner.
    lm96 = (face68 + 0.5) * 96 / 224 - 0.5
    assert _mass(batch[2], lm96, [48], 3) > 0.5
    assert _mass(batch[2], lm96, [54], 3) < 0.05
    # Rotating the face rotates its map.
    a = 0.4
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    lm_r = (face68 - 112) @ rot.T + 112
    hm, hm_r = au_heatmap(face68, "happy", 224), au_heatmap(lm_r, "happy", 224)
    yy, xx = np.mgrid[:224, :224]
    back = (np.stack([xx, yy], -1) - 112) @ rot + 112  # where each rotated pixel came from
    xs, ys = np.clip(np.rint(back).astype(int), 0, 223).transpose(2, 0, 1)
    assert np.abs(hm_r - hm[ys, xs]).mean() < 0.03


@pytest.mark.parametrize("points", ["68", "468"])
def test_estimate_recovers_known_aus_on_model_meshes(points):
    rng = np.random.default_rng(0)
    n = 60
    aus = ((rng.random((n, 20)) < 0.35) * rng.uniform(0, 5, (n, 20))).astype(np.float32)
    m = mesh.au_mesh_model().mesh(aus).astype(np.float64)
    if points == "68":
        m = m[:, mesh.MESH68]
    # Image convention (y down), random roll/scale/shift, and landmark noise of 0.5% of face width.
    a = rng.uniform(-0.3, 0.3, n)
    rot = np.stack([np.stack([np.cos(a), -np.sin(a)], -1), np.stack([np.sin(a), np.cos(a)], -1)], -2)
    scale = rng.uniform(0.8, 1.5, n)[:, None, None]
    obs = np.einsum("nij,nkj->nki", rot, m[..., :2] * [1, -1]) * scale + rng.uniform(50, 150, (n, 1, 2))
    obs += rng.normal(0, 0.005 * 175, obs.shape) * scale
    est = estimate_aus(obs)
    assert est.shape == (n, 20) and est.min() >= 0 and est.max() <= 5
    r = np.array([np.corrcoef(est[:, i], aus[:, i])[0, 1] for i in range(20)])
    assert r.min() > 0.9, dict(zip(mesh.AU_NAMES, r.round(2)))
    assert np.abs(est - aus).mean() < 0.3


def test_estimate_neutral_is_near_zero_and_3d_works():
    m = mesh.au_mesh_model().mesh(np.zeros(20, np.float32))
    assert estimate_aus(m, y_down=False).max() < 0.05
    truth = mesh.aus_from_dict({"AU12": 3.0, "AU26": 2.0})
    est = estimate_aus(mesh.au_mesh_model().mesh(truth), y_down=False)
    np.testing.assert_allclose(est, truth, atol=0.1)
