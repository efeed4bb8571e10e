"""Reading real clips: video frames and their audio track, with PyAV (FFmpeg bundled in its wheel).

:func:`read_clip` returns the frames as RGB uint8, optionally resampled to another frame rate
(each output time takes the latest decoded frame at or before it, so no frame comes from the
future), resized, cut to a window, and the audio track as mono float32 at ``audio_rate`` Hz.
:func:`read_audio` reads only the sound (a .wav or a clip's track). Notebooks 02 (captions of a
real clip), 07 (driving an avatar from a clip) and 08 (a listener for a real speaker) use them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Clip", "VideoError", "read_clip", "read_audio"]


class VideoError(ValueError):
    """A clip that cannot be read as asked (missing, not a media file, no video or audio stream)."""


@dataclass
class Clip:
    frames: np.ndarray          # (T, H, W, 3) uint8 RGB
    fps: float                  # frames per second of ``frames``
    times: np.ndarray           # (T,) seconds of each frame from the clip's start
    audio: np.ndarray | None    # (n,) float32 mono in [-1, 1], or None (no track / not asked)
    audio_rate: int | None
    path: str

    @property
    def duration(self) -> float:
        return len(self.frames) / self.fps if len(self.frames) else 0.0


def _open(path: str | os.PathLike):
    import av

    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: no such file (expected a video such as an .mp4)")
    try:
        return av.open(str(path))
    except Exception as err:  # noqa: BLE001 - FFmpeg's many error types: say what was expected
        raise VideoError(f"{path}: not a media file FFmpeg can read ({type(err).__name__}: {err})") from err


def read_audio(path: str | os.PathLike, rate: int = 16000, *, start_s: float = 0.0,
               duration_s: float | None = None) -> np.ndarray:
    """The first audio stream of ``path`` as mono float32 at ``rate`` Hz (resampled by FFmpeg)."""
    import av

    container = _open(path)
    try:
        if not container.streams.audio:
            raise VideoError(f"{path}: has no audio stream")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=int(rate))
        chunks = []
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):      # flush
            chunks.append(out.to_ndarray().reshape(-1))
    finally:
        container.close()
    audio = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    a = int(round(start_s * rate))
    b = None if duration_s is None else a + int(round(duration_s * rate))
    return audio[a:b]


def read_clip(path: str | os.PathLike, *, fps: float | None = None, size: int | tuple[int, int] | None = None,
              start_s: float = 0.0, duration_s: float | None = None, max_frames: int | None = None,
              audio_rate: int | None = 16000) -> Clip:
    """Frames (and the audio track) of a clip.

    ``fps``: resample to this rate (None: the stream's own); ``size``: resize every frame to
    ``size`` x ``size`` (or ``(width, height)``); ``start_s`` / ``duration_s`` / ``max_frames``: a
    window; ``audio_rate=None`` skips the sound. A clip without a video stream is an error; one
    without sound gives ``audio=None``."""
    container = _open(path)
    try:
        if not container.streams.video:
            raise VideoError(f"{path}: has no video stream (an audio file? use read_audio)")
        stream = container.streams.video[0]
        native = float(stream.average_rate or stream.guessed_rate or 25.0)
        step = 1.0 / (fps or native)
        end = np.inf if duration_s is None else start_s + duration_s
        if max_frames is not None:
            end = min(end, start_s + max_frames * step)
        decoded, stamps = [], []
        for k, frame in enumerate(container.decode(video=0)):
            t = float(frame.time) if frame.time is not None else k / native
            if t >= end - 1e-9:
                break
            if t + 1e-6 < start_s:
                decoded, stamps = [frame], [t]           # only the latest frame before start_s is needed
                continue
            decoded.append(frame)
            stamps.append(t)
        has_audio = bool(container.streams.audio)
        clip_end = min(end, (stamps[-1] + 1.0 / native) if stamps else start_s)
        # output time k shows the latest frame at or before it (never one from the future)
        out_t = start_s + step * np.arange(max(0, int(np.ceil((clip_end - start_s) / step - 1e-9))))
        pick = np.searchsorted(np.asarray(stamps), out_t + 1e-6, side="right") - 1
        keep = pick >= 0
        width, height = (None, None) if size is None else ((size, size) if isinstance(size, int) else size)
        arrays: dict[int, np.ndarray] = {}
        frames = []
        for p in pick[keep]:
            if p not in arrays:                      # a frame shown several times is converted once
                f = decoded[p] if size is None else decoded[p].reformat(width=int(width), height=int(height))
                arrays[p] = f.to_ndarray(format="rgb24")
            frames.append(arrays[p])
        times = out_t[keep] - start_s
    finally:
        container.close()
    if not frames:
        raise VideoError(f"{path}: no video frames in the window start_s={start_s}, duration_s={duration_s}")
    audio = None
    if audio_rate is not None and has_audio:
        audio = read_audio(path, audio_rate, start_s=start_s, duration_s=len(frames) * step)
    return Clip(frames=np.stack(frames), fps=1.0 / step, times=np.asarray(times, np.float64), audio=audio,
                audio_rate=audio_rate if audio is not None else None, path=str(path))
