"""Refit expression prototypes against real-face critics: how the engine's table was tuned (issue 21).

    FACELAB_DATA=../shared/data python scripts/refit_prototypes.py --critic-cache /tmp/critics \\
        --classes disgust anger --reduce min --json refit.json

Analysis by synthesis (:func:`facelab.synth.realism.fit_prototype`) over each class's FACS-listed
AUs (:data:`SEARCH`), within :data:`CAPS`, against the *tuning* critics only
(:data:`facelab.synth.realism.TUNING_CRITICS`, all trained on FER2013 train; the held-out
critics never enter here). Classes are fitted in the order given, and a later class renders
with the earlier ones' new vectors in place. Prints each class's objective before and after
and the new apex vector; ``--json`` writes {class: {AU: value}} (AUs above 0.05), ready to be
copied into ``facelab.synth.expressions.BASIC`` after a look at the renders and the held-out read.
Each generation scores on its own freshly rendered faces, so the printed objective of the first
and last generation need not rise even when the search improved (synth-5's sad: -1.216 -> -1.323).
The synth-5 refit was ``--classes sad fear disgust anger surprise --reduce mean`` (3.5 minutes on
one core with the critics cached).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from facelab.cache import atomic_write_bytes
from facelab.mesh import AU_INDEX, AU_NAMES
from facelab.synth import expressions as E
from facelab.synth import realism

#: The AUs searched per class: FACS's (EMFACS) actions for it, plus the stand-ins the AU-to-mesh
#: model needs (AU15/AU17 for the missing lower-lip depressor AU16; AU25/AU26 for open mouths).
SEARCH = {"sad": ["AU01", "AU04", "AU07", "AU15", "AU17", "AU43"],
          "fear": ["AU01", "AU02", "AU04", "AU05", "AU10", "AU15", "AU17", "AU20", "AU25", "AU26"],
          "disgust": ["AU04", "AU06", "AU07", "AU09", "AU10", "AU15", "AU17", "AU20", "AU25", "AU26"],
          "anger": ["AU04", "AU05", "AU07", "AU09", "AU10", "AU17", "AU20", "AU23", "AU24", "AU25", "AU26"],
          "surprise": ["AU01", "AU02", "AU05", "AU25", "AU26"],
          "happy": ["AU06", "AU12", "AU25"]}
#: Caps tighter than ``expressions.AU_MAX``: the closed SDF face's front normals stay above the
#: bound of ``tests/test_synth_sdf.py`` (an uncapped disgust fell to 0.49 against 0.5; synth-4).
CAPS = {"AU09": 1.6, "AU17": 1.2, "AU07": 2.8}
CAPS_PER_CLASS = {"disgust": {"AU04": 2.6, "AU07": 2.4, "AU15": 2.0, "AU20": 1.8}}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="folder holding fer2013/ (default: $FACELAB_DATA)")
    ap.add_argument("--critic-cache", required=True, help="folder to store/reuse the trained critics")
    ap.add_argument("--classes", nargs="+", default=["sad", "fear", "disgust", "anger"], choices=sorted(SEARCH))
    ap.add_argument("--critics", nargs="+", default=None,
                    help="names from realism.TUNING_CRITICS (default: all of them)")
    ap.add_argument("--reduce", default="mean", choices=("mean", "min"))
    ap.add_argument("--generations", type=int, default=18)
    ap.add_argument("--population", type=int, default=10)
    ap.add_argument("--sigma", type=float, default=0.6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", default=None, help="a JSON written by --json: start from those vectors")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    if a.start:
        for cls, aus in json.loads(open(a.start).read()).items():
            v = np.zeros(len(AU_NAMES), np.float32)
            for n, x in aus.items():
                v[AU_INDEX[n]] = x
            E.PROTOTYPES[E.ALL_EXPRESSIONS.index(cls)] = v
    specs = [c for c in realism.TUNING_CRITICS if a.critics is None or c[0] in a.critics]
    if a.critics and len(specs) != len(a.critics):
        known = ", ".join(c[0] for c in realism.TUNING_CRITICS)
        raise SystemExit(f"refit_prototypes: unknown critic in {a.critics}: expected names from {known}")
    critics = list(realism.load_critics(a.data, a.critic_cache, critics=tuple(specs), verbose=True).values())
    out = {}
    for cls in a.classes:
        t = time.perf_counter()
        caps = {**CAPS, **CAPS_PER_CLASS.get(cls, {})}
        best, hist = realism.fit_prototype(cls, critics, SEARCH[cls], generations=a.generations,
                                           population=a.population, sigma=a.sigma, seed=a.seed,
                                           au_max=caps, reduce=a.reduce)
        E.PROTOTYPES[E.ALL_EXPRESSIONS.index(cls)] = best  # later classes see this one refitted
        out[cls] = {n: round(float(best[AU_INDEX[n]]), 2) for n in AU_NAMES if best[AU_INDEX[n]] > 0.05}
        print(f"{cls}: {time.perf_counter() - t:.0f} s, objective {hist[0]:.3f} -> {hist[-1]:.3f}: {out[cls]}",
              flush=True)
    if a.json:
        atomic_write_bytes(a.json, json.dumps(out, indent=1).encode())


if __name__ == "__main__":
    main()
