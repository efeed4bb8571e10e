"""Main-character face tracking: link per-frame face detections into tracks, pick the main
character, crop its face tube, and score tracking against exact boxes.

This is the "dynamic face-tracking" front end of FaceTrack-MM (Zhao et al., arXiv 2501.07978)
as its summaries describe it (detect in every frame, link across frames, keep the main
character); the paper gives no algorithm, so the choices here are ours:

* **Association.** Each frame, live tracks are matched to detections one-to-one (Hungarian by
  default, or greedy) on an affinity ``(1 - w) * IoU + w * appearance``, where IoU is taken
  with the track's box *predicted* by a constant-velocity model (so crossing faces keep their
  course) and appearance is the cosine similarity, clipped to [0, 1], of a small descriptor
  (an 8 x 8 zero-mean grey patch and a 16-bin grey histogram) against the track's running
  mean descriptor; w = 0.4 by default. Pairs whose centres are farther apart than ``max_dist``
  box sizes, or whose affinity is below ``min_affinity``, are never matched. Without frames,
  ``w`` is 0. Appearance rescues a track whose motion prediction lands on the other face
  (two faces that meet and turn back), but only when the boxes overlap moderately: with
  heavy overlap IoU still wins.
* **Missed detections.** A track without a detection stays alive for ``max_missed`` frames
  (its prediction keeps moving), so a face lost for a frame or two keeps its ID; gaps can be
  filled by linear interpolation (:meth:`Track.box_at`, :func:`tracks_to_frames`).
* **Main character.** The track with the most detections; ties go to the larger mean box area.
* **Quality.** :func:`clear_mot` computes CLEAR-MOT counts against ground-truth boxes with
  IDs: a hypothesis matches a ground-truth box at IoU >= 0.5 (a match of the previous frame
  is kept while it stays above the threshold, the rest are assigned by Hungarian on IoU); an
  ID switch is a ground-truth object matched to another track ID than at its previous match;
  MOTA = 1 - (FN + FP + IDSW) / GT.

Detections per frame may be :class:`facelab.faces.detect.Detections`, an (n, 4) box array
(x0, y0, x1, y1 pixels) or an (n, 5) array with a score column.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from ..boxes import box_iou

__all__ = ["Track", "FaceTracker", "track_faces", "main_track", "appearance", "box_iou", "tracks_to_frames",
           "crop_tube", "clear_mot", "detect_frames"]


def _grey(frame: np.ndarray) -> np.ndarray:
    f = np.asarray(frame)
    if f.ndim == 3:
        f = f[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    elif f.ndim != 2:
        raise ValueError(f"expected an (H, W) or (H, W, 3) frame, got shape {f.shape}")
    f = f.astype(np.float32)
    return f * 255.0 if f.size and f.max() <= 1.0 else f


def appearance(frame, box, *, size: int = 8, bins: int = 16) -> np.ndarray:
    """A unit-norm appearance descriptor of ``box`` in ``frame``: a ``size`` x ``size`` grey
    patch (zero mean, unit norm) and a ``bins``-bin grey histogram (square-rooted, unit norm),
    concatenated and scaled by 1/sqrt(2). Zeros for a box outside the frame."""
    return _appearance(_grey(frame), box, size, bins)


def _appearance(g: np.ndarray, box, size: int = 8, bins: int = 16) -> np.ndarray:
    H, W = g.shape
    x0, y0, x1, y1 = np.asarray(box, np.float64).reshape(4)
    c0, r0 = int(np.clip(np.floor(x0), 0, W)), int(np.clip(np.floor(y0), 0, H))
    c1, r1 = int(np.clip(np.ceil(x1), 0, W)), int(np.clip(np.ceil(y1), 0, H))
    out = np.zeros(size * size + bins, np.float32)
    if c1 - c0 < 1 or r1 - r0 < 1:
        return out
    crop = g[r0:r1, c0:c1]
    rows = np.minimum((np.arange(size) + 0.5) * crop.shape[0] / size, crop.shape[0] - 1).astype(int)
    cols = np.minimum((np.arange(size) + 0.5) * crop.shape[1] / size, crop.shape[1] - 1).astype(int)
    p = crop[np.ix_(rows, cols)].ravel()
    p = p - p.mean()
    n = np.linalg.norm(p)
    if n > 0:
        out[:size * size] = p / n
    h = np.sqrt(np.histogram(crop, bins=bins, range=(0.0, 256.0))[0].astype(np.float32))
    out[size * size:] = h / max(np.linalg.norm(h), 1e-12)
    return out / np.sqrt(2.0)


def _as_dets(d) -> tuple[np.ndarray, np.ndarray]:
    """One frame's detections -> boxes (n, 4), scores (n,)."""
    if hasattr(d, "boxes") and hasattr(d, "scores"):
        b, s = np.asarray(d.boxes, np.float64).reshape(-1, 4), np.asarray(d.scores, np.float64).reshape(-1)
    else:
        a = np.asarray(d if d is not None else np.zeros((0, 4)), np.float64)
        if a.size == 0:
            a = a.reshape(0, 4)
        if a.ndim != 2 or a.shape[1] not in (4, 5):
            raise ValueError(f"detections of a frame must be (n, 4) boxes or (n, 5) boxes + score, got {a.shape}")
        b, s = a[:, :4], (a[:, 4] if a.shape[1] == 5 else np.ones(len(a)))
    if len(b) != len(s):
        raise ValueError(f"{len(b)} boxes but {len(s)} scores")
    if len(b) and ((b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])).any():
        raise ValueError("boxes must be x0, y0, x1, y1 with x1 >= x0 and y1 >= y0")
    return b, s


