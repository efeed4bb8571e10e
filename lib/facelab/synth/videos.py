"""Synthetic face videos with timed facial events and captions written from them.

Each video shows one identity (optionally a second, "distractor" face beside it) whose AUs
follow a chain of events, each with an onset (smooth rise from ``t_start`` to ``t_apex``),
an apex (held until ``t_apex_end``) and an offset (smooth fall to 0 at ``t_end``). Events of
all faces in a video follow one another without overlapping, so their order is unambiguous;
blinks (AU43) come at random times on top of them, and the head drifts slowly and may nod,
shake or tilt as events of its own. Outside every event all AUs are exactly 0.

The caption is written from the events in time order, e.g.
"The person raises their eyebrows, then smiles broadly while blinking twice, then nods."
With a distractor, subjects are named by position ("the person on the left").
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import mesh as _mesh
from . import expressions as E
from . import identity as I
from .generators import _background_ids
from .sequences import (AU, apply_blinks, blink_times, check_common, head_drift, light_for, profile,
                        render_sequences)

#: Facial actions: AU apex intensities, the caption phrase, and the phrase at high intensity.
ACTIONS = {
    "smile": ({"AU06": 1.8, "AU12": 2.6, "AU25": 0.6}, "smiles", "smiles broadly"),
    "brow_raise": ({"AU01": 3.2, "AU02": 3.2}, "raises their eyebrows", "raises their eyebrows high"),
    "frown": ({"AU04": 2.6, "AU07": 1.2}, "frowns", "frowns deeply"),
    "surprise": ({"AU01": 3.0, "AU02": 3.0, "AU05": 1.3, "AU25": 1.5, "AU26": 2.0}, "looks surprised",
                 "looks very surprised"),
    "mouth_open": ({"AU25": 2.0, "AU26": 2.3}, "opens their mouth", "opens their mouth wide"),
    "lip_press": ({"AU23": 2.2, "AU24": 2.0}, "presses their lips together", "presses their lips tightly together"),
    "nose_wrinkle": ({"AU09": 1.0, "AU10": 2.2}, "wrinkles their nose", "wrinkles their nose hard"),
    "sad": ({"AU01": 2.8, "AU04": 1.8, "AU15": 1.4, "AU17": 0.8}, "looks sad", "looks very sad"),
}
#: Head gestures: pose axis (0 pitch, 1 yaw, 2 roll), oscillation cycles (0: a held tilt),
#: amplitude (radians) and the caption phrase.
HEAD_ACTIONS = {
    "nod": (0, 2, 0.14, "nods"),
    "shake": (1, 2, 0.2, "shakes their head"),
    "tilt": (2, 0, 0.2, "tilts their head"),
}
DEFAULT_ACTIONS = tuple(ACTIONS) + ("nod", "shake")
_COUNT = {1: "once", 2: "twice", 3: "three times", 4: "four times"}


def _action_table(actions) -> dict:
    """Resolve action names: keys of ACTIONS / HEAD_ACTIONS or expression names (faces())."""
    names = DEFAULT_ACTIONS if actions is None else ([actions] if isinstance(actions, str) else list(actions))
    if not names:
        raise ValueError("actions is empty: expected at least one action name")
    table = {}
    for a in names:
        if a in ACTIONS:
            aus, ph, strong = ACTIONS[a]
            table[a] = ("face", np.array([aus.get(k, 0.0) for k in _mesh.AU_NAMES], np.float32), ph, strong)
        elif a in HEAD_ACTIONS:
            table[a] = ("head",) + HEAD_ACTIONS[a]
        elif isinstance(a, str) and a in E.ALL_EXPRESSIONS and a != "neutral":
            words = a.replace("_", " ")
            art = "an" if words[0] in "aeiou" else "a"
            table[a] = ("face", E.prototype(a), f"shows {art} {words} expression",
                        f"shows a strong {words} expression")
        else:
            raise ValueError(f"unknown action {a!r}: expected one of {', '.join(ACTIONS)}, "
                             f"{', '.join(HEAD_ACTIONS)} or an expression name ({', '.join(E.ALL_EXPRESSIONS[1:])})")
    return table


@dataclass
class VideoBatch:
    """n videos of T frames. Frame j is at ``times[j] = j / fps`` seconds. ``aus``, ``pose``
    and ``landmarks68`` are the main subject's; ``distractor_*`` the second face's (zeros /
    NaN landmarks where ``has_distractor`` is False)."""

    frames: np.ndarray               # (n, T, H, W, 3) uint8
    aus: np.ndarray                  # (n, T, 20) float32, mesh.AU_NAMES order
    pose: np.ndarray                 # (n, T, 3) pitch, yaw, roll radians
    landmarks68: np.ndarray          # (n, T, 68, 2) pixels
    landmarks468: np.ndarray         # (n, T, 468, 2)
    events: list                     # n lists of event dicts, ordered by t_start
    captions: list                   # n strings
    subjects: list                   # n names of the main subject ("the person", "the person on the left")
    has_distractor: np.ndarray       # (n,) bool
    distractor_aus: np.ndarray       # (n, T, 20)
    distractor_pose: np.ndarray      # (n, T, 3)
    distractor_landmarks68: np.ndarray  # (n, T, 68, 2), NaN where absent
    identity: dict                   # main subjects' identities (first axis n)
    fps: float = 25.0
    times: np.ndarray = None         # (T,)
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frames)


def _schedule(n_events: int | None, duration: float, fps: float, rng: np.random.Generator) -> list[tuple]:
    """Non-overlapping event windows (t_start, t_end) covering the video with gaps between."""
    min_dur = 4.0 / fps                      # onset ~1.4, apex >= 1, offset ~1.6 frame intervals
    min_gap = 1.0 / fps
    k_max = int((duration - min_gap) // (min_dur + min_gap))
    if k_max < 1:
        raise ValueError(f"a video of {duration:.2f} s at {fps} fps is too short for one event: need at least "
                         f"{int(np.ceil((min_dur + 2 * min_gap) * fps)) + 1} frames")
    if n_events is None:
        k = int(rng.integers(max(1, min(k_max, int(duration / 2.2))), max(1, min(k_max, int(duration / 1.1))) + 1))
    else:
        if not isinstance(n_events, (int, np.integer)) or n_events < 1:
            raise ValueError(f"n_events must be a positive int or None, got {n_events!r}")
        if n_events > k_max:
            raise ValueError(f"{n_events} events do not fit in {duration:.2f} s at {fps} fps (at most {k_max})")
        k = int(n_events)
    d = rng.uniform(1.0, 2.0, k)
    g = rng.uniform(0.35, 0.9, k + 1)
    # events last at most 2 s; longer videos get longer gaps
    total = d.sum() + g.sum()
    scale = duration / total
    d_s = np.minimum(d * scale, 2.0)
    g_s = g / g.sum() * (duration - d_s.sum())
    d_s = np.maximum(d_s, min_dur)
    g_s = np.maximum(g_s, min_gap)
    over = d_s.sum() + g_s.sum() - duration
    if over > 0:  # shave the excess from the longest pieces
        flex = np.concatenate([d_s - min_dur, g_s - min_gap])
        cut = over * flex / flex.sum()
        d_s -= cut[:k]
        g_s -= cut[k:]
    out, t = [], 0.0
    for i in range(k):
        t += g_s[i]
        out.append((t, t + d_s[i]))
        t += d_s[i]
    return out


def _event_times(s: float, e: float, fps: float) -> tuple[float, float, float, float]:
    d = e - s
    hold = max(0.25 * d, 1.05 / fps)
    onset = (d - hold) * 0.45
    return s, s + onset, s + onset + hold, e


def _counted(n: int) -> str:
    return _COUNT.get(n, f"{n} times")


def caption(events: list) -> str:
    """A caption written from ``events`` in time order: expression and head events become
    clauses joined by "then"; blinks during an event of the same subject become "while
    blinking <count>", other blinks clauses of their own."""
    main = sorted(events, key=lambda ev: ev["t_start"])
    clauses, last_subject = [], None
    acts = [ev for ev in main if ev["action"] != "blink"]
    blinks = [ev for ev in main if ev["action"] == "blink"]
    attached = {id(b): None for b in blinks}
    for b in blinks:
        for a in acts:
            if a["subject"] == b["subject"] and a["t_start"] <= b["t_apex"] <= a["t_end"]:
                attached[id(b)] = id(a)
                break
    items = []  # (time, subject, phrase)
    for a in acts:
        nb = sum(1 for b in blinks if attached[id(b)] == id(a))
        items.append((a["t_start"], a["subject"], a["event"] + (f" while blinking {_counted(nb)}" if nb else "")))
    # free blinks: merge runs of the same subject's blinks with no other clause between
    free = [b for b in blinks if attached[id(b)] is None]
    runs = []
    for b in free:
        between = any(runs and runs[-1][0]["t_start"] < a["t_start"] < b["t_start"] for a in acts)
        if runs and runs[-1][-1]["subject"] == b["subject"] and not between:
            runs[-1].append(b)
        else:
            runs.append([b])
    for r in runs:
        items.append((r[0]["t_start"], r[0]["subject"], "blinks" + (f" {_counted(len(r))}" if len(r) > 1 else "")))
    items.sort(key=lambda x: x[0])
    for _, subj, phrase in items:
        clauses.append(phrase if subj == last_subject else f"{subj} {phrase}")
        last_subject = subj
    if not clauses:
        return "The person keeps a still, neutral face."
    text = clauses[0] + "".join(f", then {c}" for c in clauses[1:])
    return text[0].upper() + text[1:] + "."


