"""facelab.synth.scene_videos: boxes, distractors, FEC-style captions, per-frame action labels."""
from __future__ import annotations

import numpy as np
import pytest

from facelab import metrics_fec
from facelab.synth.scene_videos import frame_action_labels, scene_videos, time_keys


@pytest.fixture(scope="module")
def clips():
    return scene_videos(3, frames=12, seed=3, canvas=64, main_size=32, distractor_size=20, n_events=2,
                        actions=("smile", "brow_raise"), late_entry=1.0)


def test_shapes_boxes_and_presence(clips):
    n, T = 3, 12
    assert clips.frames.shape == (n, T, 64, 64, 3) and clips.boxes.shape == (n, T, 2, 4)
    assert clips.present[..., 0].all() and clips.has_distractor.all()
    assert not clips.present[:, 0, 1].any() and clips.present[:, -1, 1].all()   # late entry
    main, dis = clips.boxes[..., 0, :], clips.boxes[clips.present[..., 1]][:, 1]
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    assert area(main).mean() > area(dis).mean()                              # the main face is larger
    assert np.isnan(clips.boxes[:, 0, 1]).all()


def test_captions_follow_the_template_and_parse(clips):
    assert time_keys(3) == ["beginning", "middle", "end"] and len(time_keys(6)) == 6
    for cap, evs in zip(clips.captions, clips.events):
        assert cap.startswith("A") and "At the beginning, the person" in cap and "Towards the end" in cap
        assert len(metrics_fec.RuleExtractor()(cap)) == len(evs) == 2
    s = metrics_fec.event_scores(clips.captions, clips.captions)
    assert s.tem == pytest.approx(1.0)


def test_frame_labels_mark_event_frames(clips):
    lab = frame_action_labels(clips)
    assert lab.shape == (3, 12) and set(np.unique(lab)) <= {0, 1, 2} and (lab > 0).any()
    with pytest.raises(ValueError, match="not among"):
        frame_action_labels(clips, ["frown"])
