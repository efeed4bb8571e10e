"""Face videos in a wider scene: a main character, an optional smaller distractor, exact boxes,
and an FEC-Bench-style caption of the main character's facial events.

:func:`facelab.synth.videos` renders one or two faces filling a small square. Face-video
captioning (FaceTrack-MM, arXiv 2501.07978) is about the opposite case: the face is a small
part of a larger frame, other people may be in view, and the model must describe what *the
main character's* face does. :func:`scene_videos` builds that case from two
:func:`~facelab.synth.videos` batches:

* the main character is rendered at ``main_size`` pixels and pasted into a ``canvas`` x
  ``canvas`` frame (a smooth random background) through a feathered elliptical mask around
  its face; the tile drifts slowly across the frame;
* with probability ``distractors`` a second, smaller face (``distractor_size``) is pasted on
  the other side, doing its own facial and head events; with probability ``late_entry`` it
  only appears part-way through the clip. The main character is therefore both the *largest*
  and the *longest-present* face, the two rules a tracker uses to pick it;
* exact face boxes (the 68 landmarks' extent, moved with the paste) come per frame and face
  (``boxes[:, :, 0]`` the main character, ``[:, :, 1]`` the distractor, NaN where absent);
* the caption is written from the main character's exact events in the FEC-Bench template
  (:func:`facelab.metrics_fec.fec_caption`): an appearance sentence from its identity (age,
  skin tone, hair), then "At the beginning, ...", "As the video progresses, ...", "In the
  middle, ...", "Towards the end, ..." in event order. Blinks are switched off so that every
  caption event is a deliberate facial action.

Identities are drawn afresh for every seed, so two batches with different seeds never share a
person (held-out identities by construction).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..metrics_fec import fec_caption
from . import identity as I
from .videos import ACTIONS, videos

__all__ = ["SceneClips", "scene_videos", "appearance_sentence", "time_keys", "FACIAL_ACTIONS"]

#: The facial actions (no head gestures): what the main character does in the captions.
FACIAL_ACTIONS = tuple(ACTIONS)
_HAIR_WORDS = ("black", "dark brown", "brown", "blond", "red")


@dataclass
class SceneClips:
    """n clips of T frames. ``boxes`` (n, T, 2, 4) x0, y0, x1, y1 of the main character (0) and
    the distractor (1), NaN where absent; ``present`` (n, T, 2) bool."""

    frames: np.ndarray          # (n, T, H, W, 3) uint8
    boxes: np.ndarray           # (n, T, 2, 4) float32
    present: np.ndarray         # (n, T, 2) bool
    has_distractor: np.ndarray  # (n,) bool
    captions: list              # n FEC-style captions of the main character
    appearance: list            # n appearance sentences
    events: list                # n lists of the main character's event dicts (with a "time" key)
    distractor_events: list     # n lists (empty without a distractor)
    aus: np.ndarray             # (n, T, 20) the main character's AUs
    fps: float = 8.0
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frames)


def appearance_sentence(ident: dict, i: int) -> str:
    """"A young person with light skin and brown hair" from identity ``i`` of ``ident``."""
    age = float(ident["age"][i])
    age_w = "young" if age < 30 else "middle-aged" if age < 50 else "older"
    skin = I.skin_word(float(ident["tone"][i]))
    if float(ident["has_hair"][i]) < 0.5:
        hair = "no hair"
    else:
        d = np.linalg.norm(I.HAIR_ANCHORS - np.asarray(ident["hair_rgb"][i])[None], axis=1)
        hair = f"{_HAIR_WORDS[int(np.argmin(d))]} hair"
    article = "An" if age_w[0] in "aeiou" else "A"
    return f"{article} {age_w} person with {skin} skin and {hair}"


def time_keys(k: int) -> list[str]:
    """The template's time phrase keys for ``k`` events in order (beginning ... end)."""
    table = {1: ["beginning"], 2: ["beginning", "end"], 3: ["beginning", "middle", "end"],
             4: ["beginning", "progress", "middle", "end"]}
    if k in table:
        return table[k]
    # more events: spread the four phrases, keeping the order
    return [("beginning", "progress", "middle", "end")[min(3, int(4 * j / k))] for j in range(k)]


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth random background: a two-colour gradient plus low-frequency blotches."""
    c0, c1 = rng.uniform(0.15, 0.85, 3), rng.uniform(0.15, 0.85, 3)
    ang = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size] / max(1, size - 1)
    u = np.clip(0.5 + (xx - 0.5) * np.cos(ang) + (yy - 0.5) * np.sin(ang), 0, 1)[..., None]
    img = c0 * (1 - u) + c1 * u
    for _ in range(3):
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.15, 0.4)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))[..., None]
        img = img * (1 - 0.35 * blob) + 0.35 * blob * rng.uniform(0.1, 0.9, 3)
    return (np.clip(img, 0, 1) * 255).astype(np.float32)


def _boxes_from_landmarks(lm68: np.ndarray) -> np.ndarray:
    """(..., 68, 2) -> (..., 4) extent of the landmarks, raised by 12% of its height (forehead)."""
    x0, y0 = lm68[..., 0].min(-1), lm68[..., 1].min(-1)
    x1, y1 = lm68[..., 0].max(-1), lm68[..., 1].max(-1)
    return np.stack([x0, y0 - 0.12 * (y1 - y0), x1, y1], -1)


def _paste(canvas: np.ndarray, tile: np.ndarray, box: np.ndarray, x0: int, y0: int) -> None:
    """Blend ``tile`` into ``canvas`` at (x0, y0) through a feathered ellipse around ``box`` (tile px)."""
    h, w = tile.shape[:2]
    H, W = canvas.shape[:2]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    ax, ay = 0.62 * (box[2] - box[0]) + 1.0, 0.62 * (box[3] - box[1]) + 1.0
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    r = np.sqrt(((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2)
    alpha = np.clip((1.05 - r) / 0.25, 0, 1)[..., None]
    a0, b0 = max(0, -y0), max(0, -x0)
    a1, b1 = min(h, H - y0), min(w, W - x0)
    if a1 <= a0 or b1 <= b0:
        return
    dst = canvas[y0 + a0:y0 + a1, x0 + b0:x0 + b1]
    al = alpha[a0:a1, b0:b1]
    dst[:] = dst * (1 - al) + tile[a0:a1, b0:b1].astype(np.float32) * al


def scene_videos(n: int, frames: int = 17, fps: float = 8.0, seed: int = 0, *, canvas: int = 96,
                 main_size: int = 48, distractor_size: int = 32, distractors: float = 1.0,
                 late_entry: float = 0.3, n_events: int = 3, actions=FACIAL_ACTIONS, drift: float = 0.12,
                 intensity=(0.7, 1.0), head_motion: float = 0.03, supersample: int = 1) -> SceneClips:
    """``n`` scene clips (see the module docstring). Deterministic for ``seed``.

    ``drift``: how far (fraction of the canvas) each face may travel over the clip.
    ``n_events``: the main character's events per clip (the distractor has its own two).
    """
    if not (isinstance(n, (int, np.integer)) and n >= 1):
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not (main_size <= canvas // 2 + main_size // 2 and distractor_size < main_size):
        raise ValueError(f"need distractor_size < main_size <= canvas / 2 + main_size / 2, got "
                         f"{distractor_size}, {main_size}, {canvas}")
    if not 0 <= distractors <= 1 or not 0 <= late_entry <= 1:
        raise ValueError("distractors and late_entry are probabilities in [0, 1]")
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, 2**31 - 1, 2)
    T = int(frames)
    main = videos(n, T, fps, int(seeds[0]), size=main_size, actions=actions, n_events=n_events, blink_rate=0.0,
                  head_motion=head_motion, backgrounds="plain", intensity=intensity, supersample=supersample)
    dis = videos(n, T, fps, int(seeds[1]), size=distractor_size, n_events=2, blink_rate=0.0,
                 head_motion=head_motion, backgrounds="plain", intensity=intensity, supersample=supersample)
    has_d = rng.random(n) < distractors
    out = np.zeros((n, T, canvas, canvas, 3), np.uint8)
    boxes = np.full((n, T, 2, 4), np.nan, np.float32)
    present = np.zeros((n, T, 2), bool)
    m_boxes = _boxes_from_landmarks(main.landmarks68)        # (n, T, 4) tile pixels
    d_boxes = _boxes_from_landmarks(dis.landmarks68)
    u = np.linspace(0, 1, T)
    captions, apps, evs, devs = [], [], [], []
    for i in range(n):
        left = rng.random() < 0.5                           # the main character's side
        half = canvas // 2
        # main tile: its centre in its half, the distractor's in the other; both drift
        mx0 = rng.uniform(half * 0.5, half * 0.75) if left else rng.uniform(half * 1.25, half * 1.5)
        dx0 = rng.uniform(half * 1.35, half * 1.6) if left else rng.uniform(half * 0.4, half * 0.65)
        my0, dy0 = rng.uniform(0.4, 0.6) * canvas, rng.uniform(0.3, 0.7) * canvas
        mv = rng.uniform(-1, 1, 2) * drift * canvas
        dv = rng.uniform(-1, 1, 2) * drift * canvas
        start = int(rng.integers(T // 4, T // 2 + 1)) if (has_d[i] and rng.random() < late_entry) else 0
        bg = _background(rng, canvas)
        for t in range(T):
            img = bg.copy()
            if has_d[i] and t >= start:
                cx, cy = dx0 + dv[0] * u[t], dy0 + dv[1] * u[t]
                x0, y0 = int(round(cx - distractor_size / 2)), int(round(cy - distractor_size / 2))
                _paste(img, dis.frames[i, t], d_boxes[i, t], x0, y0)
                boxes[i, t, 1] = d_boxes[i, t] + np.array([x0, y0, x0, y0])
                present[i, t, 1] = True
            cx, cy = mx0 + mv[0] * u[t], my0 + mv[1] * u[t]
            x0, y0 = int(round(cx - main_size / 2)), int(round(cy - main_size / 2))
            _paste(img, main.frames[i, t], m_boxes[i, t], x0, y0)
            boxes[i, t, 0] = m_boxes[i, t] + np.array([x0, y0, x0, y0])
            present[i, t, 0] = True
            out[i, t] = np.clip(img + 0.5, 0, 255).astype(np.uint8)
        ev = [dict(e) for e in main.events[i] if e["action"] != "blink"]
        for e, key in zip(ev, time_keys(len(ev))):
            e["time"] = key
        app = appearance_sentence(main.identity, i)
        captions.append(fec_caption(app, [(e["time"], f"the person {e['event']}") for e in ev]))
        apps.append(app)
        evs.append(ev)
        devs.append([dict(e) for e in dis.events[i]] if has_d[i] else [])
    np.clip(boxes, -canvas, 2 * canvas, out=boxes)
    return SceneClips(frames=out, boxes=boxes, present=present, has_distractor=has_d, captions=captions,
                      appearance=apps, events=evs, distractor_events=devs, aus=main.aus, fps=float(fps),
                      meta={"seed": seed, "canvas": canvas, "main_size": main_size,
                            "distractor_size": distractor_size, "actions": list(actions)})


def frame_action_labels(clips: SceneClips, actions=None, *, min_au: float = 0.6) -> np.ndarray:
    """(n, T) int64 per-frame labels of the main character: 0 for no action, ``k + 1`` for
    ``actions[k]`` while one of its events is visibly on (some AU above ``min_au``)."""
    actions = list(clips.meta["actions"] if actions is None else actions)
    n, T = clips.aus.shape[:2]
    out = np.zeros((n, T), np.int64)
    for i, evs in enumerate(clips.events):
        for e in evs:
            if e["action"] not in actions:
                raise ValueError(f"clip {i}: action {e['action']!r} is not among {actions}")
            for f in range(max(0, e["frame_start"]), e["frame_end"] + 1):
                if clips.aus[i, f].max() > min_au:
                    out[i, f] = actions.index(e["action"]) + 1
    return out


__all__.append("frame_action_labels")