@dataclass
class Track:
    """A face track: the frames where it was detected (ascending), its boxes and scores there."""

    id: int
    frames: list = field(default_factory=list)
    boxes: list = field(default_factory=list)
    scores: list = field(default_factory=list)
    feature: np.ndarray | None = None      # running mean appearance descriptor
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # centre shift per frame
    missed: int = 0                         # frames since the last detection

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def first(self) -> int:
        return self.frames[0]

    @property
    def last(self) -> int:
        return self.frames[-1]

    @property
    def mean_area(self) -> float:
        b = np.asarray(self.boxes, np.float64).reshape(-1, 4)
        return float(((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).mean()) if len(b) else 0.0

    def predict(self, frame: int) -> np.ndarray:
        """The last box moved by the velocity to ``frame``."""
        b = np.asarray(self.boxes[-1], np.float64)
        d = self.velocity * (frame - self.last)
        return b + np.array([d[0], d[1], d[0], d[1]])

    def box_at(self, frame: int, interpolate: bool = True) -> np.ndarray | None:
        """The box at ``frame``: detected, linearly interpolated inside a gap (``interpolate``),
        or None outside the track's span."""
        if frame in self.frames:
            return np.asarray(self.boxes[self.frames.index(frame)], np.float64)
        if not interpolate or not self.frames or frame < self.first or frame > self.last:
            return None
        k = int(np.searchsorted(self.frames, frame))
        f0, f1 = self.frames[k - 1], self.frames[k]
        u = (frame - f0) / (f1 - f0)
        return (1 - u) * np.asarray(self.boxes[k - 1], np.float64) + u * np.asarray(self.boxes[k], np.float64)


def _centre(b: np.ndarray) -> np.ndarray:
    return np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])


