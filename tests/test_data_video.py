"""facelab.data.video: frames, frame-rate resampling, windows and audio of clips written here."""
from __future__ import annotations

import numpy as np
import pytest

av = pytest.importorskip("av")

from facelab.data.video import VideoError, read_audio, read_clip  # noqa: E402


def write_clip(path, n_frames=20, fps=10, size=32, tone_hz=440.0, rate=16000, audio=True):
    """Frame k is uniformly grey at level 10 * k (so a read frame tells which frame it was);
    the audio track is a sine of ``tone_hz``."""
    from fractions import Fraction

    container = av.open(str(path), "w")
    vs = container.add_stream("libx264", rate=fps)
    vs.width = vs.height = size
    vs.pix_fmt = "yuv420p"
    vs.options = {"crf": "0", "preset": "ultrafast"}
    if audio:
        aus = container.add_stream("aac", rate=rate)
        aus.layout = "mono"
    for k in range(n_frames):
        img = np.full((size, size, 3), 10 * k, np.uint8)
        for pkt in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            container.mux(pkt)
    for pkt in vs.encode():
        container.mux(pkt)
    if audio:
        t = np.arange(int(rate * n_frames / fps)) / rate
        wave = (0.5 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)
        for a in range(0, len(wave), 1024):
            chunk = wave[a:a + 1024][None]
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            frame.sample_rate = rate
            frame.pts = a
            frame.time_base = Fraction(1, rate)
            for pkt in aus.encode(frame):
                container.mux(pkt)
        for pkt in aus.encode():
            container.mux(pkt)
    container.close()
    return path


def _level(frames):
    return np.round(frames.reshape(len(frames), -1).mean(1) / 10).astype(int)


def test_read_clip_frames_audio_and_native_rate(tmp_path):
    clip = read_clip(write_clip(tmp_path / "a.mp4"))
    assert clip.frames.shape == (20, 32, 32, 3) and clip.fps == 10
    assert _level(clip.frames).tolist() == list(range(20))
    assert clip.audio_rate == 16000 and abs(len(clip.audio) - 32000) <= 1100
    spectrum = np.abs(np.fft.rfft(clip.audio[4000:20000]))
    assert abs(np.argmax(spectrum) * 16000 / 16000 - 440) < 5        # the tone survives AAC and resampling


def test_resampling_never_shows_a_future_frame(tmp_path):
    path = write_clip(tmp_path / "a.mp4", audio=False)
    slow = read_clip(path, fps=4)                      # 0, .25, .5, ... s -> frames 0, 2, 5, 7, ...
    assert _level(slow.frames).tolist() == [int(np.floor(t * 10 + 1e-6)) for t in slow.times]
    fast = read_clip(path, fps=25)                     # repeats frames, each at or before its time
    assert len(fast.frames) == 50 and (_level(fast.frames) <= np.floor(fast.times * 10 + 1e-6)).all()
    assert fast.audio is None


def test_window_size_and_max_frames(tmp_path):
    path = write_clip(tmp_path / "a.mp4")
    clip = read_clip(path, start_s=0.5, duration_s=0.8, size=16)
    assert clip.frames.shape == (8, 16, 16, 3) and _level(clip.frames).tolist() == list(range(5, 13))
    assert abs(len(clip.audio) - 0.8 * 16000) <= 2
    assert len(read_clip(path, max_frames=3).frames) == 3


def test_bad_clips_say_what_was_expected(tmp_path):
    with pytest.raises(VideoError, match="no such file"):
        read_clip(tmp_path / "missing.mp4")
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    with pytest.raises(VideoError, match="not a media file"):
        read_clip(bad)
    wav = tmp_path / "tone.wav"
    c = av.open(str(wav), "w")
    s = c.add_stream("pcm_s16le", rate=8000)
    s.layout = "mono"
    frame = av.AudioFrame.from_ndarray((np.zeros((1, 800)) * 0).astype(np.int16), format="s16", layout="mono")
    frame.sample_rate = 8000
    for pkt in s.encode(frame):
        c.mux(pkt)
    for pkt in s.encode():
        c.mux(pkt)
    c.close()
    with pytest.raises(VideoError, match="no video stream"):
        read_clip(wav)
    assert read_audio(wav, 16000).shape[0] in range(1590, 1610)       # 0.1 s resampled 8 -> 16 kHz
    with pytest.raises(VideoError, match="no audio stream"):
        read_audio(write_clip(tmp_path / "mute.mp4", audio=False))
