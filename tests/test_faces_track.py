"""facelab.faces.track: linking detections, missed frames, the main character, CLEAR-MOT counts.

Multi-face clips are composited here from synth.faces patches (exact boxes) or taken from
synth.videos with a distractor; "detections" are the exact boxes with a little noise, some
dropped (a stand-in for a detector, which these tests do not run).
"""
from __future__ import annotations

import numpy as np
import pytest

from facelab.faces.detect import Detections
from facelab.faces.track import (FaceTracker, Track, appearance, clear_mot, crop_tube, detect_frames, main_track,
                                 track_faces, tracks_to_frames)


@pytest.fixture(scope="module")
def patches():
    from facelab.synth.generators import faces

    fb = faces(2, size=28, seed=1, backgrounds="plain", pose_range=(0.05, 0.1, 0.05))
    return fb.images, fb.box


def composite(images, boxes, paths, H, W):
    """Paste patch k at top-left paths[k][f] (None: absent) in frame f, later patches on top.
    Returns frames (T, H, W, 3) and per-frame ground truth (ids, boxes)."""
    T = len(paths[0])
    frames = np.full((T, H, W, 3), 90, np.uint8)
    gt = []
    for f in range(T):
        ids, bx = [], []
        for k, path in enumerate(paths):
            if path[f] is None:
                continue
            x, y = (int(round(v)) for v in path[f])
            h, w = images[k].shape[:2]
            frames[f, y:y + h, x:x + w] = images[k]
            ids.append(k)
            bx.append(boxes[k] + np.array([x, y, x, y]))
        gt.append((np.array(ids), np.array(bx, np.float64).reshape(-1, 4)))
    return frames, gt


def noisy(gt, rng, sigma=0.7, drop=()):
    """Detections from ground truth: Gaussian box noise; ``drop`` holds (frame, gt id) to miss."""
    out = []
    for f, (ids, bx) in enumerate(gt):
        keep = [k for k, i in enumerate(ids) if (f, int(i)) not in drop]
        out.append(bx[keep] + rng.normal(0, sigma, (len(keep), 4)))
    return out


def id_map(tracks, gt):
    """For each track, the ground-truth ids its detected boxes overlap best."""
    from facelab.faces.track import box_iou

    return {t.id: {int(gt[f][0][box_iou(b, gt[f][1])[0].argmax()]) for f, b in zip(t.frames, t.boxes)}
            for t in tracks}


def test_crossing_faces_keep_their_ids(patches):
    images, boxes = patches
    T, W = 20, 120
    xa = np.linspace(2, 90, T)
    paths = [[(x, 8) for x in xa], [(x, 10) for x in xa[::-1]]]          # face 1 passes in front of face 0
    frames, gt = composite(images, boxes, paths, 48, W)
    # the occluded face is missed while the two overlap heavily
    from facelab.faces.track import box_iou
    hidden = {(f, 0) for f in range(T) if box_iou(gt[f][1][0], gt[f][1][1])[0, 0] > 0.3}
    assert 2 <= len(hidden) <= 4
    dets = noisy(gt, np.random.default_rng(0), drop=hidden)
    for use_frames in (frames, None):   # appearance + motion, and motion alone
        tracks = track_faces(dets, use_frames)
        assert len(tracks) == 2
        assert id_map(tracks, gt) == {0: {0}, 1: {1}}
        m = clear_mot(gt, tracks_to_frames(tracks, T))
        assert m["idsw"] == 0 and m["fp"] == 0 and m["fn"] == len(hidden)
        assert m["mota"] == pytest.approx(1 - len(hidden) / (2 * T))
        m = clear_mot(gt, tracks_to_frames(tracks, T, interpolate=True))
        assert m["fn"] == 0 and m["mota"] == 1.0


def test_appearance_resolves_a_bounce_that_motion_gets_wrong(patches):
    # the faces meet, the back one is missed for 2 frames, then both turn back: the constant-
    # velocity prediction carries each track onto the other face; appearance pulls them back
    images, boxes = patches
    T = 16
    xa = np.concatenate([np.linspace(2, 40, 8), np.linspace(40, 2, 8)])
    xb = np.concatenate([np.linspace(84, 46, 8), np.linspace(46, 84, 8)])
    frames, gt = composite(images, boxes, [[(x, 8) for x in xa], [(x, 9) for x in xb]], 48, 120)
    dets = noisy(gt, np.random.default_rng(0), drop={(7, 0), (8, 0)})
    with_app = track_faces(dets, frames)
    motion_only = track_faces(dets)
    assert id_map(with_app, gt) == {0: {0}, 1: {1}}
    assert clear_mot(gt, tracks_to_frames(with_app, T))["idsw"] == 0
    assert clear_mot(gt, tracks_to_frames(motion_only, T))["idsw"] == 2


def test_face_missing_two_frames_keeps_its_id(patches):
    images, boxes = patches
    T = 14
    frames, gt = composite(images[:1], boxes[:1], [[(4 + 1.5 * f, 6) for f in range(T)]], 40, 64)
    dets = noisy(gt, np.random.default_rng(1), drop={(6, 0), (7, 0)})
    dets[6] = Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))
    tracks = track_faces(dets, frames)
    assert len(tracks) == 1 and len(tracks[0]) == T - 2 and 6 not in tracks[0].frames
    filled = tracks[0].box_at(7)
    assert np.abs(filled - gt[7][1][0]).max() < 3.0
    assert clear_mot(gt, tracks_to_frames(tracks, T, interpolate=True))["mota"] == 1.0
    # a tracker that forgets after one frame starts a new track: one ID switch
    tracks = track_faces(dets, frames, max_missed=1)
    assert len(tracks) == 2
    m = clear_mot(gt, tracks_to_frames(tracks, T))
    assert (m["idsw"], m["fn"]) == (1, 2) and m["mota"] == pytest.approx(1 - 3 / T)


