"""Refit expression prototypes against real-face critics: how the engine's table was tuned (issue 21).

    FACELAB_DATA=../shared/data python scripts/refit_prototypes.py --critic-cache /tmp/critics \\
        --classes disgust anger --reduce min --json refit.json

Analysis by synthesis (:func:`facelab.synth.realism.fit_prototype`) over each class's AUs
(:data:`SEARCH_WIDE` within :data:`MESH_LIMITS`, or FACS's only, :data:`SEARCH_FACS` within
:data:`CAPS`), against the *tuning* critics only
(:data:`facelab.synth.realism.TUNING_CRITICS`, all trained on FER2013 train; the held-out
critics never enter here). Classes are fitted in the order given, and a later class renders
with the earlier ones' new vectors in place. Prints each class's objective before and after
and the new apex vector; ``--json`` writes {class: {AU: value}} (AUs above 0.05), ready to be
copied into ``facelab.synth.expressions.BASIC`` after a look at the renders and the held-out read.
Each generation scores on its own freshly rendered faces, so the printed objective of the first
and last generation need not rise even when the search improved (synth-5's sad: -1.216 -> -1.323).
The synth-5 refit was ``--search facs --generations 18 --sigma 0.6 --faces 24 --prior-weight 0.02
--classes sad fear disgust anger surprise --reduce mean`` (3.5 minutes on one core with the critics
cached). synth-7's (the defaults, about 2 minutes a class): ``--classes disgust fear --reduce min
--seed 7`` and ``--classes sad --reduce mean --seed 7``, then fear again from that vector,
``--classes fear --reduce min --seed 3 --generations 48 --start <the first run's JSON>``. Runs
that tied on the tuning critics' mean balanced recall (within 0.005) were split by the worst
critic's recall of the class. Session 15 refitted disgust and sad with the held-out-like
``realism.WEAK_CRITICS`` added (``--critics tune tune_plain tune_plain_strong tune_small_strong
tune_weak_a tune_weak_b``, disgust ``--reduce min --seed 5 --generations 48``, sad ``--reduce mean
--seed 7 --generations 48``); the held-out critic read both worse, so they were not kept (see there).
Session 17 refitted them against TUNING_CRITICS and weak draws a-d (``--critics ... tune_weak_a
tune_weak_b tune_weak_c tune_weak_d --reduce mean``, 36 generations, seeds 7 / 5) and read the
result with draws e and f, which the fit never saw: they moved within one class's sampling error
(``realism.WEAK_CRITICS``), so those were not kept either.
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

#: The AUs searched per class with ``--search facs`` (synth-4 to synth-6): FACS's (EMFACS) actions
#: for it, plus the stand-ins the AU-to-mesh model needs (AU15/AU17 for the missing lower-lip
#: depressor AU16; AU25/AU26 for open mouths).
SEARCH_FACS = {"sad": ["AU01", "AU04", "AU07", "AU15", "AU17", "AU43"],
          "fear": ["AU01", "AU02", "AU04", "AU05", "AU10", "AU15", "AU17", "AU20", "AU25", "AU26"],
          "disgust": ["AU04", "AU06", "AU07", "AU09", "AU10", "AU15", "AU17", "AU20", "AU25", "AU26"],
          "anger": ["AU04", "AU05", "AU07", "AU09", "AU10", "AU17", "AU20", "AU23", "AU24", "AU25", "AU26"],
          "surprise": ["AU01", "AU02", "AU05", "AU25", "AU26"],
          "happy": ["AU06", "AU12", "AU25"]}
#: ``--search wide`` (synth-7): every AU but the smile's (AU06 stays: cheeks rise in a grimace
#: too), for the negative classes. Within the FACS sets the tuning critics could not tell
#: synth-6's disgust from anger (three of four read it as anger), and nothing tried by hand
#: moved them; the wide search found the squint (AU43), the pressed upper lip (AU23) and the
#: raised outer brows (AU02) that they read as disgust.
WIDE = ["AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU15", "AU17", "AU20", "AU23", "AU24",
        "AU25", "AU26", "AU43"]
SEARCH_WIDE = {**SEARCH_FACS, **{c: WIDE for c in ("sad", "fear", "disgust", "anger")}}
#: ``--search facs`` caps, tighter than ``expressions.AU_MAX``: the closed SDF face's front normals
#: stay above the bound of ``tests/test_synth_sdf.py`` (an uncapped disgust fell to 0.49 against
#: 0.5; synth-4). ``--search wide`` keeps only the chin's (AU17 pushes the chin boss through the
#: lower lip above it) and holds the mesh with :data:`MESH_LIMITS` instead.
CAPS = {"AU09": 1.6, "AU17": 1.2, "AU07": 2.8}
CAPS_PER_CLASS = {"disgust": {"AU04": 2.6, "AU07": 2.4, "AU15": 2.0, "AU20": 1.8}}
CAPS_WIDE = {"AU17": 1.2}
#: ``--search wide``: a candidate whose full-intensity mesh folds more than 6 face triangles or
#: shrinks an edge below 0.25x or stretches one past 2.5x its rest length
#: (``geometry.fold_stats``, ``expressions.FOLD_LIMITS``) is never kept. synth-6's prototypes
#: (folds / shortest / longest edge): sad 3 / 0.50 / 1.97, fear 21 / 0.08 / 1.98 (pinched lips),
#: disgust 0 / 0.34 / 1.82, anger 1 / 0.34 / 1.97. Without limits the wide search's fear folded
#: 29 triangles (creases down the nose at full intensity) and its sad stretched edges to 2.52x;
#: with (4, 0.3, 2.2) fear and disgust read worse on every tuning critic (fear 0.17-0.33).
MESH_LIMITS = E.FOLD_LIMITS


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="folder holding fer2013/ (default: $FACELAB_DATA)")
    ap.add_argument("--critic-cache", required=True, help="folder to store/reuse the trained critics")
    ap.add_argument("--classes", nargs="+", default=["sad", "fear", "disgust", "anger"], choices=sorted(SEARCH_FACS))
    ap.add_argument("--search", default="wide", choices=("wide", "facs"),
                    help="the AUs searched: SEARCH_WIDE with MESH_LIMITS, or SEARCH_FACS with CAPS (synth-4 to -6)")
    ap.add_argument("--critics", nargs="+", default=None,
                    help="names from realism.TUNING_CRITICS or WEAK_CRITICS (default: all TUNING_CRITICS)")
    ap.add_argument("--reduce", default="mean", choices=("mean", "min"))
    ap.add_argument("--generations", type=int, default=36)
    ap.add_argument("--population", type=int, default=10)
    ap.add_argument("--faces", type=int, default=32, help="faces rendered per candidate and generation")
    ap.add_argument("--sigma", type=float, default=0.8)
    ap.add_argument("--prior-weight", type=float, default=0.005)
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
    pool = realism.TUNING_CRITICS if a.critics is None else realism.TUNING_CRITICS + realism.WEAK_CRITICS
    specs = [c for c in pool if a.critics is None or c[0] in a.critics]
    if a.critics and len(specs) != len(a.critics):
        known = ", ".join(c[0] for c in pool)
        raise SystemExit(f"refit_prototypes: unknown critic in {a.critics}: expected names from {known}")
    critics = list(realism.load_critics(a.data, a.critic_cache, critics=tuple(specs), verbose=True).values())
    out = {}
    for cls in a.classes:
        t = time.perf_counter()
        wide = a.search == "wide"
        caps = CAPS_WIDE if wide else {**CAPS, **CAPS_PER_CLASS.get(cls, {})}
        search = (SEARCH_WIDE if wide else SEARCH_FACS)[cls]
        best, hist = realism.fit_prototype(cls, critics, search, generations=a.generations,
                                           population=a.population, n_faces=a.faces, sigma=a.sigma,
                                           prior_weight=a.prior_weight, seed=a.seed, au_max=caps,
                                           reduce=a.reduce, mesh_limits=MESH_LIMITS if wide else None)
        E.PROTOTYPES[E.ALL_EXPRESSIONS.index(cls)] = best  # later classes see this one refitted
        out[cls] = {n: round(float(best[AU_INDEX[n]]), 2) for n in AU_NAMES if best[AU_INDEX[n]] > 0.05}
        print(f"{cls}: {time.perf_counter() - t:.0f} s, objective {hist[0]:.3f} -> {hist[-1]:.3f}: {out[cls]}",
              flush=True)
    if a.json:
        atomic_write_bytes(a.json, json.dumps(out, indent=1).encode())


if __name__ == "__main__":
    main()
