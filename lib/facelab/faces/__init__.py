"""Face tools: detection, 468/68-point landmarks, 5-point alignment, AU codebook, heatmaps, estimation.

Submodules load their models lazily, so ``import facelab.faces`` is cheap.
"""
from __future__ import annotations

from .align import (align_face, five_from_68, invert_affine, similarity_to_template, template_5,
                    transform_points, umeyama, warp_affine)
from .au import (AU_CODEBOOK, AU_REGIONS, au_heatmap, codebook_aus, expression_aus)
from .au_estimate import estimate_aus
from .batch import align_batch, landmarks_with_fallback, mesh68_crops
from .detect import Detections, detect
from .landmarks import FaceMesh, clip_meshes, detect_landmarks, landmarks68, nme, read_pts, to68
from .track import (FaceTracker, Track, clear_mot, crop_tube, detect_frames, main_track, track_faces,
                    tracks_to_frames)

__all__ = [
    "FaceTracker", "Track", "clear_mot", "crop_tube", "detect_frames", "main_track", "track_faces", "tracks_to_frames",
    "AU_CODEBOOK", "AU_REGIONS", "Detections", "FaceMesh", "align_face", "au_heatmap", "codebook_aus",
    "detect", "clip_meshes", "detect_landmarks", "estimate_aus", "expression_aus", "five_from_68", "invert_affine", "landmarks68",
    "nme", "read_pts", "similarity_to_template", "template_5", "to68", "transform_points", "umeyama",
    "warp_affine", "align_batch", "landmarks_with_fallback", "mesh68_crops",
]
