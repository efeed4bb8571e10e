"""MESH68 sanity on the canonical mesh; detection + landmarks on real AFW faces (FACELAB_DATA)."""
import os
from pathlib import Path

import numpy as np
import pytest

from facelab import mesh
from facelab.faces.landmarks import INNER51, nme, read_pts


@pytest.fixture(scope="module")
def canon():
    """The canonical neutral mesh in image convention (x right, y down)."""
    m = mesh.au_mesh_model().mesh(np.zeros(20, np.float32))[:, :2].astype(np.float64)
    return m * [1, -1]


def test_mesh68_indices_are_unique_and_in_range():
    idx = mesh.MESH68
    assert idx.shape == (68,) and len(set(idx.tolist())) == 68
    assert idx.min() >= 0 and idx.max() < mesh.N_VERTICES


def test_mesh68_geometry_on_canonical_face(canon):
    p = canon[mesh.MESH68]
    assert p[36, 0] < p[39, 0] < p[42, 0] < p[45, 0]          # eye corners left to right
    assert p[48, 0] < p[51, 0] < p[54, 0]                     # mouth corners around the top lip
    assert p[19, 1] < p[37, 1] < p[30, 1] < p[51, 1] < p[57, 1] < p[8, 1]  # brow, eye, nose, lips, chin
    assert np.all(np.diff(p[0:9, 1]) > -1e-6) and np.all(np.diff(p[8:17, 1]) < 1e-6)  # jaw down, then up
    # 300-W spaces the jaw points roughly evenly along the contour (no jump to the chin).
    gaps = np.linalg.norm(np.diff(p[:17], axis=0), axis=1)
    assert gaps.max() < 3 * gaps.min(), gaps.round(1)
    assert p[62, 1] < p[66, 1] and p[61, 1] < p[67, 1]       # inner lips: upper above lower
    # Left/right pairs mirror each other about the nose line.
    cx = p[[27, 28, 29, 30, 33, 8]].mean(0)[0]
    pairs = [(36, 45), (39, 42), (48, 54), (17, 26), (0, 16), (4, 12), (31, 35)]
    for a, b in pairs:
        assert abs((cx - p[a, 0]) - (p[b, 0] - cx)) < 2.0 and abs(p[a, 1] - p[b, 1]) < 2.0, (a, b)


def test_nme_normalises_by_outer_eye_corners():
    gt = np.zeros((68, 2))
    gt[45] = [100, 0]
    pred = gt + [3.0, 4.0]
    assert nme(pred, gt) == pytest.approx(0.05)
    assert nme(pred, gt, INNER51) == pytest.approx(0.05)


def _afw():
    root = os.environ.get("FACELAB_DATA")
    if not root:
        pytest.skip("FACELAB_DATA is not set: the real-face landmark check needs landmarks300w/afw")
    d = Path(root) / "landmarks300w" / "afw"
    if not d.is_dir():
        pytest.skip(f"{d} is missing (expected 300-W AFW crops: <id>.jpg + <id>.pts)")
    return d


@pytest.mark.realdata
def test_detect_and_landmarks_on_afw():
    d = _afw()
    pytest.importorskip("facenet_pytorch", reason="MTCNN weights come from facenet-pytorch")
    from facelab.faces.landmarks import evaluate_300w

    r = evaluate_300w(d, limit=20)
    assert r["n_detected"] >= 18, f"detected {r['n_detected']}/20"
    assert np.mean(r["nme68"]) < 0.10, f"NME68 {100 * np.mean(r['nme68']):.1f}%"
    assert np.mean(r["nme51"]) < 0.075, f"NME51 {100 * np.mean(r['nme51']):.1f}%"


@pytest.mark.realdata
def test_detect_returns_five_points_inside_the_box():
    d = _afw()
    from facelab.faces.detect import detect

    f = sorted(d.glob("*.jpg"))[0]
    det = detect(f)
    assert det.boxes.shape[1:] == (4,) and det.points.shape[1:] == (5, 2) and len(det.scores) >= 1
    b, p = det.boxes[0], det.points[0]
    assert np.all((p[:, 0] > b[0]) & (p[:, 0] < b[2]) & (p[:, 1] > b[1]) & (p[:, 1] < b[3]))
    assert p[0, 0] < p[1, 0] and p[3, 0] < p[4, 0] and p[2, 1] < p[3, 1]
    gt = read_pts(f.with_suffix(".pts"))
    assert np.linalg.norm(p[0] - gt[36:42].mean(0)) < 0.2 * np.linalg.norm(gt[36] - gt[45])


def test_clip_meshes_holds_the_box_and_names_a_faceless_start():
    """The mesh lands on an engine face's exact landmarks in every frame (frame 1 uses frame 0's
    held box, every=2), and a clip whose first frame has no face is refused by name and frame."""
    from facelab import synth
    from facelab.faces import clip_meshes

    b = synth.faces(2, 192, [1, 3], seed=0, backgrounds="plain", face_scale=(0.55, 0.6))
    frames = np.concatenate([b.images[:1], b.images[:1], b.images[1:]])
    meshes = clip_meshes(frames, every=2)
    truth = b.landmarks468[[0, 0, 1]]
    assert meshes.shape == (3, 468, 3)
    assert np.abs(meshes[..., :2] - truth).mean() < 6.0  # px at 192 px (measured 2.2 on frame 0)
    with pytest.raises(ValueError, match="x.mp4: no face found in frame 0"):
        clip_meshes(np.concatenate([np.zeros_like(frames[:1]), frames]), where="x.mp4")
    with pytest.raises(ValueError, match="every must be >= 1"):
        clip_meshes(frames, every=0)