def videos(n: int, frames: int, fps: float = 25, seed: int = 0, *, size: int = 64, actions=None,
           n_events: int | None = None, blink_rate: float = 0.4, head_motion: float = 0.06,
           distractors: float = 0.0, backgrounds: str = "mixed", intensity=(0.6, 1.0),
           supersample: int = 2, batch_size: int = 64) -> VideoBatch:
    """``n`` videos of ``frames`` frames at ``fps``, ``size`` x ``size`` pixels.

    actions: names from :data:`ACTIONS` (facial), :data:`HEAD_ACTIONS` (nod, shake, tilt) or
    expression names (default: all facial actions plus nod and shake). ``n_events`` per
    video (None: about one per 1-2 s). Blinks at ``blink_rate`` per second per face; head
    drift of ``head_motion`` radians. With probability ``distractors`` a video shows a second
    face; both then sit side by side and events are shared out between them. Each event
    scales its action by ``k ~ U(intensity)``; ``k >= 0.85`` uses the strong phrase.

    Events are dicts: ``t_start, t_apex, t_apex_end, t_end`` (s), ``frame_start, frame_end``
    (first and last frame inside), ``subject`` (its name in the caption), ``who`` (0 main, 1
    distractor), ``event`` (the caption phrase), ``action``, ``aus`` (AU names used),
    ``intensity``. Deterministic for ``seed``.
    """
    check_common(n, frames, fps, size)
    if not 0 <= distractors <= 1:
        raise ValueError(f"distractors is a probability in [0, 1], got {distractors!r}")
    if blink_rate < 0 or head_motion < 0:
        raise ValueError("blink_rate and head_motion must be >= 0")
    table = _action_table(actions)
    names = list(table)
    rng = np.random.default_rng(seed)
    T = int(frames)
    t = np.arange(T) / fps
    duration = (T - 1) / fps
    has_d = rng.random(n) < distractors
    side = rng.integers(0, 2, n)  # main subject on the left (0) or right (1) when a distractor is present
    ident = I.sample_identities(2 * n, rng)
    aus = np.zeros((n, 2, T, 20), np.float32)
    pose = np.zeros((n, 2, T, 3), np.float32)
    all_events, captions, subjects = [], [], []
    for i in range(n):
        two = bool(has_d[i])
        who_name = (["the person on the left", "the person on the right"][side[i]],
                    ["the person on the left", "the person on the right"][1 - side[i]]) if two else ("the person",)
        subjects.append(who_name[0])
        evs = []
        base = np.array([rng.uniform(-0.12, 0.12), rng.uniform(-0.2, 0.2), rng.uniform(-0.08, 0.08)])
        blinks = []
        for w in range(2 if two else 1):
            pose[i, w] = base * (1 if w == 0 else -1) + head_drift(T, fps, head_motion, rng)
            blinks.append(blink_times(duration, blink_rate, fps, rng))
        for s, e in _schedule(n_events, duration, fps, rng):
            w = int(rng.integers(0, 2)) if two else 0
            name = names[rng.integers(0, len(names))]
            k = float(rng.uniform(*intensity))
            spec = table[name]
            times = _event_times(s, e, fps)
            prof = profile(t, *times)
            if spec[0] == "face":
                vec = spec[1] * k
                aus[i, w] += prof[:, None] * vec[None]
                used = [a for a, v in zip(_mesh.AU_NAMES, vec) if v > 0]
                phrase = spec[3] if k >= 0.85 else spec[2]
            else:
                _, axis, cycles, amp, phrase = spec
                u = np.clip((t - s) / (e - s), 0, 1)
                if cycles:
                    wave = np.sin(2 * np.pi * cycles * u) * np.sin(np.pi * u)
                else:
                    wave = prof * (1 if rng.random() < 0.5 else -1)
                pose[i, w, :, axis] += amp * k * wave
                used = []
            evs.append(_event_dict(times, fps, T, who_name[w], w, phrase, name, used, k))
        # blinks last: they shut the lids whatever the other AUs of the frame do
        for w, bts in enumerate(blinks):
            prof = np.zeros(T)
            for bt in bts:
                prof += profile(t, *bt)
            add = apply_blinks(aus[i, w], np.clip(prof, 0, 1), ident["shape"][w * n + i])
            for bt in bts:
                apex = (t >= bt[1] - 1e-9) & (t <= bt[2] + 1e-9)
                evs.append(_event_dict(bt, fps, T, who_name[w], w, "blinks", "blink", ["AU43"],
                                       float(add[apex].max()) if apex.any() else 1.0))
        evs.sort(key=lambda ev: (ev["t_start"], ev["who"]))
        all_events.append(evs)
        captions.append(caption(evs))
    aus = np.clip(aus, 0, 5)
    # placement: one centred face, or two side by side
    scale = np.where(has_d[:, None], 0.42, rng.uniform(0.62, 0.75, n)[:, None]) * size / 175.0
    scale = np.repeat(scale, 2, 1).astype(np.float32)  # (n, 2)
    cx = np.where(has_d[:, None], np.where(np.stack([side, 1 - side], 1) == 0, 0.27, 0.73), 0.5) * size
    center = np.zeros((n, 2, T, 2), np.float32)
    center[..., 0] = cx[:, :, None]
    center[..., 1] = size / 2
    light = light_for(n, rng)
    bg_ids = _background_ids(backgrounds, n, rng)
    bg_seed = int(rng.integers(0, 2**63))
    main_ident = I.take(ident, slice(0, n))
    slots = [dict(aus=aus[:, w], pose=pose[:, w], ident=I.take(ident, slice(w * n, (w + 1) * n)),
                  scale=scale[:, w], center=center[:, w], light=light,
                  present=None if w == 0 else has_d) for w in range(2)]
    if not has_d.any():
        slots = slots[:1]
    imgs, lms = render_sequences(slots, (size, size), bg_ids, bg_seed, supersample, batch_size)
    d_lm = lms[1][:, :, _mesh.MESH68] if len(lms) > 1 else np.full((n, T, 68, 2), np.nan, np.float32)
    return VideoBatch(frames=imgs, aus=aus[:, 0], pose=pose[:, 0], landmarks68=lms[0][:, :, _mesh.MESH68],
                      landmarks468=lms[0], events=all_events, captions=captions, subjects=subjects,
                      has_distractor=has_d, distractor_aus=np.where(has_d[:, None, None], aus[:, 1], 0),
                      distractor_pose=np.where(has_d[:, None, None], pose[:, 1], 0).astype(np.float32),
                      distractor_landmarks68=d_lm, identity=main_ident, fps=float(fps), times=t.astype(np.float32),
                      meta={"seed": seed, "size": size, "actions": names})


def _event_dict(times, fps, T, subject, who, phrase, action, aus, k) -> dict:
    s, a, ae, e = (float(x) for x in times)
    inside = np.nonzero((np.arange(T) / fps > s) & (np.arange(T) / fps < e))[0]
    return {"t_start": round(s, 4), "t_apex": round(a, 4), "t_apex_end": round(ae, 4), "t_end": round(e, 4),
            "frame_start": int(inside[0]) if len(inside) else -1, "frame_end": int(inside[-1]) if len(inside) else -1,
            "subject": subject, "who": who, "event": phrase, "action": action, "aus": list(aus),
            "intensity": round(float(k), 3)}