class FaceTracker:
    """Online tracker: call :meth:`update` once per frame, then read :attr:`tracks`.

    appearance_weight: w of the affinity (0 ignores appearance; it is also 0 for frames not
    given). max_missed: frames a track survives without a detection. max_dist: gate on the
    distance of predicted and detected centres, in units of the track's box size (sqrt area;
    it grows by half a unit per missed frame). min_affinity: smallest affinity to match.
    min_score: detections below it are ignored. method: "hungarian" or "greedy".
    """

    def __init__(self, *, appearance_weight: float = 0.4, max_missed: int = 3, max_dist: float = 0.75,
                 min_affinity: float = 0.2, min_score: float = 0.0, method: str = "hungarian",
                 feature_momentum: float = 0.7, velocity_momentum: float = 0.5):
        if method not in ("hungarian", "greedy"):
            raise ValueError(f"unknown method {method!r}: expected 'hungarian' or 'greedy'")
        if not 0 <= appearance_weight <= 1:
            raise ValueError(f"appearance_weight must be in [0, 1], got {appearance_weight}")
        if max_missed < 0 or max_dist <= 0:
            raise ValueError("need max_missed >= 0 and max_dist > 0")
        self.w, self.max_missed, self.max_dist = float(appearance_weight), int(max_missed), float(max_dist)
        self.min_affinity, self.min_score, self.method = float(min_affinity), float(min_score), method
        self.fm, self.vm = float(feature_momentum), float(velocity_momentum)
        self.tracks: list[Track] = []
        self.frame = -1

    def _alive(self) -> list[Track]:
        return [t for t in self.tracks if t.missed <= self.max_missed]

    def affinity(self, tracks: list[Track], boxes: np.ndarray, feats: np.ndarray | None) -> np.ndarray:
        """(n_tracks, n_dets) affinities at the current frame; -inf where gated out."""
        if not tracks or not len(boxes):
            return np.zeros((len(tracks), len(boxes)))
        pred = np.stack([t.predict(self.frame) for t in tracks])
        iou = box_iou(pred, boxes)
        aff = iou.copy()
        if feats is not None and self.w > 0:
            tf = np.stack([t.feature if t.feature is not None else np.zeros(feats.shape[1]) for t in tracks])
            app = np.clip(tf @ feats.T, 0, 1)
            aff = (1 - self.w) * iou + self.w * app
        pc = (pred[:, :2] + pred[:, 2:]) / 2
        dc = (boxes[:, :2] + boxes[:, 2:]) / 2
        dist = np.linalg.norm(pc[:, None] - dc[None], axis=-1)
        scale = np.sqrt(np.clip((pred[:, 2] - pred[:, 0]) * (pred[:, 3] - pred[:, 1]), 1e-6, None))
        missed = np.array([self.frame - t.last - 1 for t in tracks], np.float64)
        gate = dist <= (self.max_dist * (1 + 0.5 * missed) * scale)[:, None]
        return np.where(gate & (aff >= self.min_affinity), aff, -np.inf)

    def _assign(self, aff: np.ndarray) -> list[tuple[int, int]]:
        ok = np.isfinite(aff)
        if not ok.any():
            return []
        if self.method == "greedy":
            pairs, used_t, used_d = [], set(), set()
            for flat in np.argsort(-np.where(ok, aff, -1e9), axis=None, kind="stable"):
                i, j = np.unravel_index(flat, aff.shape)
                if not ok[i, j]:
                    break
                if i not in used_t and j not in used_d:
                    pairs.append((int(i), int(j)))
                    used_t.add(i)
                    used_d.add(j)
            return pairs
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(np.where(ok, -aff, 1e6))
        return [(int(i), int(j)) for i, j in zip(rows, cols) if ok[i, j]]

    def update(self, detections, frame=None) -> list[tuple[int, np.ndarray]]:
        """Add one frame's detections (and optionally the frame, for appearance). Returns the
        (track id, box) pairs detected in this frame."""
        self.frame += 1
        boxes, scores = _as_dets(detections)
        keep = scores >= self.min_score
        boxes, scores = boxes[keep], scores[keep]
        feats = None
        if frame is not None and self.w > 0:
            g = _grey(frame)
            feats = np.stack([_appearance(g, b) for b in boxes]) if len(boxes) else np.zeros((0, 80), np.float32)
        alive = self._alive()
        pairs = self._assign(self.affinity(alive, boxes, feats))
        out, matched = [], set()
        for i, j in pairs:
            t = alive[i]
            gap = self.frame - t.last
            step = (_centre(boxes[j]) - _centre(np.asarray(t.boxes[-1]))) / gap
            t.velocity = step if len(t) == 1 else self.vm * t.velocity + (1 - self.vm) * step
            self._add(t, boxes[j], scores[j], None if feats is None else feats[j])
            matched.add(j)
            out.append((t.id, boxes[j]))
        for t in alive:
            t.missed = self.frame - t.last
        for j in range(len(boxes)):
            if j not in matched:
                t = Track(len(self.tracks))
                self._add(t, boxes[j], scores[j], None if feats is None else feats[j])
                self.tracks.append(t)
                out.append((t.id, boxes[j]))
        return sorted(out, key=lambda x: x[0])

    def _add(self, t: Track, box, score, feat) -> None:
        t.frames.append(self.frame)
        t.boxes.append(np.asarray(box, np.float64).copy())
        t.scores.append(float(score))
        t.missed = 0
        if feat is not None:
            f = feat if t.feature is None else self.fm * t.feature + (1 - self.fm) * feat
            n = np.linalg.norm(f)
            t.feature = f / n if n > 0 else f


