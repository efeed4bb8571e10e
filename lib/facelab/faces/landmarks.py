"""468-point face mesh (MediaPipe's ``face_landmark.tflite``) on detected faces, and 68 points.

The model takes a 192x192 RGB crop with values in [0, 1] (checked on AFW: [0, 1] gave
lower error than [-1, 1] at every crop scale) and returns 468 x, y, z in crop pixels.
It runs through ``ai_edge_litert`` (no tensorflow).

Two passes, as MediaPipe's own pipeline does: the first crop comes from the detector's
box, rotated so the eyes are level; the second from the first pass's own mesh, which is
tighter and better centred. Scales (1.25x the box, 1.5x the mesh extent) were chosen on
AFW. :data:`facelab.mesh.MESH68` then picks the 68 300-W points from the 468.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from .. import assets
from ..mesh import MESH68
from .align import invert_affine, transform_points, warp_affine
from .detect import Detections, detect, load_rgb

INPUT = 192
BOX_SCALE = 1.25
MESH_SCALE = 1.5
#: 300-W points 17-67: brows, nose, eyes, mouth (the jaw is defined differently by the
#: mesh, which follows the 3-D face outline rather than the visible contour).
INNER51 = np.arange(17, 68)


class FaceMesh:
    """One TFLite interpreter (not thread-safe; make one per thread)."""

    def __init__(self, model_path: str | Path | None = None, num_threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter

        path = str(model_path or assets.path("face_landmark_tflite"))
        self._it = Interpreter(model_path=path, num_threads=num_threads)
        self._it.allocate_tensors()
        inp = self._it.get_input_details()[0]
        if tuple(inp["shape"]) != (1, INPUT, INPUT, 3):
            raise RuntimeError(f"{path}: expected a 1x{INPUT}x{INPUT}x3 input, got {inp['shape']}")
        self._in = inp["index"]
        outs = self._it.get_output_details()
        # The 1404-wide output is the mesh, the 1-wide one the face-presence logit.
        self._mesh = next(d["index"] for d in outs if int(np.prod(d["shape"])) == 468 * 3)
        self._score = next(d["index"] for d in outs if int(np.prod(d["shape"])) == 1)

    def run_crop(self, crop: np.ndarray) -> tuple[np.ndarray, float]:
        """A (192, 192, 3) uint8 crop -> ((468, 3) points in crop pixels, face-presence probability)."""
        x = np.asarray(crop, np.float32)[None] / 255.0
        self._it.set_tensor(self._in, x)
        self._it.invoke()
        pts = self._it.get_tensor(self._mesh).reshape(468, 3).astype(np.float64)
        logit = float(self._it.get_tensor(self._score).ravel()[0])
        return pts, float(1.0 / (1.0 + np.exp(-logit)))

    def run_roi(self, rgb: np.ndarray, center, angle: float, side: float) -> tuple[np.ndarray, float]:
        """Mesh for a square ROI (centre, rotation in radians, side in pixels), in image pixels.

        z is scaled like x and y (image pixels), its sign as MediaPipe's: negative is nearer.
        """
        m = roi_matrix(center, angle, side)
        crop = warp_affine(rgb, m, INPUT)
        pts, score = self.run_crop(crop)
        out = pts.copy()
        out[:, :2] = transform_points(pts[:, :2], invert_affine(m))
        out[:, 2] *= side / INPUT
        return out, score

    def predict(self, image, box: np.ndarray, points5: np.ndarray | None = None) -> tuple[np.ndarray, float]:
        """(468, 3) mesh in image pixels and a presence score for one face box (x0, y0, x1, y1).

        ``points5`` (the detector's eyes first) sets the first crop's rotation; without it
        the first crop is upright.
        """
        rgb = load_rgb(image)
        b = np.asarray(box, np.float64)
        angle = 0.0
        if points5 is not None:
            eye = np.asarray(points5, np.float64)[1] - np.asarray(points5, np.float64)[0]
            angle = float(np.arctan2(eye[1], eye[0]))
        side = BOX_SCALE * max(b[2] - b[0], b[3] - b[1])
        pts, _ = self.run_roi(rgb, (b[:2] + b[2:]) / 2, angle, side)
        # Second pass from the mesh itself: level the outer eye corners, frame its extent.
        center, angle, extent = _mesh_roi(pts[:, :2])
        return self.run_roi(rgb, center, angle, MESH_SCALE * extent)


def roi_matrix(center, angle: float, side: float) -> np.ndarray:
    """2x3 matrix from image pixels to a 192x192 crop of a rotated square ROI."""
    k = INPUT / float(side)
    c, s = np.cos(-angle) * k, np.sin(-angle) * k
    a = np.array([[c, -s], [s, c]])
    t = (INPUT - 1) / 2.0 - a @ np.asarray(center, np.float64)
    return np.concatenate([a, t[:, None]], 1)


def _mesh_roi(pts: np.ndarray) -> tuple[np.ndarray, float, float]:
    e = pts[263] - pts[33]  # outer eye corners: subject's left minus right
    angle = float(np.arctan2(e[1], e[0]))
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, s], [-s, c]])  # into the upright frame
    q = pts @ rot.T
    lo, hi = q.min(0), q.max(0)
    return rot.T @ ((lo + hi) / 2), angle, float((hi - lo).max())


@lru_cache(maxsize=1)
def face_mesh() -> FaceMesh:
    """A shared :class:`FaceMesh` (single-threaded use)."""
    return FaceMesh()


def to68(mesh468: np.ndarray) -> np.ndarray:
    """(..., 468, d) -> (..., 68, d) with :data:`facelab.mesh.MESH68`."""
    return np.asarray(mesh468)[..., MESH68, :]


def detect_landmarks(image, detections: Detections | None = None, *, min_score: float = 0.9,
              model: FaceMesh | None = None) -> tuple[np.ndarray, Detections]:
    """Detect faces (unless given) and fit the mesh on each.

    Returns ``(meshes (n, 468, 3), detections)`` in image pixels; ``to68(meshes[..., :2])``
    gives 300-W points.
    """
    rgb = load_rgb(image)
    det = detect(rgb, min_score=min_score) if detections is None else detections
    fm = model or face_mesh()
    meshes = [fm.predict(rgb, b, p)[0] for b, p in zip(det.boxes, det.points)]
    return (np.stack(meshes) if meshes else np.zeros((0, 468, 3))), det


def clip_meshes(frames, *, every: int = 1, min_score: float = 0.9, where: str = "clip",
                model: FaceMesh | None = None) -> np.ndarray:
    """(T, 468, 3) mesh of the first detected face in each frame of a clip (T, H, W, 3).

    Faces are detected on every ``every``-th frame and the last box is held in between (causal:
    no frame uses a later frame's detection); the mesh is fitted on every frame. A frame before
    the first detection is an error naming ``where`` and the frame."""
    if every < 1:
        raise ValueError(f"clip_meshes: every must be >= 1, got {every}")
    fm = model or face_mesh()
    out, det = [], None
    for j, frame in enumerate(frames):
        rgb = load_rgb(frame)
        if j % every == 0:
            found = detect(rgb, min_score=min_score)
            det = found if len(found.boxes) else det
        if det is None:
            raise ValueError(f"{where}: no face found in frame {j}; the clip must show a face from its first frame")
        out.append(fm.predict(rgb, det.boxes[0], det.points[0])[0])
    return np.stack(out) if out else np.zeros((0, 468, 3))


def landmarks68(image, **kw) -> np.ndarray:
    """(n, 68, 2) 300-W points of every detected face."""
    meshes, _ = detect_landmarks(image, **kw)
    return to68(meshes[..., :2])


def read_pts(path: str | Path) -> np.ndarray:
    """A 300-W ``.pts`` file -> (n, 2) float array (the file's 1-based pixel convention kept)."""
    text = Path(path).read_text()
    try:
        body = text.split("{", 1)[1].split("}", 1)[0]
    except IndexError:
        raise ValueError(f"{path}: not a 300-W .pts file (no '{{ ... }}' block)") from None
    return np.asarray(body.split(), np.float64).reshape(-1, 2)


def nme(pred: np.ndarray, gt: np.ndarray, points: np.ndarray | slice | None = None) -> np.ndarray:
    """Mean point error over ``points`` / inter-ocular distance (outer eye corners 36, 45).

    ``pred``, ``gt``: (..., 68, 2). Returns (...) fractions (multiply by 100 for %). The
    normaliser always comes from the ground truth's full 68 points.
    """
    pred = np.asarray(pred, np.float64)
    gt = np.asarray(gt, np.float64)
    iod = np.linalg.norm(gt[..., 36, :] - gt[..., 45, :], axis=-1)
    sel = slice(None) if points is None else points
    err = np.linalg.norm(pred[..., sel, :] - gt[..., sel, :], axis=-1).mean(-1)
    return err / iod


def evaluate_300w(folder: str | Path, limit: int | None = None, *, model: FaceMesh | None = None) -> dict:
    """Detect + landmark every ``<id>.jpg`` with a ``<id>.pts`` in ``folder``.

    The detection matched to a face is the one whose box centre is nearest the annotated
    points' centre (AFW crops can hold more than one face). Returns per-face NME arrays
    (68 and inner 51 points) over detected faces, and the detection count.
    """
    files = sorted(Path(folder).glob("*.jpg"))[:limit]
    if not files:
        raise FileNotFoundError(f"{folder}: no *.jpg files (expected 300-W <id>.jpg + <id>.pts)")
    fm = model or face_mesh()
    e68, e51, names = [], [], []
    for f in files:
        gt = read_pts(f.with_suffix(".pts"))
        rgb = load_rgb(f)
        det = detect(rgb)
        if len(det.scores) == 0:
            continue
        centres = (det.boxes[:, :2] + det.boxes[:, 2:]) / 2
        k = int(np.argmin(((centres - gt.mean(0)) ** 2).sum(1)))
        pred = to68(fm.predict(rgb, det.boxes[k], det.points[k])[0][:, :2])
        # .pts coordinates are 1-based (Matlab): shift ours (0-based pixel centres) to match.
        pred = pred + 1.0
        e68.append(nme(pred, gt))
        e51.append(nme(pred, gt, INNER51))
        names.append(f.stem)
    return {"n_images": len(files), "n_detected": len(e68), "names": names,
            "nme68": np.asarray(e68), "nme51": np.asarray(e51)}
