"""Attribute descriptions of identities: categorical attributes and one-sentence captions.

A text-to-avatar model needs (identity, caption) pairs whose captions can be checked. Each
identity of :func:`facelab.synth.identity.sample_identities` gets four categorical attributes,
read off its parameters (never guessed):

========  ====================================  =======================================
age       young / middle-aged / older           age < 35 / 35-55 / > 55 years
skin      light / medium / dark                  skin tone parameter in thirds
hair      dark / fair / grey / no                hair colour (``fair`` = blond or red);
                                                 ``no`` hair when the identity is bald
face      narrow / average / wide                ``face_width`` shape parameter < -0.35,
                                                 between, > 0.35
========  ====================================  =======================================

:func:`caption` writes them as one sentence (a few templates, so a text encoder sees more
than one phrasing); :func:`caption_from_attributes` builds a caption from a dict and names
the unknown attribute or value when one is wrong; :func:`check_caption` rejects empty and
over-long text. :func:`sample_described` draws identities whose **age also shows in the
geometry** (fuller, lower brows and cheeks and a longer face with age; an identity
generator without that coupling would make age a texture-only attribute).
"""
from __future__ import annotations

import numpy as np

from . import geometry as G
from . import identity as I

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "age": ("young", "middle-aged", "older"),
    "skin": ("light", "medium", "dark"),
    "hair": ("dark", "fair", "grey", "no"),
    "face": ("narrow", "average", "wide"),
}
#: Longest caption accepted (words); the text encoder truncates far earlier anyway.
MAX_WORDS = 40
_TEMPLATES = (
    "{A_age} person with {skin} skin, {hair} hair and {a_face} face.",
    "{Age} adult, {skin} skin, {hair} hair, {face} face.",
    "A portrait of {a_age} person: {face} face, {skin} skin and {hair} hair.",
)
#: Per year of age above 49 (in units of 31 years), the shape-parameter offsets of
#: :func:`sample_described`: lower brows, less cheek fullness, a longer face and jaw.
AGE_SHAPE = {"brow_height": -0.5, "cheek_fullness": -0.6, "face_length": 0.4, "chin_length": 0.3}


class DescriptionError(ValueError):
    """An unknown attribute name or value, or a caption that cannot be used."""


def _hair_class(rgb: np.ndarray, has_hair: float) -> int:
    if has_hair < 0.5:
        return 3
    sat = float(rgb.max() - rgb.min())
    if rgb.mean() > 0.5 and sat < 0.12:
        return 2
    if rgb[0] > 0.45 and rgb[2] < 0.25:
        return 1
    return 0


def attributes(ident: dict) -> np.ndarray:
    """(n, 4) int class indices in :data:`ATTRIBUTES` order (age, skin, hair, face)."""
    age = np.digitize(np.asarray(ident["age"]), [35.0, 55.0])
    skin = np.digitize(np.asarray(ident["tone"]), [1 / 3, 2 / 3])
    hair = np.array([_hair_class(np.asarray(r), float(h)) for r, h in zip(ident["hair_rgb"], ident["has_hair"])])
    fw = np.asarray(ident["shape"])[:, G.SHAPE_PARAMS.index("face_width")]
    face = np.digitize(fw, [-0.35, 0.35])
    return np.stack([age, skin, hair, face], 1).astype(np.int64)


def caption(attrs: np.ndarray, template: int = 0) -> str:
    """One sentence from a (4,) row of :func:`attributes`."""
    words = {k: ATTRIBUTES[k][int(a)] for k, a in zip(ATTRIBUTES, attrs)}
    t = _TEMPLATES[template % len(_TEMPLATES)]
    art = {k: ("an " if words[k][0] in "aeiou" else "a ") + words[k] for k in ("age", "face")}
    return t.format(Age=words["age"].capitalize(), A_age=art["age"].capitalize(), a_age=art["age"],
                    a_face=art["face"], **words)


def caption_from_attributes(d: dict[str, str], template: int = 0) -> str:
    """A caption from ``{"age": "young", "hair": "grey", ...}``; missing attributes default to
    the middle value. An unknown name or value raises one message naming what is known."""
    row = np.array([len(v) // 2 if k != "hair" else 0 for k, v in ATTRIBUTES.items()])
    for k, v in d.items():
        if k not in ATTRIBUTES:
            raise DescriptionError(f"unknown attribute {k!r}: the descriptions know {', '.join(ATTRIBUTES)}")
        if v not in ATTRIBUTES[k]:
            raise DescriptionError(f"unknown value {v!r} for attribute {k!r}: expected one of {', '.join(ATTRIBUTES[k])}")
        row[list(ATTRIBUTES).index(k)] = ATTRIBUTES[k].index(v)
    return caption(row, template)


def check_caption(text, where: str = "description") -> str:
    """The stripped caption, or one clear error for a non-string, empty or over-long one."""
    if not isinstance(text, str):
        raise DescriptionError(f"{where}: expected a string, got {type(text).__name__}")
    t = " ".join(text.split())
    if not t:
        raise DescriptionError(f"{where}: the description is empty; describe the face, e.g. "
                              f"{caption(np.array([0, 1, 0, 1]))!r}")
    if len(t.split()) > MAX_WORDS:
        raise DescriptionError(f"{where}: the description has {len(t.split())} words; at most {MAX_WORDS} are accepted")
    return t


def sample_described(n: int, rng: np.random.Generator, age_shape: float = 1.0) -> tuple[dict, np.ndarray, list[str]]:
    """``n`` identities with their (n, 4) attributes and captions (random templates).

    ``age_shape`` scales :data:`AGE_SHAPE`, the age-dependent shape offsets (0: none)."""
    ident = I.sample_identities(n, rng)
    agez = (ident["age"] - 49.0) / 31.0
    for k, w in AGE_SHAPE.items():
        ident["shape"][:, G.SHAPE_PARAMS.index(k)] += (age_shape * w * agez).astype(np.float32)
    attrs = attributes(ident)
    tmpl = rng.integers(0, len(_TEMPLATES), n)
    return ident, attrs, [caption(a, int(t)) for a, t in zip(attrs, tmpl)]