def track_faces(detections: Sequence, frames=None, **kwargs) -> list[Track]:
    """Link per-frame ``detections`` (one entry per frame) into tracks; ``frames`` (T, H, W, 3)
    or a list of frames adds the appearance cue. ``kwargs`` go to :class:`FaceTracker`.
    Returns all tracks, by id (order of first appearance)."""
    dets = list(detections)
    if frames is not None and len(frames) != len(dets):
        raise ValueError(f"{len(frames)} frames but {len(dets)} detection lists")
    tr = FaceTracker(**kwargs)
    for k, d in enumerate(dets):
        tr.update(d, None if frames is None else frames[k])
    return tr.tracks


def main_track(tracks: Sequence[Track]) -> Track | None:
    """The main character: most detections, then the largest mean box area (then the lower id)."""
    tracks = [t for t in tracks if len(t)]
    if not tracks:
        return None
    return max(tracks, key=lambda t: (len(t), t.mean_area, -t.id))


def tracks_to_frames(tracks: Sequence[Track], n_frames: int, *, interpolate: bool = False
                     ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per-frame (ids (k,), boxes (k, 4)) of the tracks; ``interpolate`` fills gaps inside a track."""
    out = []
    for f in range(int(n_frames)):
        ids, boxes = [], []
        for t in tracks:
            b = t.box_at(f, interpolate)
            if b is not None:
                ids.append(t.id)
                boxes.append(b)
        out.append((np.asarray(ids, np.int64), np.asarray(boxes, np.float64).reshape(-1, 4)))
    return out


def crop_tube(frames, track: Track, *, size: int = 32, margin: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """The face tube of ``track``: square crops (nearest-neighbour, ``size`` pixels, the box
    widened by ``margin`` of its longer side each way, zero padding outside the frame) for
    every frame of its span, gaps interpolated. Returns (crops (n, size, size, C), frame ids)."""
    frames = np.asarray(frames)
    if not len(track):
        raise ValueError("the track is empty")
    ids = np.arange(track.first, track.last + 1)
    crops = np.zeros((len(ids), size, size) + frames.shape[3:], frames.dtype)
    H, W = frames.shape[1:3]
    for k, f in enumerate(ids):
        x0, y0, x1, y1 = track.box_at(int(f))
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        half = max(x1 - x0, y1 - y0) * (0.5 + margin)
        u = cx - half + (np.arange(size) + 0.5) * (2 * half / size)
        v = cy - half + (np.arange(size) + 0.5) * (2 * half / size)
        cols, rows = np.floor(u).astype(int), np.floor(v).astype(int)
        okc, okr = (cols >= 0) & (cols < W), (rows >= 0) & (rows < H)
        patch = frames[f][np.ix_(np.clip(rows, 0, H - 1), np.clip(cols, 0, W - 1))]
        patch[~okr] = 0
        patch[:, ~okc] = 0
        crops[k] = patch
    return crops, ids


def _frames_arg(x, name: str) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for f, item in enumerate(x):
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise ValueError(f"{name}[{f}] must be an (ids, boxes) pair, got {type(item).__name__}")
        ids = np.asarray(item[0]).reshape(-1)
        boxes = np.asarray(item[1], np.float64).reshape(-1, 4)
        if len(ids) != len(boxes):
            raise ValueError(f"{name}[{f}]: {len(ids)} ids but {len(boxes)} boxes")
        if len(set(ids.tolist())) != len(ids):
            raise ValueError(f"{name}[{f}]: an id appears twice in one frame")
        out.append((ids, boxes))
    return out


def clear_mot(ground_truth: Sequence, hypotheses: Sequence, *, iou_thr: float = 0.5) -> dict:
    """CLEAR-MOT counts of ``hypotheses`` against ``ground_truth``, both per frame
    ``(ids (k,), boxes (k, 4))`` over the same frames (see :func:`tracks_to_frames`).

    Returns gt, matches, fn, fp, idsw, mota = 1 - (fn + fp + idsw) / gt, motp (mean IoU of
    matches), recall, precision.
    """
    gt, hyp = _frames_arg(ground_truth, "ground_truth"), _frames_arg(hypotheses, "hypotheses")
    if len(gt) != len(hyp):
        raise ValueError(f"{len(gt)} ground-truth frames but {len(hyp)} hypothesis frames")
    from scipy.optimize import linear_sum_assignment

    last_match: dict = {}   # gt id -> hyp id of its latest match
    prev: dict = {}         # gt id -> hyp id matched in the previous frame
    n_gt = n_match = fn = fp = idsw = 0
    iou_sum = 0.0
    for (gi, gb), (hi, hb) in zip(gt, hyp):
        n_gt += len(gi)
        iou = box_iou(gb, hb) if len(gi) and len(hi) else np.zeros((len(gi), len(hi)))
        pairs = []
        used_g, used_h = set(), set()
        hpos = {h: k for k, h in enumerate(hi.tolist())}
        for a, g in enumerate(gi.tolist()):      # keep last frame's correspondences that still hold
            h = prev.get(g)
            if h in hpos and iou[a, hpos[h]] >= iou_thr and hpos[h] not in used_h:
                pairs.append((a, hpos[h]))
                used_g.add(a)
                used_h.add(hpos[h])
        rg = [a for a in range(len(gi)) if a not in used_g]
        rh = [b for b in range(len(hi)) if b not in used_h]
        if rg and rh:
            sub = iou[np.ix_(rg, rh)]
            rows, cols = linear_sum_assignment(-sub)
            pairs += [(rg[r], rh[c]) for r, c in zip(rows, cols) if sub[r, c] >= iou_thr]
        cur = {}
        for a, b in pairs:
            g, h = gi[a].item(), hi[b].item()
            if g in last_match and last_match[g] != h:
                idsw += 1
            last_match[g] = h
            cur[g] = h
            iou_sum += iou[a, b]
        prev = cur
        n_match += len(pairs)
        fn += len(gi) - len(pairs)
        fp += len(hi) - len(pairs)
    return {"gt": n_gt, "matches": n_match, "fn": fn, "fp": fp, "idsw": idsw,
            "mota": 1 - (fn + fp + idsw) / n_gt if n_gt else float("nan"),
            "motp": iou_sum / n_match if n_match else float("nan"),
            "recall": n_match / n_gt if n_gt else float("nan"),
            "precision": n_match / (n_match + fp) if n_match + fp else float("nan")}


def detect_frames(frames, detector: Callable | None = None, **kwargs) -> list:
    """Run a face detector on every frame (default :func:`facelab.faces.detect.detect`, MTCNN;
    ``kwargs`` go to it). Returns one detections object per frame, ready for :func:`track_faces`."""
    if detector is None:
        from .detect import detect as detector
    return [detector(f, **kwargs) for f in frames]
