"""facelab.synth.calibrate: the landmark chain's per-class AU profiles, its gain on engine faces,
and the stored calibration."""
from __future__ import annotations

import json

import numpy as np
import pytest

from facelab.config import BASIC7
from facelab.mesh import AU_NAMES


def test_corrected_deltas_divide_by_the_gain_only_where_the_chain_sees_the_au():
    from facelab.synth.calibrate import corrected_deltas

    mean = {c: np.zeros(len(AU_NAMES)) for c in BASIC7}
    mean["happy"] = np.full(len(AU_NAMES), 0.4)
    gain = {"gain": {a: 0.5 for a in AU_NAMES}, "corr": {a: 0.1 for a in AU_NAMES}}
    gain["corr"]["AU12"] = 0.7                       # seen: delta 0.4 / gain 0.5
    gain["corr"]["AU06"], gain["gain"]["AU06"] = 0.9, 0.01   # correlated but reads back ~nothing
    out = corrected_deltas({"mean": mean}, gain)
    happy = dict(zip(AU_NAMES, out["happy"]))
    assert happy["AU12"] == pytest.approx(0.8)
    assert np.isnan(happy["AU06"]) and np.isnan(happy["AU01"])
    assert np.nansum(np.abs(out["neutral"])) == 0


@pytest.fixture(scope="module")
def landmark_model():
    pytest.importorskip("ai_edge_litert", reason="FaceMesh needs the TFLite runtime")


def test_chain_gain_reads_the_smile_back_on_fer_framed_faces(landmark_model):
    """The 48 px chain follows the smile (AU12; correlation 0.75 on 420 faces, 0.77 on these 280)
    and cannot see the jaw drop (AU26: -0.03, 0.04), as measured in session 15."""
    from facelab.synth.calibrate import chain_gain

    g = chain_gain(280)
    assert g["n"] == 280
    assert g["corr"]["AU12"] > 0.55 and g["gain"]["AU12"] > 0.4, (g["corr"]["AU12"], g["gain"]["AU12"])
    assert abs(g["corr"]["AU26"]) < 0.3, g["corr"]["AU26"]


def test_main_writes_profiles_of_both_sides(tmp_path, landmark_model, write_noise_fer2013):
    from facelab.synth import calibrate
    from facelab.synth.datasets import CACHE_VERSION

    write_noise_fer2013(tmp_path, "train", 3, seed=0)
    out = tmp_path / "cal.json"
    calibrate.main(["--data", str(tmp_path), "--per-class", "2", "--engine", "14", "--write", "--out", str(out)])
    cal = json.loads(out.read_text())
    assert cal["aus"] == list(AU_NAMES) and CACHE_VERSION in cal["source"]
    assert cal["real"]["n"] == {c: 2 for c in BASIC7}
    assert sum(cal["engine"]["n"].values()) == 14
    assert all(len(v) == len(AU_NAMES) for v in cal["real"]["mean"].values())
    assert "gain" not in cal and [p.name for p in tmp_path.iterdir() if p.suffix == ".json"] == ["cal.json"]
