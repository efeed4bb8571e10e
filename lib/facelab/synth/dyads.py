"""Speaker-listener dyads: a speaker whose mouth follows a speech signal and a listener who
reacts to the speaker causally, after a fixed delay.

Speaker (frame ``j`` covers the audio ``[j/fps, (j+1)/fps)``):

* ``envelope[j]``: the RMS of that audio window in dBFS mapped linearly from
  [-45, -18] dBFS to [0, 1] (real recordings are first scaled so that the 95th percentile of
  their 40 ms RMS is -20 dBFS, one gain per file; arrays passed in are used as they are).
* mouth: AU25 = 2.0 * envelope, AU26 = 2.4 * envelope (AU26 does most of the opening).
* own smiles (AU06/AU12 events at random times) and brow raises (AU01/AU02) after stressed
  syllables (a local envelope peak above 0.85), slight speech-driven head bobbing, blinks.
  All of it is causal in the audio: the speaker at frame j depends on audio before (j+1)/fps.

Listener (``d = round(delay * fps)`` frames), a function of the speaker's signals up to
frame ``t - d`` only (see :func:`listener_response`):

* nods (two pitch cycles at 2.5 Hz) ``d`` frames after each detected pause (the envelope
  below 0.15 for 0.2 s after at least 0.6 s of speech);
* smiles: AU12/AU06 = 0.8 x the speaker's, ``d`` frames later;
* brow raises: AU01/AU02 = 0.7 x the speaker's, ``d`` frames later;
* own blinks and head drift, drawn independently of the speaker.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from math import gcd
from pathlib import Path

import numpy as np

from .. import mesh as _mesh
from . import identity as I
from .generators import _background_ids
from .sequences import (AU, apply_blinks, blink_times, check_common, head_drift, light_for, profile,
                        render_sequences)

SAMPLE_RATE = 16000
_DB_LO, _DB_HI = -45.0, -18.0
PAUSE_THRESHOLD = 0.15


@dataclass
class DyadBatch:
    speaker_frames: np.ndarray        # (n, T, H, W, 3) uint8 (empty (n, T, 0, 0, 3) with render=False)
    listener_frames: np.ndarray       # (n, T, H, W, 3) uint8
    speaker_aus: np.ndarray           # (n, T, 20)
    listener_aus: np.ndarray          # (n, T, 20)
    speaker_pose: np.ndarray          # (n, T, 3) pitch, yaw, roll radians
    listener_pose: np.ndarray         # (n, T, 3)
    speaker_landmarks68: np.ndarray   # (n, T, 68, 2) (NaN with render=False)
    listener_landmarks68: np.ndarray  # (n, T, 68, 2)
    envelope: np.ndarray              # (n, T) in [0, 1], the speaker's audio envelope per frame
    audio: np.ndarray                 # (n, samples) float32 at 16 kHz, the speech used
    pauses: list                      # n arrays of frames at which a pause was detected
    events: list                      # n lists of event dicts (who, event, frame/t, trigger)
    delay: float                      # seconds
    delay_frames: int
    fps: float
    sources: list                     # n descriptions of the audio ("synthetic" or "<path>@<start s>")
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.envelope)


# ---------------------------------------------------------------- audio
def load_wav(path, resample: bool = True) -> np.ndarray:
    """A mono float32 waveform at 16 kHz from a wav file (other rates are resampled when
    ``resample``, else rejected)."""
    from scipy.io import wavfile
    from scipy.signal import resample_poly

    p = Path(os.fspath(path)).expanduser()
    if not p.is_file():
        raise ValueError(f"audio file not found: {p} (expected a 16 kHz wav, e.g. under FACELAB_DATA/audio)")
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", wavfile.WavFileWarning)
            sr, x = wavfile.read(p)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"could not read {p} as a wav file: {e}") from e
    if x.dtype.kind == "i":
        x = x.astype(np.float64) / float(np.iinfo(x.dtype).max)
    elif x.dtype.kind == "u":
        x = (x.astype(np.float64) - 128.0) / 128.0
    x = np.asarray(x, np.float64)
    if x.ndim == 2:
        x = x.mean(1)
    if sr != SAMPLE_RATE:
        if not resample:
            raise ValueError(f"{p} is sampled at {sr} Hz; dyads() expects 16 kHz audio "
                             f"(pass resample=True to resample it)")
        g = gcd(int(sr), SAMPLE_RATE)
        x = resample_poly(x, SAMPLE_RATE // g, int(sr) // g)
    # one gain per file: its loud (95th percentile) 40 ms RMS at -20 dBFS
    w = 640
    m = len(x) // w
    if m == 0:
        raise ValueError(f"{p} is empty or shorter than 40 ms")
    rms = np.sqrt((x[:m * w].reshape(m, w) ** 2).mean(1))
    ref = np.percentile(rms, 95)
    if ref <= 0:
        raise ValueError(f"{p} is silent")
    return (x * (0.1 / ref)).astype(np.float32)


def frame_bounds(T: int, fps: float) -> np.ndarray:
    """Sample indices (T + 1,) of the frame windows: frame j covers [b[j], b[j+1])."""
    return np.rint(np.arange(T + 1) * SAMPLE_RATE / fps).astype(np.int64)


def envelope(audio: np.ndarray, T: int, fps: float) -> np.ndarray:
    """(T,) envelope in [0, 1]: per-frame RMS in dBFS mapped from [-45, -18] dB. Frame j
    depends only on audio samples of [j/fps, (j+1)/fps)."""
    b = frame_bounds(T, fps)
    a2 = np.concatenate([[0.0], np.cumsum(np.asarray(audio, np.float64) ** 2)])
    ms = (a2[b[1:]] - a2[b[:-1]]) / np.maximum(b[1:] - b[:-1], 1)
    db = 10 * np.log10(ms + 1e-12)
    return np.clip((db - _DB_LO) / (_DB_HI - _DB_LO), 0, 1).astype(np.float32)


def synthetic_speech(duration: float, rng: np.random.Generator) -> np.ndarray:
    """A speech-like 16 kHz signal: phrases of 1-2.5 s separated by 0.35-0.9 s pauses, within
    them syllables at ~4-6 Hz (raised-cosine bumps) over a voiced source (f0 100-220 Hz
    with harmonics and a little noise)."""
    L = int(np.ceil(duration * SAMPLE_RATE)) + 1
    t = np.arange(L) / SAMPLE_RATE
    env = np.zeros(L)
    pos = rng.uniform(0.0, 0.3)
    while pos < duration:
        end = pos + rng.uniform(1.0, 2.5)
        s = pos
        while s < min(end, duration):
            dur = rng.uniform(0.16, 0.26)
            amp = rng.uniform(0.35, 1.0)
            u = (t - s) / dur
            inside = (u > 0) & (u < 1)
            env[inside] = np.maximum(env[inside], amp * np.sin(np.pi * u[inside]) ** 2)
            s += dur * rng.uniform(0.85, 1.05)
        pos = s + rng.uniform(0.35, 0.9)
    f0 = rng.uniform(100, 220) * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(2, 5) * t))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    src = sum(np.sin(k * phase) / k for k in range(1, 6)) + 0.2 * rng.standard_normal(L)
    return (0.25 * env * src / np.sqrt(np.mean(src ** 2))).astype(np.float32)


# ---------------------------------------------------------------- behaviour
def detect_pauses(env: np.ndarray, fps: float, min_speech: float = 0.6, min_pause: float = 0.2) -> np.ndarray:
    """Frames at which a pause is detected, causally: the envelope has been below
    :data:`PAUSE_THRESHOLD` for ``min_pause`` s, after at least ``min_speech`` s of speech
    since the previous pause. Detection at frame p uses env[:p + 1] only."""
    need_quiet = max(1, int(round(min_pause * fps)))
    need_speech = max(1, int(round(min_speech * fps)))
    quiet = speech = 0
    out = []
    for j, e in enumerate(env):
        if e >= PAUSE_THRESHOLD:
            speech += 1
            quiet = 0
        else:
            quiet += 1
            if quiet == need_quiet and speech >= need_speech:
                out.append(j)
                speech = 0
    return np.array(out, np.int64)


def nod_wave(T: int, start: int, fps: float, amplitude: float, freq: float = 2.5, cycles: int = 2) -> np.ndarray:
    """(T,) pitch of a nod starting at frame ``start``: ``cycles`` down-up cycles, windowed."""
    t = (np.arange(T) - start) / fps
    dur = cycles / freq
    u = t / dur
    inside = (u >= 0) & (u <= 1)
    return np.where(inside, amplitude * np.sin(2 * np.pi * cycles * u) * np.sqrt(np.abs(np.sin(np.pi * u))), 0.0)


def listener_response(env: np.ndarray, speaker_aus: np.ndarray, fps: float, delay_frames: int,
                      rng: np.random.Generator, blink_rate: float = 0.3, head_motion: float = 0.04,
                      smile_gain: float = 0.8, brow_gain: float = 0.7,
                      shape: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, list]:
    """The listener's (T, 20) AUs, (T, 3) pose and events from the speaker's envelope (T,)
    and AUs (T, 20); ``shape`` (13,) is the listener's identity shape (it sets how far the lids
    travel in a blink). Causal with lag ``d = delay_frames`` >= 1: the output at frame t depends
    only on the inputs at frames <= t - d (and on ``rng``, whose draws never depend on them).
    """
    T = len(env)
    d = int(delay_frames)
    if d < 1:
        raise ValueError(f"delay must be at least one frame, got {d} frames")
    t = np.arange(T) / fps
    # the listener's own behaviour, drawn first and independently of the speaker
    pose = head_drift(T, fps, head_motion, rng)
    aus = np.zeros((T, 20))
    events = []
    blink_prof = np.zeros(T)
    for bt in blink_times((T - 1) / fps, blink_rate, fps, rng):
        blink_prof += profile(t, *bt)
        events.append({"who": "listener", "event": "blinks", "t": round(bt[1], 4), "frame": int(round(bt[1] * fps)),
                       "trigger": None})
    nod_amp = rng.uniform(0.08, 0.15, 64)  # per nod, indexed by the nod's order (not by time)

    def shifted(x):  # y[t] = x[t - d], zero before
        y = np.zeros_like(x)
        y[d:] = x[:T - d]
        return y

    sa = np.asarray(speaker_aus, np.float64)
    for a in ("AU06", "AU12"):
        aus[:, AU[a]] += smile_gain * shifted(sa[:, AU[a]])
    for a in ("AU01", "AU02"):
        aus[:, AU[a]] += brow_gain * shifted(sa[:, AU[a]])
    for k, p in enumerate(detect_pauses(env, fps)):
        start = p + d
        if start >= T:
            break
        pose[:, 0] += nod_wave(T, start, fps, nod_amp[k % len(nod_amp)])
        events.append({"who": "listener", "event": "nods", "t": round(start / fps, 4), "frame": int(start),
                       "trigger": "pause", "trigger_frame": int(p)})
    apply_blinks(aus, np.clip(blink_prof, 0, 1), shape)  # per frame: causal as well
    return np.clip(aus, 0, 5).astype(np.float32), pose.astype(np.float32), events


def speaker_behaviour(env: np.ndarray, fps: float, rng: np.random.Generator, smile_rate: float = 0.25,
                      blink_rate: float = 0.35, head_motion: float = 0.05, shape: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, list]:
    """The speaker's (T, 20) AUs, (T, 3) pose and events: mouth from the envelope, smiles,
    brow raises on stressed syllables, blinks, head drift and speech-driven bobbing."""
    T = len(env)
    t = np.arange(T) / fps
    dur = (T - 1) / fps
    aus = np.zeros((T, 20))
    aus[:, AU["AU25"]] = 2.0 * env
    aus[:, AU["AU26"]] = 2.4 * env
    events = []
    pose = head_drift(T, fps, head_motion, rng)
    blink_prof = np.zeros(T)
    for bt in blink_times(dur, blink_rate, fps, rng):
        blink_prof += profile(t, *bt)
        events.append({"who": "speaker", "event": "blinks", "t": round(bt[1], 4), "frame": int(round(bt[1] * fps)),
                       "trigger": None})
    # smiles: at least one per clip when it is long enough, at random non-overlapping times
    k = max(1 if dur >= 1.5 else 0, int(rng.poisson(smile_rate * dur)))
    if k:
        starts = np.sort(rng.uniform(0, max(dur - 1.2, 0.01), k))
        last_end = -1.0
        for s in starts:
            if s < last_end + 0.3:
                continue
            length = rng.uniform(0.8, 1.6)
            e = min(s + length, dur)
            hold = max(0.25 * (e - s), 1.05 / fps)
            on = (e - s - hold) * 0.45
            times = (s, s + on, s + on + hold, e)
            amp = rng.uniform(0.7, 1.0)
            pr = profile(t, *times)
            aus[:, AU["AU12"]] += 2.6 * amp * pr
            aus[:, AU["AU06"]] += 1.8 * amp * pr
            events.append({"who": "speaker", "event": "smiles", "t_start": round(s, 4), "t_apex": round(s + on, 4),
                           "t_end": round(e, 4), "trigger": None})
            last_end = e
    # brow raises on stressed syllables (a local envelope peak above 0.85, seen one frame
    # later, so the speaker's AUs at frame j depend on the audio up to frame j only)
    last = -10.0
    for j in range(2, T):
        p = j - 1
        if env[p] > 0.85 and env[p] >= env[p - 1] and env[p] >= env[j] and t[j] - last > 1.0:
            last = t[j]
            if rng.random() < 0.6:
                times = (t[j], t[j] + 0.12, t[j] + 0.12 + max(0.1, 1.05 / fps), t[j] + 0.55)
                aus[:, AU["AU01"]] += 2.2 * profile(t, *times)
                aus[:, AU["AU02"]] += 2.2 * profile(t, *times)
                events.append({"who": "speaker", "event": "raises their eyebrows", "t": round(t[j], 4),
                               "frame": j, "trigger": "stress"})
    # speech moves the head a little (nose dips with loud syllables)
    sm = np.convolve(env, np.ones(3) / 3)[:T]  # trailing mean (causal)
    pose[:, 0] += 0.05 * sm
    apply_blinks(aus, np.clip(blink_prof, 0, 1), shape)
    return np.clip(aus, 0, 5).astype(np.float32), pose.astype(np.float32), events


# ---------------------------------------------------------------- generator
def _audio_sources(audio, n: int, need: int, rng: np.random.Generator, resample: bool) -> tuple[list, list]:
    """Per dyad a waveform of ``need`` samples and a description."""
    if audio is None:
        return [None] * n, ["synthetic"] * n
    if isinstance(audio, np.ndarray):
        a = np.asarray(audio, np.float32)
        arrs = [a] * n if a.ndim == 1 else list(a)
        if len(arrs) != n:
            raise ValueError(f"audio array holds {len(arrs)} signals, expected 1 or n={n}")
        out = []
        for x in arrs:
            if len(x) < need:
                raise ValueError(f"audio array has {len(x)} samples ({len(x) / SAMPLE_RATE:.2f} s at 16 kHz); "
                                 f"need {need} for the requested frames")
            out.append(x[:need])
        return out, ["array"] * n
    paths = [audio] if isinstance(audio, (str, os.PathLike)) else list(audio)
    if not paths:
        raise ValueError("audio is an empty list: expected wav paths, an array or None")
    cache = {}
    out, desc = [], []
    for i in range(n):
        p = paths[i % len(paths)]
        if p not in cache:
            cache[p] = load_wav(p, resample)
        x = cache[p]
        if len(x) < need:
            raise ValueError(f"{p} lasts {len(x) / SAMPLE_RATE:.2f} s; the requested frames need "
                             f"{need / SAMPLE_RATE:.2f} s of audio")
        start = int(rng.integers(0, len(x) - need + 1))
        out.append(x[start:start + need])
        desc.append(f"{os.fspath(p)}@{start / SAMPLE_RATE:.3f}")
    return out, desc


def dyads(n: int, frames: int, fps: float = 25, audio=None, seed: int = 0, *, size: int = 64,
          delay: float = 0.32, resample: bool = True, render: bool = True, backgrounds: str = "plain",
          smile_rate: float = 0.25, supersample: int = 2, batch_size: int = 64) -> DyadBatch:
    """``n`` speaker/listener pairs of ``frames`` frames at ``fps``.

    audio: None (synthetic speech per dyad), a wav path or a list of paths (dyad i uses path
    i mod len, at a random start), or a 16 kHz float array (samples,) or (n, samples).
    delay: the listener's reaction delay in seconds (rounded to whole frames, at least one).
    render=False skips the images (frames arrays are then empty, landmarks NaN).
    """
    check_common(n, frames, fps, size)
    if not np.isfinite(delay) or delay <= 0:
        raise ValueError(f"delay must be a positive number of seconds, got {delay!r}")
    T = int(frames)
    d = max(1, int(round(delay * fps)))
    if d >= T:
        raise ValueError(f"delay {delay} s = {d} frames leaves nothing to react to in {T} frames")
    rng = np.random.default_rng(seed)
    need = int(frame_bounds(T, fps)[-1])
    srcs, desc = _audio_sources(audio, n, need, rng, resample)
    seeds = rng.integers(0, 2**63, (n, 3))
    ident = I.sample_identities(2 * n, rng)
    env = np.zeros((n, T), np.float32)
    wave = np.zeros((n, need), np.float32)
    s_aus = np.zeros((n, T, 20), np.float32)
    l_aus = np.zeros((n, T, 20), np.float32)
    s_pose = np.zeros((n, T, 3), np.float32)
    l_pose = np.zeros((n, T, 3), np.float32)
    pauses, events = [], []
    for i in range(n):
        a = srcs[i] if srcs[i] is not None else synthetic_speech(need / SAMPLE_RATE, np.random.default_rng(seeds[i, 0]))[:need]
        wave[i] = a
        env[i] = envelope(a, T, fps)
        s_aus[i], s_pose[i], ev_s = speaker_behaviour(env[i], fps, np.random.default_rng(seeds[i, 1]), smile_rate,
                                                      shape=ident["shape"][i])
        l_aus[i], l_pose[i], ev_l = listener_response(env[i], s_aus[i], fps, d, np.random.default_rng(seeds[i, 2]),
                                                      shape=ident["shape"][n + i])
        pauses.append(detect_pauses(env[i], fps))
        events.append(sorted(ev_s + ev_l, key=lambda e: e.get("t", e.get("t_start", 0))))
    # speaker faces image right a little, listener image left, as if facing each other
    s_pose[..., 1] += 0.15
    l_pose[..., 1] -= 0.15
    light = light_for(2 * n, rng)
    bg_ids = _background_ids(backgrounds, 2 * n, rng)
    bg_seed = int(rng.integers(0, 2**63))
    scale = (rng.uniform(0.62, 0.75, 2 * n) * size / 175.0).astype(np.float32)
    if render:
        center = np.full((2 * n, T, 2), size / 2, np.float32)
        slot = dict(aus=np.concatenate([s_aus, l_aus]), pose=np.concatenate([s_pose, l_pose]), ident=ident,
                    scale=scale, center=center, light=light)
        imgs, (lm,) = render_sequences([slot], (size, size), bg_ids, bg_seed, supersample, batch_size)
        lm68 = lm[:, :, _mesh.MESH68]
        sf, lf = imgs[:n], imgs[n:]
        slm, llm = lm68[:n], lm68[n:]
    else:
        sf = lf = np.zeros((n, T, 0, 0, 3), np.uint8)
        slm = llm = np.full((n, T, 68, 2), np.nan, np.float32)
    return DyadBatch(speaker_frames=sf, listener_frames=lf, speaker_aus=s_aus, listener_aus=l_aus,
                     speaker_pose=s_pose, listener_pose=l_pose, speaker_landmarks68=slm, listener_landmarks68=llm,
                     envelope=env, audio=wave, pauses=pauses, events=events, delay=d / fps, delay_frames=d,
                     fps=float(fps), sources=desc,
                     meta={"seed": seed, "size": size, "speaker_identity": I.take(ident, slice(0, n)),
                           "listener_identity": I.take(ident, slice(n, 2 * n))})
