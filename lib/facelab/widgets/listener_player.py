"""The listener player (notebook 08): speaker and generated listener side by side, with audio.

Every callback is a plain function of plain values, so it is unit-tested without a browser:

* :class:`PlayerClip` - one dyad: speaker frames, listener frames per mode ("Gen", "Gen+Edit",
  ...), the causal attention of every listener frame over the speaker's timeline, the audio.
* :class:`PlayerState` - what the controls hold: clip, frame, mode, playing.
* :func:`select_clip`, :func:`set_frame`, :func:`set_mode`, :func:`toggle_play`, :func:`advance`
  return a new state (one clear error for an unknown clip or mode, a frame out of range).
* :func:`render_frame` - uint8 image, speaker | listener, scaled up;
  :func:`attention_strip` - uint8 image of the current frame's attention over speaker time
  (bars; the current frame marked; nothing after it can carry weight under a causal mask);
  :func:`wav_bytes` - the clip's audio as a WAV file for ``ipywidgets.Audio``.
* :func:`save_clips` / :func:`load_clips` - an ``.npz`` of clips (atomic write), so a notebook
  run leaves its generated clips for the player; :func:`demo_clips` builds engine dyads (the
  engine's own listener, no model) when no run is there.

:class:`ListenerPlayerWidget` wires them to a clip dropdown, Gen / Gen+Edit toggle, a Play
widget (play/pause) linked to a frame scrubber, the two images and an audio player.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000


@dataclass
class PlayerClip:
    name: str
    speaker: np.ndarray               # (T, H, W, 3) uint8
    listener: dict                    # mode -> (T, H, W, 3) uint8
    attention: np.ndarray             # (T, T): row t = listener frame t's attention over speaker frames
    fps: float
    audio: np.ndarray | None = None   # float32 mono at 16 kHz

    def __post_init__(self):
        T = len(self.speaker)
        if not self.listener:
            raise ValueError(f"clip {self.name!r}: needs at least one listener video (mode -> frames)")
        for m, v in self.listener.items():
            if v.shape != self.speaker.shape:
                raise ValueError(f"clip {self.name!r}: listener {m!r} frames {v.shape} do not match the speaker's "
                                 f"{self.speaker.shape}")
        if self.attention.shape != (T, T):
            raise ValueError(f"clip {self.name!r}: attention must be ({T}, {T}), got {self.attention.shape}")

    def __len__(self) -> int:
        return len(self.speaker)


@dataclass(frozen=True)
class PlayerState:
    clip: str
    frame: int = 0
    mode: str = "Gen"
    playing: bool = False


def _clip(clips: dict, name: str) -> PlayerClip:
    if name not in clips:
        raise ValueError(f"unknown clip {name!r}: the player has {', '.join(clips)}")
    return clips[name]


def initial_state(clips: dict) -> PlayerState:
    name = next(iter(clips))
    return PlayerState(name, 0, next(iter(clips[name].listener)))


def select_clip(clips: dict, state: PlayerState, name: str) -> PlayerState:
    c = _clip(clips, name)
    mode = state.mode if state.mode in c.listener else next(iter(c.listener))
    return replace(state, clip=name, frame=0, mode=mode)


def set_frame(clips: dict, state: PlayerState, frame: int) -> PlayerState:
    T = len(_clip(clips, state.clip))
    if not 0 <= int(frame) < T:
        raise ValueError(f"frame {frame} out of range: clip {state.clip!r} has frames 0..{T - 1}")
    return replace(state, frame=int(frame))


def set_mode(clips: dict, state: PlayerState, mode: str) -> PlayerState:
    c = _clip(clips, state.clip)
    if mode not in c.listener:
        raise ValueError(f"unknown mode {mode!r}: clip {state.clip!r} has {', '.join(c.listener)}")
    return replace(state, mode=mode)


def toggle_play(state: PlayerState) -> PlayerState:
    return replace(state, playing=not state.playing)


def advance(clips: dict, state: PlayerState) -> PlayerState:
    """The next frame while playing (wrapping at the end); unchanged when paused."""
    if not state.playing:
        return state
    return replace(state, frame=(state.frame + 1) % len(_clip(clips, state.clip)))


def _scale(img: np.ndarray, factor: int) -> np.ndarray:
    return np.repeat(np.repeat(img, factor, 0), factor, 1)


def render_frame(clips: dict, state: PlayerState, display: int = 160) -> np.ndarray:
    """(display, 2 display + gap, 3) uint8: speaker frame | listener frame (nearest-neighbour scaled)."""
    c = _clip(clips, state.clip)
    s, lis = c.speaker[state.frame], c.listener[state.mode][state.frame]
    f = max(1, display // s.shape[0])
    gap = np.full((s.shape[0] * f, 4, 3), 255, np.uint8)
    return np.concatenate([_scale(s, f), gap, _scale(lis, f)], 1)


def attention_row(clip: PlayerClip, frame: int) -> np.ndarray:
    """(T,) the listener frame's attention over speaker frames, normalised to sum 1 (zeros if none)."""
    a = np.asarray(clip.attention[frame], np.float64).clip(0, None)
    return a / a.sum() if a.sum() > 0 else a


