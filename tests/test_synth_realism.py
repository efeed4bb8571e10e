"""Realism of facelab.synth against real data (FER2013): a small CNN trained on real faces
recognises the synthetic basic expressions above chance, and one trained on synthetic faces
recognises FER2013 publictest above chance. Per-class accuracies are printed (``-s``).

Needs FACELAB_DATA (the folder holding ``fer2013/{train,publictest}/<class>/*.jpg``).
A longer run with bigger sets: ``python -m facelab.synth.realism``.
"""
from __future__ import annotations

import os

import pytest

from facelab.config import BASIC7

# ~15 CPU-minutes on 2 cores: run by `make test-long`, not by `make test` / CI.
pytestmark = [pytest.mark.realdata, pytest.mark.slow, pytest.mark.long]

CHANCE = 1.0 / len(BASIC7)
#: Required margin of balanced accuracy (mean per-class recall) over chance, per direction.
#: Measured with exactly this configuration (seed 0, one torch thread; synth-10 engine, the eight
#: mirrored members trained at SYNTH_INTENSITY, session 19): real->synth 0.462, synth->real 0.298
#: balanced accuracy (chance 0.143); happy synth->real 0.346 (synth-9, session 18: 0.457, 0.307,
#: happy 0.369; synth-8 with the members at the default intensity, session 17: 0.459, 0.304, happy
#: 0.454; four members, session 16: 0.279, happy 0.399; the first engine: 0.176 and 0.228, happy
#: 0.517). The real-face critics are weak at this budget (0.384 balanced on publictest): see
#: facelab.synth.realism for a longer run.
MARGIN_REAL_TO_SYNTH = 0.02
MARGIN_SYNTH_TO_REAL = 0.05


@pytest.fixture(scope="module")
def result():
    root = os.environ.get("FACELAB_DATA")
    if not root:
        pytest.skip("FACELAB_DATA is not set: the realism test needs FER2013 at $FACELAB_DATA/fer2013")
    if not os.path.isdir(os.path.join(root, "fer2013")):
        pytest.skip(f"no fer2013/ under FACELAB_DATA={root}")
    from facelab.synth.realism import format_table, run
    # the pre-issue-21 budget: both critics 8 epochs, width 8, 24 px (the strong critics of
    # facelab.synth.realism.CRITICS take ~10 CPU-minutes more)
    cheap = {"width": 8, "epochs": 8, "pool": 2}
    critics = (("tune", "small", "train", 0, {**cheap, "per_class": 500}),
               ("heldout", "plain", "publictest", 1, {**cheap, "per_class": None}))
    res = run(root, n_synth=3000, n_synth_test=700, epochs=8, width=8, seed=0, critics=critics)
    print("\n" + format_table(res))
    return res


def test_real_trained_classifier_recognises_synthetic_expressions(result):
    r = result["real_to_synth"]
    assert r["balanced_accuracy"] > CHANCE + MARGIN_REAL_TO_SYNTH, r["per_class"]


def test_synthetic_trained_classifier_recognises_fer2013(result):
    r = result["synth_to_real"]
    assert r["balanced_accuracy"] > CHANCE + MARGIN_SYNTH_TO_REAL, r["per_class"]
    # the clearest expression transfers best: happy well above chance
    assert r["per_class"]["happy"] > 2 * CHANCE, r["per_class"]
