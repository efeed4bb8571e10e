"""Throughput of facelab.synth.faces (images with full ground truth) on this machine.

``run(quick)`` returns flat measurements with units in the names, collected by bench/run.py:
faces per second and milliseconds per face at 64, 112 and 224 px with the default 2x
supersampling, plus the 1x (no supersampling) rate at 112 px.
"""
from __future__ import annotations

import time

from facelab.synth import faces, scenes


def _rate(n: int, size: int, **kw) -> float:
    faces(8, size, seed=123, **kw)  # warm caches (masks, textures, topology)
    t = time.perf_counter()
    faces(n, size, seed=0, **kw)
    return (time.perf_counter() - t) / n


def run(quick: bool = False) -> dict[str, float]:
    out: dict[str, float] = {}
    for size, n in ((64, 512), (112, 256), (224, 64)):
        n = max(16, n // 4) if quick else n
        s = _rate(n, size)
        out[f"synth_faces_per_s_{size}px"] = round(1.0 / s, 1)
        out[f"synth_ms_per_face_{size}px"] = round(1000.0 * s, 2)
    s = _rate(64 if quick else 256, 112, supersample=1)
    out["synth_faces_per_s_112px_ss1"] = round(1.0 / s, 1)
    out["synth_ms_per_face_112px_ss1"] = round(1000.0 * s, 2)
    n = 16 if quick else 64
    scenes(4, 160, seed=1)
    t = time.perf_counter()
    scenes(n, 160, seed=0)
    out["synth_ms_per_scene_160px"] = round(1000.0 * (time.perf_counter() - t) / n, 2)
    return out


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))
