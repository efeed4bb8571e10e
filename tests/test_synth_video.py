"""facelab.synth.videos and facelab.synth.dyads: events agree with AU trajectories, captions
follow the events, blinks close the eyes, identity is constant; the speaker's mouth follows
the audio and the listener reacts causally with the configured lag."""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from facelab import mesh
from facelab.synth import SynthVideos, dyads, videos
from facelab.synth.dyads import SAMPLE_RATE, listener_response, load_wav, synthetic_speech

A = mesh.AU_INDEX
FPS = 10


@pytest.fixture(scope="module")
def vids():
    # 4 videos of 4 s at 10 fps, 48 px; two of them (seed-dependent) with a distractor face
    return videos(4, 40, FPS, seed=3, size=48, distractors=0.5, blink_rate=0.5)


def _inside(ev, t):
    return (t > ev["t_start"]) & (t < ev["t_end"])


def test_event_times_agree_with_au_trajectories(vids):
    t = vids.times
    assert vids.frames.shape == (4, 40, 48, 48, 3) and vids.aus.shape == (4, 40, 20)
    assert vids.pose.shape == (4, 40, 3) and vids.landmarks68.shape == (4, 40, 68, 2)
    n_checked = 0
    for i in range(4):
        for who, aus in ((0, vids.aus[i]), (1, vids.distractor_aus[i])):
            evs = [e for e in vids.events[i] if e["who"] == who]
            active = np.zeros(len(t), bool)
            for e in evs:
                inside = _inside(e, t)
                active |= inside
                for name in e["aus"]:
                    tr = aus[:, A[name]]
                    # the AU peaks inside the event's window, at its apex (held for at least
                    # one frame interval, so some frame samples it)
                    peak = int(np.argmax(np.where(inside, tr, -1)))
                    assert e["t_start"] < t[peak] < e["t_end"] and tr[peak] > 0.3, (i, e, name, t[peak])
                    apex = (t >= e["t_apex"] - 1e-6) & (t <= e["t_apex_end"] + 1e-6)
                    # (a blink relaxes AU05, the lid raiser, so its apex may dip)
                    assert apex.any() and (name == "AU05" or tr[apex].max() == pytest.approx(tr[peak], rel=1e-5))
                    n_checked += 1
            # each AU is zero outside the events that name it
            for name, j in A.items():
                own = np.zeros(len(t), bool)
                for e in evs:
                    if name in e["aus"]:
                        own |= _inside(e, t)
                assert np.abs(aus[~own, j]).max(initial=0) < 1e-6, (i, who, name)
            if who == 1 and not vids.has_distractor[i]:
                assert not evs and np.all(aus == 0)
            # outside all events every AU is exactly zero
            assert np.abs(aus[~active]).max(initial=0) < 1e-6, (i, who)
    assert n_checked >= 8


def test_captions_follow_events_in_order(vids):
    for i in range(4):
        cap = vids.captions[i]
        acts = [e for e in vids.events[i] if e["action"] != "blink"]
        assert acts, "every video has at least one facial or head event"
        pos = -1
        for e in sorted(acts, key=lambda e: e["t_start"]):
            nxt = cap.find(e["event"], pos + 1)
            assert nxt > pos, f"{e['event']!r} not found after position {pos} in {cap!r}"
            pos = nxt
        # every blink is told: "blinks", "blinks twice", "while blinking three times", ...
        counts = {"once": 1, "twice": 2, "three times": 3, "four times": 4}
        told = 0
        for m in re.finditer(r"blink(?:s|ing)(?: (once|twice|three times|four times))?", cap):
            told += counts.get(m.group(1), 1)
        assert told == sum(e["action"] == "blink" for e in vids.events[i]), cap
        if vids.has_distractor[i]:
            assert vids.subjects[i] in ("the person on the left", "the person on the right")
            assert "the person on the" in cap.lower()
        else:
            assert cap.startswith("The person ") and "on the left" not in cap
    assert vids.has_distractor.any() and not vids.has_distractor.all()  # the fixture covers both


def _eyelid_gap(lm68: np.ndarray) -> np.ndarray:
    pairs = [(37, 41), (38, 40), (43, 47), (44, 46)]
    return np.mean([np.abs(lm68[..., a, 1] - lm68[..., b, 1]) for a, b in pairs], 0)


def test_blinks_close_the_eyes(vids):
    gap = _eyelid_gap(vids.landmarks68)            # (n, T) pixels
    t = vids.times
    ratio, n_blinks = [], 0
    for i in range(4):
        open_ = vids.aus[i, :, A["AU43"]] < 1e-6
        for e in vids.events[i]:
            if e["action"] != "blink" or e["who"] != 0:
                continue
            apex = (t >= e["t_apex"] - 1e-6) & (t <= e["t_apex_end"] + 1e-6)
            assert apex.any() and vids.aus[i, apex, A["AU43"]].max() == pytest.approx(e["intensity"], abs=1e-3)
            ratio.append(gap[i][apex].min() / np.median(gap[i][open_]))
            n_blinks += 1
    assert n_blinks >= 3, "the fixture should contain several blinks"
    # measured: shut lids are < 10% of the open gap (48 px faces, ~2 px open), also during
    # events that widen the eyes
    assert max(ratio) < 0.3, ratio


