"""Throughput of facelab.synth.faces (images with full ground truth) on this machine.

``run(quick)`` returns flat measurements with units in the names, collected by bench/run.py:
milliseconds per face at 64, 112 and 224 px (default 2x supersampling) for the default
renderer (the compiled numba backend, all numba threads) and for the torch fallback, faces per
second at 112 px for both, their ratio, the 1x (no supersampling) rate at 112 px, the numba
renderer on one thread (its CPU cost per face: what one idle core does) and ms per scene.

Every number is the median of ``repeats`` timed calls (after a warm-up call that compiles /
loads the kernels). The machine may be shared: ``load_avg_1min`` is reported alongside, and
``synth_cpu_ms_per_face_112px_1thread`` (process CPU time, one numba thread) is the figure that
load does not inflate much.
"""
from __future__ import annotations

import os
import statistics
import time

from facelab.synth import faces, scenes
from facelab.synth import render as R


def _time(fn, repeats: int) -> tuple[float, float]:
    """Median wall and median process-CPU seconds of ``fn()`` over ``repeats`` calls."""
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def _rate(n: int, size: int, repeats: int, **kw) -> tuple[float, float]:
    faces(8, size, seed=123, **kw)  # warm caches (masks, textures, topology, compiled kernels)
    wall, cpu = _time(lambda: faces(n, size, seed=0, **kw), repeats)
    return wall / n, cpu / n


def run(quick: bool = False, repeats: int | None = None) -> dict[str, float]:
    reps = repeats or (2 if quick else 3)
    out: dict[str, float] = {"load_avg_1min": round(os.getloadavg()[0], 2)}
    sizes = ((64, 512), (112, 256), (224, 64))
    have_numba = R.numba_available()
    out["synth_numba_available"] = float(have_numba)
    for backend in (("numba", "torch") if have_numba else ("torch",)):
        with R.use_backend(backend):  # the documented switch: "auto" renders with this backend
            tag = "" if backend == "numba" or not have_numba else "_torch"
            for size, n in sizes:
                n = max(16, n // 4) if quick else n
                if backend == "torch":
                    n = max(16, n // 4)  # ~10x slower: fewer faces, same repeats
                s, _ = _rate(n, size, reps)
                out[f"synth_ms_per_face_{size}px{tag}"] = round(1000.0 * s, 2)
                if size == 112:
                    out[f"synth_faces_per_s_112px{tag}"] = round(1.0 / s, 1)
    if have_numba:
        out["synth_speedup_numba_vs_torch_112px"] = round(out["synth_ms_per_face_112px_torch"]
                                                          / out["synth_ms_per_face_112px"], 1)
        import numba
        old = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            s, c = _rate(64 if quick else 256, 112, reps)
        finally:
            numba.set_num_threads(old)
        out["synth_ms_per_face_112px_1thread"] = round(1000.0 * s, 2)
        out["synth_cpu_ms_per_face_112px_1thread"] = round(1000.0 * c, 2)
        out["numba_threads"] = float(old)
    s_head, _ = _rate(64 if quick else 256, 112, reps, head=True)
    s_plain, _ = _rate(64 if quick else 256, 112, reps, head=False)  # the bare face mask (synth-2)
    out["synth_faces_per_s_112px_head"] = round(1.0 / s_head, 1)
    out["synth_head_cost_ratio_112px"] = round(s_head / s_plain, 2)  # hair/ears/neck painter, same run
    s, _ = _rate(64 if quick else 256, 112, reps, supersample=1)
    out["synth_faces_per_s_112px_ss1"] = round(1.0 / s, 1)
    out["synth_ms_per_face_112px_ss1"] = round(1000.0 * s, 2)
    n = 16 if quick else 64
    scenes(4, 160, seed=1)
    w, _ = _time(lambda: scenes(n, 160, seed=0), reps)
    out["synth_ms_per_scene_160px"] = round(1000.0 * w / n, 2)
    out["load_avg_1min_end"] = round(os.getloadavg()[0], 2)
    return out


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))
