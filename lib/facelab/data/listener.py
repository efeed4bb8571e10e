"""Speaker/listener motion data for listener generation (DIM / DiTaiListener conventions).

Motion follows DIM's EMOCA layout, 56 numbers per frame, ``[pose 6 | exp 50]``: global head
rotation (3), jaw rotation (3), then 50 expression coefficients (:mod:`facelab.metrics_motion`).

* :func:`engine_motion` maps :mod:`facelab.synth.dyads` output (20 AUs on 0-5 and pitch/yaw/roll in
  radians) into that layout: global = (pitch, yaw, roll); jaw = (0.08 rad x AU26, 0, 0), a jaw drop
  of AU26 = 5 opening the mouth by 0.4 rad like EMOCA's jaw pitch; exp[0:20] = 0.5 x the 20 AU
  intensities (order :data:`facelab.mesh.AU_NAMES`; 0-2.5, the range of EMOCA's coefficients);
  exp[20:50] = 0: the engine has 20 AUs, EMOCA 50 expression coefficients.
* :func:`log_mel` computes speaker audio features at the video frame rate with torch, frame ``j``
  from the samples of ``[j/fps, (j+1)/fps)`` only (so features stay causal).
* :func:`resample_time` resamples a feature sequence between rates by linear interpolation at the
  target frame times ``j / fps_out`` (DIM takes HuBERT's 50 fps features to ViCo's 30 fps video).
* :func:`read_vico` reads the ViCo processed layout and :func:`read_lm_listener` LM-Listener
  ``.pth`` segments; both return :class:`ListenerClip` objects at the video rate.

The ViCo layout is the one DIM's preprocessing writes [reconstructed from its scripts]::

    <root>/RLD_data.csv                 columns: (index), file_id, listener, speaker
    <root>/emoca/<video>/exp.npy        (T, 50) EMOCA expression, one row per video frame (30 fps)
    <root>/emoca/<video>/pose.npy       (T, 6) global (3) + jaw (3) rotation
    <root>/audio_feats/<file_id>.npy    (T_a, D) speaker audio features (HuBERT, 50 fps)
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np

from .base import layout_error, require_dir, require_file

MOTION_DIM = 56
SAMPLE_RATE = 16000
VICO_FPS = 30.0
HUBERT_FPS = 50.0
JAW_RAD_PER_AU26 = 0.08
EXP_PER_AU = 0.5
LM_LISTENER_KEYS = ("p0_exp", "p1_exp", "p0_pose", "p1_pose", "hubert_feat")

VICO_TREE = """\
<root>/
  RLD_data.csv                 (index), file_id, listener, speaker
  emoca/<video>/exp.npy        (T, 50) per video frame, 30 fps
  emoca/<video>/pose.npy       (T, 6) global + jaw rotation
  audio_feats/<file_id>.npy    (T_a, D) speaker audio features at 50 fps (HuBERT)
"""


@dataclass
class ListenerClip:
    """One dyad at the video rate: speaker and listener motion (T, 56), audio features (T, D)."""

    name: str
    speaker: np.ndarray
    listener: np.ndarray
    audio: np.ndarray
    fps: float

    def __len__(self) -> int:
        return len(self.listener)


# ---------------------------------------------------------------- engine -> DIM layout
def engine_motion(aus: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """(..., T, 20) AUs and (..., T, 3) pitch/yaw/roll -> (..., T, 56) ``[pose 6 | exp 50]``."""
    aus, pose = np.asarray(aus, np.float32), np.asarray(pose, np.float32)
    if aus.shape[-1] != 20 or pose.shape[-1] != 3 or aus.shape[:-1] != pose.shape[:-1]:
        raise ValueError(f"engine_motion: expected (..., T, 20) AUs and (..., T, 3) pose with the same leading "
                         f"shape, got {aus.shape} and {pose.shape}")
    from ..mesh import AU_NAMES

    out = np.zeros(aus.shape[:-1] + (MOTION_DIM,), np.float32)
    out[..., 0:3] = pose
    out[..., 3] = JAW_RAD_PER_AU26 * aus[..., list(AU_NAMES).index("AU26")]
    out[..., 6:26] = EXP_PER_AU * aus
    return out


# ---------------------------------------------------------------- audio
def check_audio(audio, sample_rate: int = SAMPLE_RATE, *, min_seconds: float = 0.5, name: str = "audio") -> np.ndarray:
    """A mono float32 waveform at 16 kHz: other rates are resampled (polyphase, documented), a
    clip shorter than ``min_seconds`` or silent (peak below -60 dBFS) is rejected."""
    from scipy.signal import resample_poly

    x = np.asarray(audio, np.float64)
    if x.ndim == 2:
        x = x.mean(1) if x.shape[1] <= 8 else x.mean(0)
    if x.ndim != 1:
        raise ValueError(f"{name}: expected a mono waveform (samples,), got shape {np.shape(audio)}")
    if sample_rate <= 0:
        raise ValueError(f"{name}: sample rate must be positive, got {sample_rate}")
    if sample_rate != SAMPLE_RATE:
        g = gcd(int(sample_rate), SAMPLE_RATE)
        x = resample_poly(x, SAMPLE_RATE // g, int(sample_rate) // g)
    if len(x) < min_seconds * SAMPLE_RATE:
        raise ValueError(f"{name}: {len(x) / SAMPLE_RATE:.3f} s of audio is too short; need at least "
                         f"{min_seconds} s at 16 kHz")
    if not np.isfinite(x).all():
        raise ValueError(f"{name}: contains NaN or inf samples")
    if np.abs(x).max() < 1e-3:
        raise ValueError(f"{name}: the clip is silent (peak {np.abs(x).max():.2e} < 1e-3, i.e. below -60 dBFS); "
                         f"a listener needs a speaker to react to")
    return x.astype(np.float32)


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int = SAMPLE_RATE, fmin: float = 50.0,
                   fmax: float | None = None) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters on the HTK mel scale."""
    fmax = fmax or sample_rate / 2
    mel = lambda f: 2595 * np.log10(1 + f / 700)          # noqa: E731
    imel = lambda m: 700 * (10 ** (m / 2595) - 1)          # noqa: E731
    edges = imel(np.linspace(mel(fmin), mel(fmax), n_mels + 2))
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    lo, c, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    fb = np.clip(np.minimum((freqs - lo) / (c - lo), (hi - freqs) / (hi - c)), 0, None)
    return (fb / np.maximum(fb.sum(1, keepdims=True), 1e-9)).astype(np.float32)