def test_identity_constant_and_deterministic(vids):
    # a cheek/nose patch keeps its colour across frames (same skin, same light) while videos differ
    idx = [50, 280, 4, 195]
    cols = []
    for i in range(4):
        lm = vids.landmarks468[i][:, idx]                      # (T, 4, 2)
        r = np.rint(lm[..., 1]).astype(int).clip(0, 47)
        c = np.rint(lm[..., 0]).astype(int).clip(0, 47)
        cols.append(vids.frames[i][np.arange(40)[:, None], r, c].astype(float).mean(1))  # (T, 3)
    within = max(np.median(np.linalg.norm(c - np.median(c, 0), axis=1)) for c in cols)
    between = min(np.linalg.norm(np.median(a, 0) - np.median(b, 0)) for k, a in enumerate(cols) for b in cols[k + 1:])
    assert within < 12 and between > 2 * within, (within, between)
    assert vids.identity["shape"].shape == (4, 13)
    a = videos(2, 12, 8, seed=7, size=32)
    b = videos(2, 12, 8, seed=7, size=32)
    c = videos(2, 12, 8, seed=8, size=32)
    assert a.frames.tobytes() == b.frames.tobytes() and a.captions == b.captions and a.events == b.events
    assert a.frames.tobytes() != c.frames.tobytes()


def test_video_bad_input():
    with pytest.raises(ValueError, match="n must be a positive int"):
        videos(0, 10)
    with pytest.raises(ValueError, match="frames must be an int >= 2"):
        videos(1, 1)
    with pytest.raises(ValueError, match="unknown action 'smirk'"):
        videos(1, 10, actions=["smile", "smirk"])
    with pytest.raises(ValueError, match="too short"):
        videos(1, 4, fps=25)
    with pytest.raises(ValueError, match="distractors"):
        videos(1, 20, distractors=2)


def test_video_dataset_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path))
    d1 = SynthVideos(2, 10, fps=8, size=32, seed=1)
    mtime = d1.path.stat().st_mtime_ns
    d2 = SynthVideos(2, 10, fps=8, size=32, seed=1)
    assert d2.path == d1.path and d2.path.stat().st_mtime_ns == mtime
    item = d2[1]
    assert item["frames"].shape == (10, 3, 32, 32) and torch.equal(item["frames"], d1[1]["frames"])
    assert item["caption"] == d1.captions[1] and item["events"] == d1.events[1]
    assert not list((tmp_path / "synth").glob(".*"))


# ---------------------------------------------------------------- dyads
def _mouth_gap(lm68):
    return np.abs(lm68[..., 66, 1] - lm68[..., 62, 1])


