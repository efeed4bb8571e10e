"""The listener player's plain-function callbacks, headless (notebook 08's widget)."""
from __future__ import annotations

import numpy as np
import pytest

from facelab.widgets import listener_player as LP


def _clips(T=12, size=8):
    rng = np.random.default_rng(0)
    att = np.tril(rng.random((T, T))).astype(np.float32)          # causal: nothing after the frame
    mk = lambda: rng.integers(0, 255, (T, size, size, 3), dtype=np.uint8)   # noqa: E731
    return {"a": LP.PlayerClip("a", mk(), {"Gen": mk(), "Gen+Edit": mk()}, att, 25.0, rng.normal(0, 0.1, 16000).astype(np.float32)),
            "b": LP.PlayerClip("b", mk()[:8], {"Gen": mk()[:8]}, att[:8, :8], 25.0)}


def test_state_callbacks():
    clips = _clips()
    st = LP.initial_state(clips)
    assert (st.clip, st.frame, st.mode, st.playing) == ("a", 0, "Gen", False)
    st = LP.set_frame(clips, st, 5)
    st = LP.set_mode(clips, st, "Gen+Edit")
    assert (st.frame, st.mode) == (5, "Gen+Edit")
    st2 = LP.select_clip(clips, st, "b")
    assert (st2.clip, st2.frame, st2.mode) == ("b", 0, "Gen")    # b has no Edit video: falls back
    assert LP.advance(clips, st) == st                             # paused: no change
    playing = LP.toggle_play(st)
    assert LP.advance(clips, playing).frame == 6
    assert LP.advance(clips, LP.set_frame(clips, playing, 11)).frame == 0   # wraps


def test_bad_input_messages():
    clips = _clips()
    st = LP.initial_state(clips)
    with pytest.raises(ValueError, match="unknown clip 'zz'"):
        LP.select_clip(clips, st, "zz")
    with pytest.raises(ValueError, match=r"frames 0\.\.11"):
        LP.set_frame(clips, st, 12)
    with pytest.raises(ValueError, match="unknown mode"):
        LP.set_mode(clips, st, "Edit only")
    c = clips["a"]
    with pytest.raises(ValueError, match="do not match"):
        LP.PlayerClip("x", c.speaker, {"Gen": c.speaker[:5]}, c.attention, 25.0)


def test_render_changes_with_frame_and_mode():
    clips = _clips()
    st = LP.initial_state(clips)
    a = LP.render_frame(clips, st, display=32)
    assert a.shape == (32, 68, 3) and a.dtype == np.uint8
    assert not np.array_equal(a, LP.render_frame(clips, LP.set_frame(clips, st, 1), display=32))
    assert not np.array_equal(a, LP.render_frame(clips, LP.set_mode(clips, st, "Gen+Edit"), display=32))
    assert np.array_equal(a[:, :32], LP.render_frame(clips, LP.set_mode(clips, st, "Gen+Edit"), display=32)[:, :32])


def test_attention_strip_is_causal_and_marks_now():
    clips = _clips()
    st = LP.set_frame(clips, LP.initial_state(clips), 4)
    row = LP.attention_row(clips["a"], 4)
    assert row[5:].sum() == 0 and row.sum() == pytest.approx(1.0)
    img = LP.attention_strip(clips, st, width=120, height=30)
    assert img.shape == (30, 120, 3)
    x = int(4.5 * 120 / 12)
    assert (img[:, x - 1] == (220, 30, 30)).all()                          # the red "now" line
    right = img[:, 5 * 120 // 12:]                                         # speaker frames after 4
    assert not ((right == (40, 90, 200)).all(-1)).any()                    # no bars after now


def test_wav_and_save_load_roundtrip(tmp_path):
    from scipy.io import wavfile
    import io

    clips = _clips()
    sr, x = wavfile.read(io.BytesIO(LP.wav_bytes(clips["a"].audio)))
    assert sr == 16000 and len(x) == 16000 and x.dtype == np.int16
    p = LP.save_clips(tmp_path / "clips.npz", clips)
    back = LP.load_clips(p)
    assert list(back) == ["a", "b"] and list(back["a"].listener) == ["Gen", "Gen+Edit"]
    assert np.array_equal(back["a"].listener["Gen+Edit"], clips["a"].listener["Gen+Edit"])
    assert back["b"].audio is None and back["a"].fps == 25.0
    with pytest.raises(ValueError, match="run notebook 08"):
        LP.load_clips(tmp_path / "missing.npz")


def test_widget_wires_the_scrubber(tmp_path):
    pytest.importorskip("ipywidgets")
    clips = _clips()
    w = LP.ListenerPlayerWidget(clips, display=32)
    before = w.image.value
    w.scrub.value = 3
    assert w.state.frame == 3 and w.image.value != before and "frame 4/12" in w.label.value
    w.mode.value = "Gen+Edit"
    assert w.state.mode == "Gen+Edit"
    w.clip_menu.value = "b"
    assert w.state.clip == "b" and w.scrub.max == 7 and list(w.mode.options) == ["Gen"]
    assert w.audio.value[:4] in (b"RIFF", b"")  # a's audio stays until a clip with audio is chosen
    w2 = LP.ListenerPlayerWidget.from_run(LP.save_clips(tmp_path / "c.npz", clips))
    assert w2.state.clip == "a"
