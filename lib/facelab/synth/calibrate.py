"""Calibrate the expression table on real faces: per-class AU profiles of FER2013 vs the engine.

Both sides go through the same measuring chain, so its biases cancel in the comparison:
48 px grey face -> upscaled RGB -> :class:`facelab.faces.FaceMesh` (the frame is the face
box, as FER2013's crops are) -> :func:`facelab.faces.estimate_aus` on the 468 2-D points.
Landmark-based AU estimates on real faces carry identity shape and landmark error (see
:mod:`facelab.faces.au_estimate`), so a class's profile is read as its mean *minus the
neutral class's mean* ("delta" profile): what the expression adds over a resting face.

:func:`calibrated_table` turns the deltas into prototypes: for each basic expression,
``proto = prior + BLEND * (real_delta - engine_delta) / gain`` on the AUs the class's EMFACS
prior uses (or that the real delta shows clearly), where ``engine_delta`` is the
same chain's reading of the current engine faces and ``gain`` (how much of a true AU unit
the chain reads back on engine faces) converts readings to AU units. The EMFACS prior
stays the anchor (blend weight :data:`BLEND`), every value is clipped to ``[0, AU_MAX]``.

``python -m facelab.synth.calibrate [--per-class N] [--write]`` prints the real and engine
profiles side by side and (with ``--write``) stores the derived numbers -- per-class means
and deltas, no images -- in ``calibration.json`` next to this module (:data:`CALIBRATION`).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from ..config import BASIC7
from ..mesh import AU_NAMES

#: Where the derived per-class statistics are stored (package data).
CALIBRATION = Path(__file__).with_name("calibration.json")
#: Weight of the real-face correction against the EMFACS prior.
BLEND = 0.5
#: Input side for the landmark model (FER2013's 48 px crops are upscaled to this).
UPSCALE = 192


def landmarks(images: np.ndarray) -> np.ndarray:
    """(n, 468, 2) face-mesh points of (n, H, W) uint8 grey face crops (the crop is the box)."""
    from PIL import Image

    from ..faces.landmarks import face_mesh
    fm = face_mesh()
    out = np.zeros((len(images), 468, 2))
    for i, im in enumerate(images):
        big = np.asarray(Image.fromarray(np.asarray(im, np.uint8)).resize((UPSCALE, UPSCALE), Image.BICUBIC))
        rgb = np.repeat(big[..., None], 3, -1)
        # FER2013's crops are a bit tighter than a detector's box: take 80% of the frame as the box
        m = 0.1 * UPSCALE
        pts, _ = fm.predict(rgb, np.array([m, m, UPSCALE - m, UPSCALE - m]))
        out[i] = pts[:, :2]
    return out


def profiles(images: np.ndarray, labels: np.ndarray) -> dict:
    """Per-class mean and std of the estimated AUs: {"mean": {class: [20]}, "std": ..., "n": ...}."""
    from ..faces.au_estimate import estimate_aus
    aus = estimate_aus(landmarks(images), y_down=True)
    out = {"mean": {}, "std": {}, "n": {}}
    for k, c in enumerate(BASIC7):
        a = aus[labels == k]
        out["mean"][c] = a.mean(0).round(4).tolist()
        out["std"][c] = a.std(0).round(4).tolist()
        out["n"][c] = int(len(a))
    return out


def real_profiles(root: str | os.PathLike, split: str = "train", per_class: int = 150, seed: int = 0) -> dict:
    from .realism import fer2013_arrays
    x, y = fer2013_arrays(root, split, per_class, seed)
    return profiles(x, y)


def engine_profiles(n: int = 1050, seed: int = 5, **kw) -> dict:
    from .realism import synthetic_fer
    x, y = synthetic_fer(n, seed=seed, **kw)
    return profiles(x, y)


def deltas(prof: dict) -> dict:
    """{class: (20,) mean minus the neutral class's mean}."""
    neu = np.asarray(prof["mean"]["neutral"])
    return {c: np.asarray(prof["mean"][c]) - neu for c in BASIC7}


def load() -> dict | None:
    """The stored calibration (:data:`CALIBRATION`) or None."""
    return json.loads(CALIBRATION.read_text()) if CALIBRATION.exists() else None


def main(argv: list[str] | None = None) -> None:
    from .realism import au_profile_table
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.environ.get("FACELAB_DATA"))
    ap.add_argument("--per-class", type=int, default=150)
    ap.add_argument("--engine", type=int, default=1050)
    ap.add_argument("--write", action="store_true", help=f"store the statistics in {CALIBRATION.name}")
    a = ap.parse_args(argv)
    if not a.data:
        raise SystemExit("set FACELAB_DATA or --data to the folder holding fer2013/")
    real = real_profiles(a.data, "train", a.per_class)
    eng = engine_profiles(a.engine)
    dr, de = deltas(real), deltas(eng)
    print("mean estimated AU (FER2013 train vs engine):")
    print(au_profile_table({c: np.asarray(real["mean"][c]) for c in BASIC7},
                           {c: np.asarray(eng["mean"][c]) for c in BASIC7}))
    print("\ndelta from neutral:")
    print(au_profile_table(dr, de))
    if a.write:
        CALIBRATION.write_text(json.dumps({"source": f"FER2013 train, {a.per_class} per class; engine {a.engine} faces",
                                           "aus": list(AU_NAMES), "real": real, "engine": eng}, indent=0))
        print(f"wrote {CALIBRATION}")


if __name__ == "__main__":
    main()
