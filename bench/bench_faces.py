"""Benchmarks of facelab.faces: landmark accuracy on AFW, AU heatmap speed, AU estimation.

``run(quick)`` returns a flat ``{name: number}`` dict with units in the names; another
module collects it into bench/results.json. Landmark numbers need FACELAB_DATA (the
300-W AFW crops under ``landmarks300w/afw``) and are left out without it.
"""
from __future__ import annotations

import time

import numpy as np


def _timed(fn, repeats: int) -> float:
    """Median wall time in ms after one warm-up call (the first torch call pays start-up costs)."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - t))
    return float(np.median(times))


def bench_landmarks(quick: bool = False) -> dict[str, float]:
    from facelab.config import data_dir

    root = data_dir()
    afw = root / "landmarks300w" / "afw" if root else None
    if afw is None or not afw.is_dir():
        return {}
    from facelab.faces.landmarks import evaluate_300w

    t = time.perf_counter()
    r = evaluate_300w(afw, limit=40 if quick else None)
    wall = time.perf_counter() - t
    odd = np.array([i % 2 == 1 for i in range(r["n_images"])])  # MESH68 was chosen on the even files
    names = sorted(p.stem for p in afw.glob("*.jpg"))[:r["n_images"]]
    held = np.array([odd[names.index(nm)] for nm in r["names"]])
    return {
        "landmarks_afw_faces": float(r["n_images"]),
        "landmarks_detection_rate_afw_pct": 100.0 * r["n_detected"] / r["n_images"],
        "landmarks_nme_afw_pct": 100.0 * float(np.mean(r["nme68"])),
        "landmarks_nme51_afw_pct": 100.0 * float(np.mean(r["nme51"])),
        "landmarks_nme_afw_heldout_pct": 100.0 * float(np.mean(r["nme68"][held])),
        "landmarks_nme51_afw_heldout_pct": 100.0 * float(np.mean(r["nme51"][held])),
        "landmarks_nme_afw_median_pct": 100.0 * float(np.median(r["nme68"])),
        "landmarks_ms_per_face_cpu": 1000.0 * wall / r["n_images"],
    }


def _neutral68(size: int = 224) -> np.ndarray:
    from facelab import mesh

    m = mesh.au_mesh_model().mesh(np.zeros(20, np.float32))[mesh.MESH68, :2].astype(np.float64)
    m[:, 1] *= -1
    m -= m.mean(0)
    return m * (0.67 * size / np.ptp(m[:, 0])) + size / 2


def bench_heatmaps(quick: bool = False) -> dict[str, float]:
    from facelab.faces.au import au_heatmap

    rng = np.random.default_rng(0)
    lm = _neutral68()[None] + rng.normal(0, 2.0, (256, 68, 2))
    labels = rng.integers(0, 8, 256)  # a mixed batch over all 8 expressions
    ms = _timed(lambda: au_heatmap(lm, labels, 224), 2 if quick else 5)
    ms_anger = _timed(lambda: au_heatmap(lm, "anger", 224), 1 if quick else 3)  # the most AUs (9)
    return {"au_heatmaps_ms_batch256_224px": ms, "au_heatmaps_anger_ms_batch256_224px": ms_anger}


def bench_au_estimate(quick: bool = False) -> dict[str, float]:
    from facelab import mesh
    from facelab.faces.au_estimate import estimate_aus

    rng = np.random.default_rng(0)
    n = 60 if quick else 200
    aus = ((rng.random((n, 20)) < 0.35) * rng.uniform(0, 5, (n, 20))).astype(np.float32)
    m = mesh.au_mesh_model().mesh(aus).astype(np.float64)
    out = {}
    for name, idx, noise in [("468pt", slice(None), 0.0), ("68pt", mesh.MESH68, 0.0),
                             ("68pt_noise1pct", mesh.MESH68, 0.01)]:
        obs = m[:, idx, :2] * [1.0, -1.0] * 1.3 + 100.0  # image convention, scaled and shifted
        obs = obs + rng.normal(0, noise * 175 * 1.3, obs.shape)
        t = time.perf_counter()
        est = estimate_aus(obs)
        dt = time.perf_counter() - t
        r = np.array([np.corrcoef(est[:, i], aus[:, i])[0, 1] for i in range(20)])
        out[f"au_estimate_{name}_min_pearson"] = float(r.min())
        out[f"au_estimate_{name}_mean_pearson"] = float(r.mean())
        out[f"au_estimate_{name}_mae_intensity"] = float(np.abs(est - aus).mean())
        out[f"au_estimate_{name}_ms_per_face"] = 1000.0 * dt / n
    return out


def run(quick: bool = False) -> dict[str, float]:
    out: dict[str, float] = {}
    out.update(bench_heatmaps(quick))
    out.update(bench_au_estimate(quick))
    out.update(bench_landmarks(quick))
    return out


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))