def test_main_character_with_a_distractor():
    from facelab.synth.videos import videos

    v = videos(1, 16, 8, seed=0, size=64, distractors=1.0, n_events=2)
    assert v.has_distractor[0]
    main = np.concatenate([v.landmarks68[0].min(1), v.landmarks68[0].max(1)], -1)
    dis = np.concatenate([v.distractor_landmarks68[0].min(1), v.distractor_landmarks68[0].max(1)], -1)
    gt = [(np.array([0, 1]), np.stack([main[f], dis[f]])) for f in range(16)]
    # the distractor is detected only from frame 5 on (it "enters" late)
    dets = noisy(gt, np.random.default_rng(2), sigma=0.4, drop={(f, 1) for f in range(5)})
    tracks = track_faces(dets, v.frames[0])
    assert len(tracks) == 2
    m = main_track(tracks)
    assert len(m) == 16 and np.abs(np.asarray(m.boxes) - main).max() < 2.5
    assert clear_mot(gt, tracks_to_frames(tracks, 16))["idsw"] == 0
    crops, ids = crop_tube(v.frames[0], m, size=24)
    assert crops.shape == (16, 24, 24, 3) and list(ids) == list(range(16)) and crops.std() > 5


def test_main_track_ties_go_to_the_larger_face():
    small = Track(0, [0, 1, 2], [np.array([0, 0, 10, 10])] * 3, [1.0] * 3)
    big = Track(1, [0, 1, 2], [np.array([20, 0, 40, 20])] * 3, [1.0] * 3)
    long = Track(2, [0, 1, 2, 3], [np.array([50, 0, 55, 5])] * 4, [1.0] * 4)
    assert main_track([small, big]).id == 1
    assert main_track([small, big, long]).id == 2
    assert main_track([]) is None


def test_appearance_descriptor(patches):
    images, boxes = patches
    frames, gt = composite(images, boxes, [[(2, 2), (40, 30)], [(40, 2), (2, 30)]], 64, 80)
    a0, a1 = appearance(frames[0], gt[0][1][0]), appearance(frames[1], gt[1][1][0])   # face 0, moved
    b0 = appearance(frames[0], gt[0][1][1])                                            # face 1
    assert np.linalg.norm(a0) == pytest.approx(1.0, abs=1e-5)
    assert a0 @ a1 > 0.99 and a0 @ b0 < a0 @ a1
    assert not appearance(frames[0], [200, 200, 220, 220]).any()


def test_clear_mot_hand_case():
    A, B, far = [0, 0, 10, 10], [20, 0, 30, 10], [50, 50, 60, 60]
    gt = [([1, 2], [A, B])] * 4
    hyp = [([7, 8], [A, B]), ([7, 8], [A, B]),
           ([8, 7], [A, B]),          # both swap: 2 ID switches
           ([8, 9], [A, far])]        # B missed (FN), a false positive
    m = clear_mot(gt, hyp)
    assert (m["gt"], m["matches"], m["fn"], m["fp"], m["idsw"]) == (8, 7, 1, 1, 2)
    assert m["mota"] == pytest.approx(1 - 4 / 8) and m["motp"] == 1.0
    assert m["recall"] == pytest.approx(7 / 8) and m["precision"] == pytest.approx(7 / 8)


def test_clear_mot_keeps_a_valid_correspondence():
    gt = [([1], [[0, 0, 10, 10]])] * 2
    hyp = [([7], [[1, 0, 11, 10]]), ([7, 8], [[1, 0, 11, 10], [0, 0, 10, 10]])]   # 8 fits better but 7 still holds
    m = clear_mot(gt, hyp)
    assert (m["idsw"], m["fp"], m["fn"]) == (0, 1, 0)
    assert m["motp"] == pytest.approx(9 / 11)
    # a switch counts against the last match even across a gap
    m = clear_mot([([1], [[0, 0, 10, 10]])] * 3, [([7], [[0, 0, 10, 10]]), ([], []), ([8], [[0, 0, 10, 10]])])
    assert (m["idsw"], m["fn"], m["mota"]) == (1, 1, pytest.approx(1 / 3))


def test_greedy_method_and_bad_input():
    dets = [np.array([[0, 0, 10, 10, 0.9]]), np.array([[1, 0, 11, 10, 0.95], [40, 0, 50, 10, 0.2]])]
    tracks = track_faces(dets, method="greedy", min_score=0.5)
    assert len(tracks) == 1 and tracks[0].frames == [0, 1] and tracks[0].scores == [0.9, 0.95]
    with pytest.raises(ValueError, match="unknown method"):
        FaceTracker(method="sort")
    with pytest.raises(ValueError, match=r"\(n, 4\)"):
        track_faces([np.zeros((2, 3))])
    with pytest.raises(ValueError, match="frames but"):
        track_faces([np.zeros((0, 4))], frames=np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="ids but"):
        clear_mot([([1, 2], [[0, 0, 1, 1]])], [([], [])])
    calls = []
    out = detect_frames([np.zeros((8, 8, 3))] * 2, detector=lambda f, **k: calls.append(k) or np.zeros((0, 4)),
                        min_score=0.5)
    assert len(out) == 2 and calls == [{"min_score": 0.5}] * 2
