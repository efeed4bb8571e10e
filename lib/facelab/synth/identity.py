"""Random plausible identities: face shape parameters, skin/lip/brow/hair/iris colours, age.

Skin tones are drawn along a piecewise-linear path through sRGB anchors that spans very
light to very dark skin (roughly Fitzpatrick I-VI), uniformly in the path parameter so
that every tone is equally represented.
"""
from __future__ import annotations

import numpy as np

from . import geometry as G

# sRGB in [0, 1], light to dark.
SKIN_ANCHORS = np.array([
    [0.98, 0.87, 0.78], [0.94, 0.78, 0.66], [0.87, 0.68, 0.54], [0.76, 0.55, 0.40],
    [0.60, 0.41, 0.28], [0.42, 0.27, 0.18], [0.27, 0.17, 0.12]])
SKIN_WORDS = ("very light", "light", "light-medium", "medium", "medium-dark", "dark", "very dark")
HAIR_ANCHORS = np.array([[0.05, 0.04, 0.04], [0.2, 0.12, 0.07], [0.42, 0.27, 0.14],
                         [0.72, 0.55, 0.32], [0.55, 0.22, 0.1]])
IRIS_ANCHORS = np.array([[0.25, 0.14, 0.07], [0.4, 0.25, 0.12], [0.3, 0.42, 0.55], [0.32, 0.45, 0.3],
                         [0.45, 0.45, 0.4]])


def skin_from_tone(tone: np.ndarray) -> np.ndarray:
    """(n,) tone in [0, 1] (0 lightest) -> (n, 3) sRGB."""
    pos = np.clip(tone, 0, 1) * (len(SKIN_ANCHORS) - 1)
    i = np.minimum(pos.astype(int), len(SKIN_ANCHORS) - 2)
    f = (pos - i)[:, None]
    return SKIN_ANCHORS[i] * (1 - f) + SKIN_ANCHORS[i + 1] * f


def skin_word(tone: float) -> str:
    return SKIN_WORDS[int(np.clip(round(tone * (len(SKIN_WORDS) - 1)), 0, len(SKIN_WORDS) - 1))]


def sample_identities(n: int, rng: np.random.Generator, shape_scale: float = 1.0) -> dict[str, np.ndarray]:
    """``n`` random identities as a dict of arrays (first axis n). Keys:

    shape (n, 13) in SHAPE_PARAMS order; tone (n,) in [0,1]; skin_rgb, lip_rgb, brow_rgb,
    hair_rgb, iris_rgb (n, 3); age (n,) years; hairline, has_hair, brow_density, blush,
    skin_detail (n,).
    """
    shape = np.clip(rng.normal(0, 0.55, (n, len(G.SHAPE_PARAMS))), -1.4, 1.4) * shape_scale
    tone = rng.random(n)
    skin = skin_from_tone(tone) * rng.uniform(0.96, 1.04, (n, 1)) + rng.normal(0, 0.015, (n, 3))
    # warmer or cooler undertone
    skin[:, 0] += rng.normal(0, 0.02, n)
    skin = np.clip(skin, 0.08, 1.0)
    age = rng.uniform(18, 80, n)
    lip_red = np.array([0.75, 0.36, 0.38])
    lip = skin * rng.uniform(0.62, 0.8, (n, 1)) * 0.5 + lip_red * skin.mean(1, keepdims=True) ** 0.6 * rng.uniform(0.45, 0.6, (n, 1))
    hair_idx = rng.integers(0, len(HAIR_ANCHORS), n)
    # darker skin -> mostly dark hair; grey with age
    hair_idx = np.where(tone > 0.55, np.minimum(hair_idx, 1), hair_idx)
    hair = HAIR_ANCHORS[hair_idx] * rng.uniform(0.85, 1.15, (n, 1))
    grey = np.clip((age - 45) / 35, 0, 1)[:, None] * rng.uniform(0.3, 1.0, (n, 1))
    hair = np.clip(hair * (1 - grey) + grey * np.array([0.7, 0.7, 0.7]), 0, 1)
    brow = np.clip(hair * 0.8 + skin * 0.1, 0, 1)
    iris_idx = rng.integers(0, len(IRIS_ANCHORS), n)
    iris_idx = np.where(tone > 0.5, 0, iris_idx)
    iris = np.clip(IRIS_ANCHORS[iris_idx] * rng.uniform(0.8, 1.2, (n, 1)), 0, 1)
    return {
        "shape": shape.astype(np.float32),
        "tone": tone.astype(np.float32),
        "skin_rgb": skin.astype(np.float32),
        "lip_rgb": np.clip(lip, 0, 1).astype(np.float32),
        "brow_rgb": brow.astype(np.float32),
        "hair_rgb": hair.astype(np.float32),
        "iris_rgb": iris.astype(np.float32),
        "age": age.astype(np.float32),
        "hairline": rng.uniform(0.02, 0.12, n).astype(np.float32) + 0.05 * np.clip((age - 40) / 40, 0, 1).astype(np.float32),
        "has_hair": (rng.random(n) > 0.08).astype(np.float32),
        "brow_density": rng.uniform(0.55, 0.95, n).astype(np.float32),
        "blush": rng.uniform(0.0, 0.25, n).astype(np.float32),
        "skin_detail": rng.uniform(0.01, 0.035, n).astype(np.float32),
    }


def take(ident: dict[str, np.ndarray], idx) -> dict[str, np.ndarray]:
    """Select identities by index (any numpy index) from a batch dict."""
    return {k: v[idx] for k, v in ident.items()}
