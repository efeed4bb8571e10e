"""FaceScape's topologically uniform (TU) textured scans, as the dataset ships them.

Layout read here (one folder per identity, 20 expressions each, every mesh in one shared topology
and one shared UV layout)::

    <root>/<id>/models_reg/<k>_<expression>.obj        k = 1..20, e.g. 1_neutral.obj, 2_smile.obj
    <root>/<id>/models_reg/<k>_<expression>.jpg        its texture (or the map_Kd of its .mtl)
    <root>/<id>/models_reg/<k>_<expression>.obj.mtl    (optional)

:class:`FaceScapeTU` lists the scans (``identity``, ``expression``, paths) and loads one as a
:class:`TexturedMesh`: vertices (V, 3), triangles (F, 3), texture coordinates (T, 2), per-corner
UV indices (F, 3) and the texture image. :data:`FACESCAPE_EXPRESSIONS` names the 20 expressions;
:data:`FACESCAPE_TO_CANONICAL` maps those that are basic expressions to facelab's canonical ids.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import DatasetLayoutError

__all__ = ["FACESCAPE_EXPRESSIONS", "FACESCAPE_TO_CANONICAL", "FaceScapeTU", "TexturedMesh", "read_textured_obj"]

FACESCAPE_EXPRESSIONS = ("neutral", "smile", "mouth_stretch", "anger", "jaw_left", "jaw_right", "jaw_forward",
                         "mouth_left", "mouth_right", "dimpler", "chin_raiser", "lip_puckerer", "lip_funneler",
                         "sadness", "lip_roll", "grin", "cheek_blowing", "eye_closed", "brow_raiser", "brow_lower")
# expressions that are (close to) a basic emotion -> canonical id (0 neutral, 1 happy, 2 sad, 6 anger);
# the others are action-like (jaw_left, cheek_blowing, ...) and have no canonical label
FACESCAPE_TO_CANONICAL = {"neutral": 0, "smile": 1, "grin": 1, "sadness": 2, "anger": 6}

TREE = """<root>/
  <identity id>/models_reg/
    1_neutral.obj  1_neutral.jpg  [1_neutral.obj.mtl]
    2_smile.obj    2_smile.jpg
    ... up to 20_brow_lower.obj"""

_NAME = re.compile(r"^(\d+)_([a-z_]+)\.obj$")


@dataclass
class TexturedMesh:
    vertices: np.ndarray     # (V, 3) float32
    faces: np.ndarray        # (F, 3) int64 vertex indices
    uvs: np.ndarray          # (T, 2) float32 texture coordinates, v up (OBJ convention)
    face_uvs: np.ndarray     # (F, 3) int64 indices into uvs
    texture: np.ndarray | None  # (H, W, 3) uint8, or None when not loaded
    path: str


def read_textured_obj(path: str | os.PathLike, *, texture: bool = True) -> TexturedMesh:
    """A Wavefront OBJ with texture coordinates (``f v/vt`` or ``f v/vt/vn``); polygons are fanned
    into triangles. The texture is ``map_Kd`` of its material file, else the .jpg/.png of the same stem."""
    path = Path(path)
    if not path.is_file():
        raise DatasetLayoutError(f"{path}: no such mesh (expected a textured Wavefront .obj)")
    verts, uvs, faces, face_uvs, mtllib = [], [], [], [], None
    try:
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if line.startswith("v "):
                    verts.append([float(x) for x in line.split()[1:4]])
                elif line.startswith("vt "):
                    uvs.append([float(x) for x in line.split()[1:3]])
                elif line.startswith("f "):
                    corners = [tok.split("/") for tok in line.split()[1:]]
                    if any(len(c) < 2 or not c[1] for c in corners):
                        raise DatasetLayoutError(f"{path}, line {n}: a face without texture coordinates "
                                                 f"({line.strip()!r}); expected 'f v/vt ...'")
                    vi = [int(c[0]) for c in corners]
                    ti = [int(c[1]) for c in corners]
                    for i in range(1, len(vi) - 1):
                        faces.append([vi[0], vi[i], vi[i + 1]])
                        face_uvs.append([ti[0], ti[i], ti[i + 1]])
                elif line.startswith("mtllib "):
                    mtllib = line.split(maxsplit=1)[1].strip()
    except (UnicodeDecodeError, ValueError) as err:
        raise DatasetLayoutError(f"{path}: not a Wavefront .obj ({type(err).__name__}: {err})") from None
    if len(verts) < 3 or not faces or not uvs:
        raise DatasetLayoutError(f"{path}: {len(verts)} vertices, {len(uvs)} texture coordinates, {len(faces)} faces; "
                                 "expected a textured triangle mesh (v, vt and f v/vt lines)")
    v = np.asarray(verts, np.float32)
    t = np.asarray(uvs, np.float32)
    f = np.asarray(faces, np.int64)
    ft = np.asarray(face_uvs, np.int64)
    f = np.where(f < 0, f + len(v), f - 1)
    ft = np.where(ft < 0, ft + len(t), ft - 1)
    if f.min() < 0 or f.max() >= len(v) or ft.min() < 0 or ft.max() >= len(t):
        raise DatasetLayoutError(f"{path}: face indices outside its {len(v)} vertices / {len(t)} texture coordinates")
    image = None
    if texture:
        tex_path = _texture_path(path, mtllib)
        if tex_path is None:
            raise DatasetLayoutError(f"{path}: no texture found (expected {path.stem}.jpg or .png beside it, "
                                     "or a map_Kd in its .mtl)")
        from PIL import Image

        with Image.open(tex_path) as im:
            image = np.asarray(im.convert("RGB"))
    return TexturedMesh(v, f, t, ft, image, str(path))


def _texture_path(obj: Path, mtllib: str | None) -> Path | None:
    candidates = []
    for mtl in ([obj.parent / mtllib] if mtllib else []) + [obj.with_suffix(".obj.mtl"), obj.with_suffix(".mtl")]:
        if mtl.is_file():
            for line in mtl.read_text(errors="replace").splitlines():
                if line.strip().startswith("map_Kd"):
                    candidates.append(obj.parent / line.split(maxsplit=1)[1].strip())
    candidates += [obj.with_suffix(".jpg"), obj.with_suffix(".png")]
    return next((c for c in candidates if c.is_file()), None)


class FaceScapeTU:
    """The TU scans under ``root`` (see the module docstring), optionally only some identities and
    expressions (names from :data:`FACESCAPE_EXPRESSIONS`). ``items[i]`` = ``(identity, expression,
    obj path)``; :meth:`load` reads one as a :class:`TexturedMesh`."""

    def __init__(self, root: str | os.PathLike, *, identities=None, expressions=None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetLayoutError(f"FaceScape TU: {self.root} is not a folder; expected\n{TREE}")
        bad = [e for e in (expressions or ()) if e not in FACESCAPE_EXPRESSIONS]
        if bad:
            raise ValueError(f"FaceScape TU: unknown expressions {bad}; expected names from {FACESCAPE_EXPRESSIONS}")
        want_ids = None if identities is None else {str(i) for i in identities}
        self.items: list[tuple[str, str, Path]] = []
        self.skipped: list[str] = []
        for id_dir in sorted((d for d in self.root.iterdir() if d.is_dir()), key=lambda d: (len(d.name), d.name)):
            if want_ids is not None and id_dir.name not in want_ids:
                continue
            reg = id_dir / "models_reg"
            if not reg.is_dir():
                self.skipped.append(f"{id_dir.name}: no models_reg/")
                continue
            for obj in sorted(reg.glob("*.obj"), key=lambda p: int(_NAME.match(p.name).group(1)) if _NAME.match(p.name) else 10**6):
                m = _NAME.match(obj.name)
                if m is None or m.group(2) not in FACESCAPE_EXPRESSIONS:
                    self.skipped.append(f"{obj.relative_to(self.root)}: not <k>_<expression>.obj")
                    continue
                if expressions is None or m.group(2) in expressions:
                    self.items.append((id_dir.name, m.group(2), obj))
        if not self.items:
            raise DatasetLayoutError(f"FaceScape TU: no scans found under {self.root} "
                                     f"({len(self.skipped)} entries skipped); expected\n{TREE}")

    def __len__(self) -> int:
        return len(self.items)

    @property
    def identities(self) -> list[str]:
        return sorted({i for i, _, _ in self.items}, key=lambda s: (len(s), s))

    def label(self, index: int) -> int:
        """Canonical expression id of item ``index``, or -1 when its expression is not a basic one."""
        return FACESCAPE_TO_CANONICAL.get(self.items[index][1], -1)

    def load(self, index: int, *, texture: bool = True) -> TexturedMesh:
        return read_textured_obj(self.items[index][2], texture=texture)