def test_speaker_mouth_follows_the_envelope():
    d = dyads(2, 60, 25, seed=0, size=48)
    assert d.speaker_frames.shape == (2, 60, 48, 48, 3) and d.listener_frames.shape == (2, 60, 48, 48, 3)
    assert d.envelope.shape == (2, 60) and d.audio.shape == (2, 60 * SAMPLE_RATE // 25)
    for i in range(2):
        r = np.corrcoef(_mouth_gap(d.speaker_landmarks68[i]), d.envelope[i])[0, 1]
        assert r > 0.8, r  # measured ~0.95-0.97
    # the listener's mouth does not follow the speaker's audio
    assert abs(np.corrcoef(_mouth_gap(d.listener_landmarks68[0]), d.envelope[0])[0, 1]) < 0.5


def test_listener_is_causal_with_the_configured_delay():
    fps, T, k = 25, 150, 70
    audio = synthetic_speech(T / fps + 0.1, np.random.default_rng(4))
    a = dyads(1, T, fps, audio=audio, seed=2, render=False, delay=0.4)
    dfr = a.delay_frames
    assert dfr == 10 and a.delay == pytest.approx(0.4)
    changed = audio.copy()
    start = k * SAMPLE_RATE // fps
    changed[start:] = synthetic_speech(len(changed) / SAMPLE_RATE, np.random.default_rng(99))[start:len(changed)]
    b = dyads(1, T, fps, audio=changed, seed=2, render=False, delay=0.4)
    # the speaker changes from frame k on; the listener not before k + delay
    assert np.array_equal(a.envelope[0, :k], b.envelope[0, :k]) and not np.array_equal(a.envelope[0, k:], b.envelope[0, k:])
    assert np.array_equal(a.speaker_aus[0, :k], b.speaker_aus[0, :k])
    assert np.array_equal(a.listener_aus[0, :k + dfr], b.listener_aus[0, :k + dfr])
    assert np.array_equal(a.listener_pose[0, :k + dfr], b.listener_pose[0, :k + dfr])
    assert not (np.array_equal(a.listener_aus[0], b.listener_aus[0]) and np.array_equal(a.listener_pose[0], b.listener_pose[0]))
    # the same at the level of listener_response, for an arbitrary speaker signal change
    rng = np.random.default_rng(0)
    env = rng.random(T).astype(np.float32)
    sa = rng.random((T, 20)).astype(np.float32)
    env2, sa2 = env.copy(), sa.copy()
    env2[k:] = rng.random(T - k)
    sa2[k:] = rng.random((T - k, 20))
    l1 = listener_response(env, sa, fps, dfr, np.random.default_rng(1))
    l2 = listener_response(env2, sa2, fps, dfr, np.random.default_rng(1))
    assert np.array_equal(l1[0][:k + dfr], l2[0][:k + dfr]) and np.array_equal(l1[1][:k + dfr], l2[1][:k + dfr])
    assert not np.array_equal(l1[0][k + dfr:], l2[0][k + dfr:])


@pytest.mark.parametrize("delay", [0.2, 0.48])
def test_listener_lags_the_speaker_by_the_delay(delay):
    fps = 25
    d = dyads(3, 200, fps, seed=5, render=False, delay=delay)
    dfr = d.delay_frames
    lags = np.arange(0, 3 * dfr)
    for i in range(3):
        for au in ("AU12", "AU02"):
            s, lis = d.speaker_aus[i, :, A[au]], d.listener_aus[i, :, A[au]]
            if s.std() < 1e-3:
                continue  # no event of this kind in this dyad
            # normalised cross-correlation (Pearson r of the overlapping parts) per lag
            xc = np.array([np.corrcoef(s[:len(s) - L], lis[L:])[0, 1] for L in lags])
            assert lags[int(np.nanargmax(xc))] == dfr, (i, au, dfr, lags[int(np.nanargmax(xc))])
            assert xc[dfr] > 0.99 and xc[0] < xc[dfr] - 0.1, (xc[0], xc[dfr])
        assert d.speaker_aus[i, :, A["AU12"]].max() > 1.0  # every 8 s dyad has a speaker smile
        # nods start exactly one delay after a detected pause
        nods = [e for e in d.events[i] if e["event"] == "nods"]
        assert all(e["frame"] - e["trigger_frame"] == dfr for e in nods)
        assert [e["trigger_frame"] for e in nods] == [p for p in d.pauses[i] if p + dfr < 200]
    assert sum(len(p) for p in d.pauses) >= 3


def test_dyads_bad_input_and_audio_files(tmp_path):
    from scipy.io import wavfile

    missing = tmp_path / "nope.wav"
    with pytest.raises(ValueError, match=re.escape(str(missing))):
        dyads(1, 10, audio=str(missing))
    with pytest.raises(ValueError, match="frames must be an int >= 2"):
        dyads(1, 1)
    with pytest.raises(ValueError, match="n must be a positive int"):
        dyads(-1, 10)
    # an 8 kHz wav is resampled to 16 kHz, or rejected with a clear message
    sr = 8000
    x = (0.3 * np.sin(2 * np.pi * 220 * np.arange(sr) / sr) * 32767).astype(np.int16)
    p = tmp_path / "tone8k.wav"
    wavfile.write(p, sr, x)
    y = load_wav(p)
    assert abs(len(y) - SAMPLE_RATE) <= 2
    with pytest.raises(ValueError, match="8000 Hz.*16 kHz"):
        load_wav(p, resample=False)
    with pytest.raises(ValueError, match="lasts 1.00 s"):
        dyads(1, 50, 25, audio=p, render=False)  # 2 s needed


def test_dyads_with_real_speech():
    root = os.environ.get("FACELAB_DATA")
    if not root or not list((Path(root) / "audio").glob("*.wav")):
        pytest.skip("FACELAB_DATA is not set or has no audio/*.wav (e.g. export FACELAB_DATA=/work/shared/data)")
    wavs = sorted((Path(root) / "audio").glob("*.wav"))
    m = min(4, len(wavs))  # the shared folder's fourth file is 48 kHz: resampled on load
    d = dyads(m, 75, 25, audio=[str(w) for w in wavs], seed=0, size=32)
    for i in range(m):
        assert d.envelope[i].std() > 0.1 and d.sources[i].startswith(str(wavs[i]))
        r = np.corrcoef(_mouth_gap(d.speaker_landmarks68[i]), d.envelope[i])[0, 1]
        assert r > 0.8, (wavs[i], r)
