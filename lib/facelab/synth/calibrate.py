"""Per-class AU profiles of FER2013 and the engine, read by one landmark chain (issue 21).

Both sides go through the same measuring chain, so its biases cancel in the comparison:
48 px grey face -> upscaled RGB -> :class:`facelab.faces.FaceMesh` (the frame is the face
box, as FER2013's crops are) -> :func:`facelab.faces.estimate_aus` on the 468 2-D points.
Landmark-based AU estimates on real faces carry identity shape and landmark error (see
:mod:`facelab.faces.au_estimate`), so a class's profile is read as its mean *minus the
neutral class's mean* ("delta" profile): what the expression adds over a resting face.
:func:`chain_gain` measures, on engine faces with known AUs, how much of a true AU unit the
chain reads back; :func:`corrected_deltas` turns real deltas into engine AU units where it
sees the AU at all. These profiles set the first directions of the engine's table; the chain
is nearly blind at 48 px to most AUs the negative expressions need, so the prototypes were then
fitted by analysis by synthesis (``realism.fit_prototype``; see ``facelab.synth.expressions``).

``python -m facelab.synth.calibrate [--per-class N] [--gain N] [--write]`` prints the real and
engine profiles side by side and (with ``--write``) stores the derived numbers -- per-class
means, stds and counts, and the chain's gain, no images -- in ``calibration.json`` next to this
module (:data:`CALIBRATION`).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from ..cache import atomic_write_bytes
from ..config import BASIC7
from ..mesh import AU_NAMES

#: Where the derived per-class statistics are stored (package data).
CALIBRATION = Path(__file__).with_name("calibration.json")
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


def chain_gain(n: int = 420, seed: int = 11, **kw) -> dict:
    """How much of a true AU unit the measuring chain reads back, per AU, on engine faces.

    Renders ``n`` FER-framed engine faces of the seven basic classes (known AUs: the batch's
    ground truth), runs the same chain as on FER2013 (:func:`landmarks` ->
    ``estimate_aus``) and fits, per AU, the least-squares slope of the estimate on the truth
    (with an intercept): ``{"gain": {AU: slope}, "corr": {AU: r}, "n": n}``. A reading of a
    real face's delta divided by the gain is then in the engine's AU units (only where the
    correlation shows the chain sees the AU at all). The faces are framed and posed like
    FER2013's (``realism.FER_FRAMING``; ``kw`` override it): before session 15 only the face
    scale was, and the rest came from the engine's wider default pose."""
    from ..faces.au_estimate import estimate_aus
    from .generators import faces
    from .realism import FER_FRAMING
    b = faces(n, 48, expressions=list(BASIC7), seed=seed, **{**FER_FRAMING, **kw})
    grey = np.clip(b.images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) + 0.5, 0, 255)
    est = estimate_aus(landmarks(grey.astype(np.uint8)), y_down=True)
    gain, corr = {}, {}
    for j, a in enumerate(AU_NAMES):
        t, e = b.aus[:, j].astype(np.float64), est[:, j].astype(np.float64)
        vt = t.var()
        gain[a] = float(((t - t.mean()) * (e - e.mean())).mean() / vt) if vt > 1e-6 else float("nan")
        corr[a] = float(np.corrcoef(t, e)[0, 1]) if vt > 1e-6 and e.std() > 1e-9 else float("nan")
    return {"gain": gain, "corr": corr, "n": int(n)}


def corrected_deltas(real: dict, gain: dict, min_corr: float = 0.3) -> dict:
    """Real per-class deltas from neutral in engine AU units: each AU's delta divided by the
    chain's gain where the chain sees the AU (correlation >= ``min_corr`` and gain > 0.05),
    NaN elsewhere (no trustworthy reading)."""
    g = np.array([gain["gain"][a] if gain["corr"][a] >= min_corr and gain["gain"][a] > 0.05 else np.nan
                  for a in AU_NAMES])
    return {c: d / g for c, d in deltas(real).items()}


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
    ap.add_argument("--gain", type=int, default=0, help="also measure the chain's per-AU gain on this many "
                    "engine faces and print the real deltas corrected by it")
    ap.add_argument("--write", action="store_true", help=f"store the statistics in {CALIBRATION.name}")
    ap.add_argument("--out", default=str(CALIBRATION), help="where --write stores them")
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
    gain = None
    if a.gain:
        gain = chain_gain(a.gain)
        print("\nchain gain (slope of estimate on truth, engine faces) / correlation:")
        print("  ".join(f"{k[2:]} {gain['gain'][k]:.2f}/{gain['corr'][k]:.2f}" for k in AU_NAMES))
        print("\nreal delta from neutral in engine AU units (delta / gain; nan: chain blind to the AU):")
        print(au_profile_table(corrected_deltas(real, gain)))
    if a.write:
        from .datasets import CACHE_VERSION
        out = {"source": f"FER2013 train, {a.per_class} per class; engine {a.engine} faces ({CACHE_VERSION})",
               "aus": list(AU_NAMES), "real": real, "engine": eng}
        if gain is not None:
            out["gain"] = gain
        atomic_write_bytes(a.out, json.dumps(out, indent=0).encode())
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