def log_mel(audio: np.ndarray, frames: int, fps: float, n_mels: int = 20, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(frames, n_mels) log-mel energies, one row per video frame, from that frame's samples only.

    Each frame's window ``[j/fps, (j+1)/fps)`` is Hann-weighted and zero-padded to a power of two,
    so no frame looks at later audio (a centred STFT would look half a window ahead).
    """
    import torch

    x = check_audio(audio, sample_rate, min_seconds=0.0 if frames == 0 else 0.0)
    b = np.rint(np.arange(frames + 1) * SAMPLE_RATE / fps).astype(np.int64)
    if b[-1] > len(x):
        raise ValueError(f"log_mel: {frames} frames at {fps} fps need {b[-1] / SAMPLE_RATE:.3f} s of audio, "
                         f"got {len(x) / SAMPLE_RATE:.3f} s")
    win = int((b[1:] - b[:-1]).max())
    n_fft = 1 << (win - 1).bit_length()
    chunks = np.zeros((frames, n_fft), np.float32)
    for j in range(frames):
        seg = x[b[j]:b[j + 1]]
        chunks[j, :len(seg)] = seg * np.hanning(len(seg) + 2)[1:-1]
    spec = torch.fft.rfft(torch.from_numpy(chunks), dim=-1).abs() ** 2
    fb = torch.from_numpy(mel_filterbank(n_mels, n_fft))
    return torch.log(spec @ fb.T + 1e-6).numpy().astype(np.float32)


# ---------------------------------------------------------------- resampling
def resample_time(x: np.ndarray, fps_in: float, fps_out: float, frames: int | None = None) -> np.ndarray:
    """Resample (T_in, D) features from ``fps_in`` to ``fps_out`` by linear interpolation.

    Output frame j sits at time ``j / fps_out`` and is interpolated between the two input frames
    around it (input frame i at ``i / fps_in``); times past the last input frame take its value.
    ``frames`` defaults to the number of output frames the input's duration covers,
    ``floor((T_in - 1) * fps_out / fps_in) + 1``. 50 -> 30 fps: output frame 1 (33.3 ms) is
    1/3 of input frame 1 (20 ms) and 2/3 of input frame 2 (40 ms).
    """
    x = np.asarray(x, np.float32)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or len(x) < 1:
        raise ValueError(f"resample_time: expected (T, D) features, got shape {x.shape}")
    if fps_in <= 0 or fps_out <= 0:
        raise ValueError(f"resample_time: rates must be positive, got {fps_in} -> {fps_out}")
    if frames is None:
        frames = int(np.floor((len(x) - 1) * fps_out / fps_in + 1e-9)) + 1
    pos = np.arange(frames) * fps_in / fps_out          # fractional input index of each output frame
    i0 = np.clip(np.floor(pos).astype(np.int64), 0, len(x) - 1)
    i1 = np.clip(i0 + 1, 0, len(x) - 1)
    w = np.clip(pos - i0, 0, 1)[:, None].astype(np.float32)
    return (1 - w) * x[i0] + w * x[i1]


def dyad_clip(name: str, speaker: np.ndarray, listener: np.ndarray, audio: np.ndarray, fps: float, where: str) -> ListenerClip:
    """A :class:`ListenerClip` after checking that speaker and listener are frame-aligned (one error
    naming ``where`` otherwise) and that the audio features cover the motion."""
    if len(speaker) != len(listener):
        raise ValueError(f"{where}: speaker has {len(speaker)} frames but listener has {len(listener)}; "
                         f"a dyad needs both tracks frame-aligned at {fps} fps")
    n = len(listener)
    if len(audio) < n:
        raise ValueError(f"{where}: audio features cover {len(audio)} frames after resampling to {fps} fps, "
                         f"the motion {n}")
    return ListenerClip(name, speaker.astype(np.float32), listener.astype(np.float32), audio[:n].astype(np.float32), fps)


def _motion(exp: np.ndarray, pose: np.ndarray, where: str) -> np.ndarray:
    exp, pose = np.asarray(exp, np.float32), np.asarray(pose, np.float32)
    if exp.ndim != 2 or exp.shape[1] != 50 or pose.ndim != 2 or pose.shape[1] != 6:
        raise ValueError(f"{where}: expected exp (T, 50) and pose (T, 6) (EMOCA), got {exp.shape} and {pose.shape}")
    if len(exp) != len(pose):
        raise ValueError(f"{where}: exp has {len(exp)} frames but pose has {len(pose)}")
    return np.concatenate([pose, exp], 1)


# ---------------------------------------------------------------- ViCo
def read_vico(root: str | os.PathLike, *, fps: float = VICO_FPS, audio_fps: float = HUBERT_FPS,
              limit: int | None = None) -> list[ListenerClip]:
    """ViCo in DIM's processed layout (module docstring): one :class:`ListenerClip` per csv row,
    audio features resampled from ``audio_fps`` to ``fps`` by :func:`resample_time`."""
    import pandas as pd

    root = Path(os.fspath(root)).expanduser()
    require_dir(root, "ViCo", root, VICO_TREE)
    csv = require_file(root / "RLD_data.csv", "ViCo", root, VICO_TREE)
    df = pd.read_csv(csv)
    cols = [c for c in ("file_id", "listener", "speaker") if c in df.columns]
    if len(cols) == 3:
        rows = df[["file_id", "listener", "speaker"]].astype(str).values
    elif df.shape[1] >= 4:   # DIM indexes the columns by position: row[1], row[2], row[3]
        rows = df.iloc[:, 1:4].astype(str).values
    else:
        raise layout_error("ViCo", root, f"RLD_data.csv has columns {list(df.columns)}; expected file_id, "
                                         f"listener, speaker", VICO_TREE)
    clips = []
    for file_id, lis, spk in rows[:limit]:
        mot = {}
        for who, video in (("listener", lis), ("speaker", spk)):
            d = root / "emoca" / video
            exp = np.load(require_file(d / "exp.npy", "ViCo", root, VICO_TREE))
            pose = np.load(require_file(d / "pose.npy", "ViCo", root, VICO_TREE))
            mot[who] = _motion(exp, pose, f"ViCo {d}")
        feats = np.load(require_file(root / "audio_feats" / f"{file_id}.npy", "ViCo", root, VICO_TREE))
        audio = resample_time(feats, audio_fps, fps)
        clips.append(dyad_clip(file_id, mot["speaker"], mot["listener"], audio, fps, f"ViCo clip {file_id}"))
    if not clips:
        raise layout_error("ViCo", root, "RLD_data.csv lists no clips", VICO_TREE)
    return clips


# ---------------------------------------------------------------- LM-Listener
def read_lm_listener(path: str | os.PathLike, *, fps: float = VICO_FPS, audio_fps: float = HUBERT_FPS) -> ListenerClip:
    """One LM-Listener ``.pth`` segment: ``p0_*`` is the listener, ``p1_*`` the speaker (DIM's
    ``p0_list_faces`` / ``p1_speak_faces``), ``hubert_feat`` (T_a, D) at ``audio_fps``, resampled
    to the motion's ``fps`` by :func:`resample_time`."""
    import torch

    p = Path(os.fspath(path)).expanduser()
    if not p.is_file():
        raise ValueError(f"LM-Listener segment not found: {p} (expected a .pth file holding {', '.join(LM_LISTENER_KEYS)})")
    try:
        d = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"could not read {p} as a torch .pth segment: {e}") from e
    if not isinstance(d, dict):
        raise ValueError(f"{p}: expected a dict with keys {', '.join(LM_LISTENER_KEYS)}, got {type(d).__name__}")
    missing = [k for k in LM_LISTENER_KEYS if k not in d]
    if missing:
        raise ValueError(f"{p}: LM-Listener segment lacks key(s) {', '.join(missing)}; expected "
                         f"{', '.join(LM_LISTENER_KEYS)} (has {', '.join(map(str, d))})")
    arr = {k: (d[k].detach().cpu().numpy() if hasattr(d[k], "detach") else np.asarray(d[k])) for k in LM_LISTENER_KEYS}
    listener = _motion(arr["p0_exp"], arr["p0_pose"], f"{p} p0")
    speaker = _motion(arr["p1_exp"], arr["p1_pose"], f"{p} p1")
    audio = resample_time(arr["hubert_feat"], audio_fps, fps)
    return dyad_clip(p.stem, speaker, listener, audio, fps, str(p))