def attention_strip(clips: dict, state: PlayerState, width: int = 320, height: int = 60) -> np.ndarray:
    """(height, width, 3) uint8: bars of the current frame's attention over speaker time (blue) and a
    red line at the current frame; speaker frames without weight stay white."""
    c = _clip(clips, state.clip)
    a = attention_row(c, state.frame)
    T = len(a)
    img = np.full((height, width, 3), 255, np.uint8)
    col = (np.arange(width) * T // width).clip(0, T - 1)
    h = (a[col] / max(a.max(), 1e-9) * (height - 4)).astype(int)
    rows = np.arange(height)[:, None]
    img[(rows >= height - 2 - h[None, :]) & (h[None, :] > 0)] = (40, 90, 200)
    x = int((state.frame + 0.5) * width / T)
    img[:, max(0, x - 1):x + 1] = (220, 30, 30)
    return img


def png(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(img, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def wav_bytes(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """16-bit PCM WAV bytes of a float waveform in [-1, 1]."""
    from scipy.io import wavfile

    x = np.clip(np.asarray(audio, np.float64), -1, 1)
    buf = io.BytesIO()
    wavfile.write(buf, sample_rate, (x * 32767).astype(np.int16))
    return buf.getvalue()


# ----------------------------------------------------------------------------- storage
def save_clips(path: str | os.PathLike, clips: dict) -> Path:
    """Write clips to one ``.npz`` (temp file + rename)."""
    from ..cache import atomic_write_bytes

    arrays = {}
    for i, (name, c) in enumerate(clips.items()):
        arrays[f"c{i}_name"] = np.array(name)
        arrays[f"c{i}_speaker"] = c.speaker
        arrays[f"c{i}_attention"] = c.attention.astype(np.float32)
        arrays[f"c{i}_fps"] = np.array(c.fps)
        arrays[f"c{i}_modes"] = np.array(list(c.listener))
        for j, v in enumerate(c.listener.values()):
            arrays[f"c{i}_listener{j}"] = v
        if c.audio is not None:
            arrays[f"c{i}_audio"] = c.audio.astype(np.float32)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def load_clips(path: str | os.PathLike) -> dict:
    p = Path(os.fspath(path))
    if not p.is_file():
        raise ValueError(f"no player clips at {p} (run notebook 08 first, or use demo_clips())")
    z = np.load(p)
    clips = {}
    i = 0
    while f"c{i}_name" in z:
        modes = [str(m) for m in z[f"c{i}_modes"]]
        c = PlayerClip(str(z[f"c{i}_name"]), z[f"c{i}_speaker"], {m: z[f"c{i}_listener{j}"] for j, m in enumerate(modes)},
                       z[f"c{i}_attention"], float(z[f"c{i}_fps"]), z[f"c{i}_audio"] if f"c{i}_audio" in z else None)
        clips[c.name] = c
        i += 1
    if not clips:
        raise ValueError(f"{p} holds no player clips")
    return clips


def demo_clips(n: int = 2, frames: int = 48, size: int = 32, seed: int = 0) -> dict:
    """Engine dyads with the engine's own listener (no model) and a causal attention that looks back
    at the frames ``delay`` before: for trying the player without a notebook run."""
    from ..synth import dyads

    b = dyads(n, frames, size=size, seed=seed)
    T = frames
    att = np.zeros((T, T), np.float32)
    for t in range(T):
        s = max(0, t - b.delay_frames)
        att[t, s:t + 1] = 0.2
        att[t, s] = 1.0
    return {f"engine dyad {i}": PlayerClip(f"engine dyad {i}", b.speaker_frames[i], {"engine listener": b.listener_frames[i]},
                                           att, b.fps, b.audio[i]) for i in range(n)}


# ----------------------------------------------------------------------------- widget
class ListenerPlayerWidget:
    """Clip dropdown, mode toggle, Play (play/pause) + frame scrubber, frame image, attention strip, audio."""

    def __init__(self, clips: dict, display: int = 160) -> None:
        import ipywidgets as w

        if not clips:
            raise ValueError("ListenerPlayerWidget: no clips")
        self.clips, self.display = clips, display
        self.state = initial_state(clips)
        c = clips[self.state.clip]
        self.clip_menu = w.Dropdown(options=list(clips), value=self.state.clip, description="speaker clip")
        self.mode = w.ToggleButtons(options=list(c.listener), value=self.state.mode, description="listener")
        self.play = w.Play(value=0, min=0, max=len(c) - 1, step=1, interval=int(1000 / c.fps), description="play")
        self.scrub = w.IntSlider(value=0, min=0, max=len(c) - 1, description="frame", continuous_update=True)
        w.jslink((self.play, "value"), (self.scrub, "value"))
        self.image = w.Image(format="png")
        self.attention = w.Image(format="png", width=320, height=60)
        self.label = w.Label()
        self.audio = w.Audio(format="wav", autoplay=False, loop=False)
        self.clip_menu.observe(lambda ch: self.on_clip(ch["new"]), names="value")
        self.mode.observe(lambda ch: self._apply(set_mode(self.clips, self.state, ch["new"])), names="value")
        self.scrub.observe(lambda ch: self._apply(set_frame(self.clips, self.state, ch["new"])), names="value")
        self.play.observe(lambda ch: setattr(self, "state", replace(self.state, playing=bool(ch["new"]))),
                          names="playing")
        self.box = w.VBox([w.HBox([self.clip_menu, self.mode]), w.HBox([self.play, self.scrub, self.label]),
                           self.image, w.Label("attention of this listener frame over the speaker's timeline "
                                               "(red: now; a causal adapter puts nothing to the right)"),
                           self.attention, self.audio])
        self.on_clip(self.state.clip)

    def on_clip(self, name: str) -> None:
        self.state = select_clip(self.clips, self.state, name)
        c = self.clips[name]
        self.mode.options = list(c.listener)
        self.mode.value = self.state.mode
        self.play.max = self.scrub.max = len(c) - 1
        self.scrub.value = 0
        if c.audio is not None:
            self.audio.value = wav_bytes(c.audio)
        self.refresh()

    def _apply(self, state: PlayerState) -> None:
        self.state = state
        self.refresh()

    def refresh(self) -> None:
        c = self.clips[self.state.clip]
        self.image.value = png(render_frame(self.clips, self.state, self.display))
        self.attention.value = png(attention_strip(self.clips, self.state))
        self.label.value = f"frame {self.state.frame + 1}/{len(c)} · {self.state.frame / c.fps:.2f} s · {self.state.mode}"

    @classmethod
    def from_run(cls, path: str | os.PathLike | None = None, **kw) -> "ListenerPlayerWidget":
        """The clips notebook 08 saved (``runs/08_ditailistener/<profile>/player_clips.npz``, smoke first),
        else :func:`demo_clips`."""
        from ..config import run_dir

        cands = [Path(path)] if path else [run_dir("08_ditailistener", p) / "player_clips.npz" for p in ("smoke", "demo")]
        for c in cands:
            if c.is_file():
                return cls(load_clips(c), **kw)
        return cls(demo_clips(), **kw)

    def _repr_mimebundle_(self, **kw):
        return self.box._repr_mimebundle_(**kw)
