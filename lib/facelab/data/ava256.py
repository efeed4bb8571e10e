"""ava-256 captures (Meta's open codec-avatar data, the stand-in for GenCA's registered captures).

GenCA trains on registered multi-view captures that are not public; ``facebookresearch/ava-256``
is the open data of the same kind (the same lab's capture rig, one tracked mesh topology, UV
textures). Layout read here, as its ``download.py`` writes it (one folder per capture)::

    <root>/<mcd>--<mct>--<SID>/decoder/
        frame_list.csv                                  header "seg_id,frame_id", one row per frame
        kinematic_tracking/registration_vertices.zip    <frame:06d>.ply   tracked mesh vertices
        uv_image/color.zip                              color/<frame:06d>.avif   unwrapped UV texture
        (camera_calibration.json, image/, head_pose/, ... : not read here; the UV maps need no camera)

and, separately, the topology: ``assets/face_topology.obj`` of the ava-256 repository (the
triangles and the UV layout every registration shares; it is not part of the capture download),
passed as ``topology=``. The neutral frames are those of segment ``EXP_neutral_peak`` (as
ava-256's own loader picks them); every other segment is an expression.

:class:`AVA256Captures` lists the captures and their frames, reads a frame's vertices (a PLY inside
the zip) and UV texture, and with a topology turns a frame into GenCA's UV maps: a position map G
(per texel the 3-D surface point, through :func:`facelab.synth.uvmaps.uv_raster`) and the texture T
at the same resolution (:meth:`uv_maps`, :meth:`identity_maps`). Captions are not part of ava-256:
a text-conditioned model needs descriptions from elsewhere (GenCA captions with a VLM).
"""
from __future__ import annotations

import csv
import io
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import DatasetLayoutError

__all__ = ["AVA256Captures", "AVA256_NEUTRAL_SEGMENT", "read_ply_vertices"]

AVA256_NEUTRAL_SEGMENT = "EXP_neutral_peak"
TREE = """<root>/<mcd>--<mct>--<SID>/decoder/      e.g. 20210223--1023--AVW368/decoder/
    frame_list.csv                               seg_id,frame_id
    kinematic_tracking/registration_vertices.zip <frame:06d>.ply
    uv_image/color.zip                           color/<frame:06d>.avif
  + topology=<ava-256>/assets/face_topology.obj (triangles and UV layout)"""
_CAPTURE = re.compile(r"^\d{8}--\d{4}--[A-Za-z0-9]+$")
_REQUIRED = ("frame_list.csv", "kinematic_tracking/registration_vertices.zip", "uv_image/color.zip")
_PLY_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
              "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
              "float": "f4", "float32": "f4", "double": "f8", "float64": "f8"}


def read_ply_vertices(data: bytes, where: str = "ply") -> np.ndarray:
    """(V, 3) float32 x, y, z of the ``vertex`` element of a PLY file's bytes (ascii or binary,
    either byte order). The vertex element must come first (as in ava-256's registrations)."""
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise DatasetLayoutError(f"{where}: not a PLY file (expected a 'ply' header ending in 'end_header')")
    header = data[:end].decode("ascii", "replace").splitlines()
    body = data[end + len(b"end_header"):]
    body = body[2:] if body.startswith(b"\r\n") else body[1:]
    fmt = next((ln.split()[1] for ln in header if ln.startswith("format ")), None)
    elements = [ln.split() for ln in header if ln.startswith(("element ", "property "))]
    if not elements or elements[0][:2] != ["element", "vertex"]:
        raise DatasetLayoutError(f"{where}: the first PLY element is not 'vertex'; got {' '.join(elements[0]) if elements else 'none'}")
    n = int(elements[0][2])
    props = []
    for el in elements[1:]:
        if el[0] == "element":
            break
        if el[1] == "list" or el[1] not in _PLY_TYPES:
            raise DatasetLayoutError(f"{where}: vertex property {' '.join(el[1:])!r} is not a scalar PLY type")
        props.append((el[2], _PLY_TYPES[el[1]]))
    names = [p for p, _ in props]
    if not {"x", "y", "z"} <= set(names):
        raise DatasetLayoutError(f"{where}: vertex properties {names}; expected x, y and z")
    if fmt == "ascii":
        rows = body.decode("ascii", "replace").split("\n")[:n]
        try:
            table = np.array([[float(v) for v in r.split()[:len(props)]] for r in rows], np.float64)
        except ValueError as err:
            raise DatasetLayoutError(f"{where}: unreadable ascii vertex row ({err})") from None
        if table.shape != (n, len(props)):
            raise DatasetLayoutError(f"{where}: {len(rows)} vertex rows of {table.shape[-1] if table.ndim == 2 else 0} values; "
                                     f"the header says {n} of {len(props)}")
        cols = {p: table[:, i] for i, p in enumerate(names)}
    elif fmt in ("binary_little_endian", "binary_big_endian"):
        order = "<" if fmt == "binary_little_endian" else ">"
        dtype = np.dtype([(p, order + t) for p, t in props])
        if len(body) < n * dtype.itemsize:
            raise DatasetLayoutError(f"{where}: {len(body)} bytes after the header, {n} vertices need {n * dtype.itemsize}")
        cols = np.frombuffer(body, dtype, count=n)
    else:
        raise DatasetLayoutError(f"{where}: PLY format {fmt!r}; expected ascii or binary_little/big_endian")
    return np.stack([np.asarray(cols[k], np.float32) for k in ("x", "y", "z")], 1)


@dataclass(frozen=True)
class _Topology:
    faces: np.ndarray       # (F, 3) vertex indices
    uv: np.ndarray          # (T, 2) UVs, v down (facelab.synth.uvmaps' convention)
    face_uvs: np.ndarray    # (F, 3) indices into uv
    n_vertices: int


class AVA256Captures:
    """The ava-256 captures under ``root`` (layout in the module docstring). ``captures``: keep only
    these folder names (or subject ids); ``topology``: the shared ``face_topology.obj``, needed for
    the UV maps. ``frames[name]`` = list of ``(segment, frame id)``."""

    def __init__(self, root: str | os.PathLike, *, topology: str | os.PathLike | None = None, captures=None,
                 neutral_segment: str = AVA256_NEUTRAL_SEGMENT) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetLayoutError(f"ava-256: {self.root} is not a folder; expected\n{TREE}")
        self.neutral_segment = neutral_segment
        want = None if captures is None else {str(c).upper() for c in captures}
        self.frames: dict[str, list[tuple[str, int]]] = {}
        self.skipped: list[str] = []
        for d in sorted(p for p in self.root.iterdir() if p.is_dir()):
            if not _CAPTURE.match(d.name):
                self.skipped.append(f"{d.name}: not <mcd>--<mct>--<SID>")
                continue
            if want is not None and d.name.upper() not in want and d.name.split("--")[-1].upper() not in want:
                continue
            dec = d / "decoder"
            missing = [r for r in _REQUIRED if not (dec / r).is_file()]
            if missing:
                raise DatasetLayoutError(f"ava-256 capture {d.name}: missing {', '.join(f'decoder/{m}' for m in missing)}; "
                                         f"expected\n{TREE}")
            self.frames[d.name] = self._frame_list(dec / "frame_list.csv")
        if not self.frames:
            raise DatasetLayoutError(f"ava-256: no captures under {self.root} ({len(self.skipped)} folders skipped"
                                     f"{': ' + '; '.join(self.skipped[:3]) if self.skipped else ''}); expected\n{TREE}")
        self.topology = None if topology is None else self._topology(topology)
        self._rasters: dict[int, object] = {}

    @staticmethod
    def _frame_list(path: Path) -> list[tuple[str, int]]:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        if not rows or [c.strip() for c in rows[0][:2]] != ["seg_id", "frame_id"]:
            raise DatasetLayoutError(f"{path}: header {rows[0] if rows else 'missing'}; expected 'seg_id,frame_id'")
        out = []
        for n, r in enumerate(rows[1:], 2):
            if len(r) < 2 or not r[1].strip().isdigit():
                raise DatasetLayoutError(f"{path}, line {n}: {r!r}; expected '<segment>,<integer frame id>'")
            out.append((r[0].strip(), int(r[1])))
        if not out:
            raise DatasetLayoutError(f"{path}: no frames listed")
        return out

    @staticmethod
    def _topology(path) -> _Topology:
        from .facescape import read_textured_obj

        mesh = read_textured_obj(path, texture=False)
        uv = mesh.uvs.copy()
        uv[:, 1] = 1 - uv[:, 1]                                   # OBJ v up -> texel rows down
        return _Topology(mesh.faces, uv, mesh.face_uvs, len(mesh.vertices))

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def captures(self) -> list[str]:
        return list(self.frames)

    def _capture(self, capture: str) -> Path:
        if capture not in self.frames:
            raise KeyError(f"ava-256: unknown capture {capture!r}; this root has {', '.join(self.frames)}")
        return self.root / capture / "decoder"

    def neutral_frames(self, capture: str) -> list[int]:
        out = [f for s, f in self.frames[capture] if s == self.neutral_segment] if capture in self.frames else None
        if out is None:
            self._capture(capture)
        if not out:
            raise DatasetLayoutError(f"ava-256 capture {capture}: no frame of segment {self.neutral_segment!r} in "
                                     "frame_list.csv (the neutral face GenCA's identity maps come from)")
        return out

    def expression_frames(self, capture: str) -> list[tuple[str, int]]:
        self._capture(capture)
        return [(s, f) for s, f in self.frames[capture] if s != self.neutral_segment]

    def _member(self, zip_path: Path, name: str) -> bytes:
        with zipfile.ZipFile(zip_path) as zf:
            try:
                return zf.read(name)
            except KeyError:
                raise DatasetLayoutError(f"{zip_path}: no member {name!r}") from None

    def vertices(self, capture: str, frame: int) -> np.ndarray:
        """(V, 3) float32 tracked-mesh vertices of ``frame``."""
        zp = self._capture(capture) / "kinematic_tracking" / "registration_vertices.zip"
        name = f"{int(frame):06d}.ply"
        return read_ply_vertices(self._member(zp, name), f"{zp}:{name}")

    def texture(self, capture: str, frame: int) -> np.ndarray:
        """(H, W, 3) uint8 unwrapped UV texture of ``frame``."""
        from PIL import Image

        zp = self._capture(capture) / "uv_image" / "color.zip"
        name = f"color/{int(frame):06d}.avif"
        try:
            with Image.open(io.BytesIO(self._member(zp, name))) as im:
                return np.array(im.convert("RGB"))
        except OSError as err:
            raise DatasetLayoutError(f"{zp}:{name}: not a readable image ({err})") from None

    def uv_maps(self, capture: str, frame: int, res: int):
        """GenCA's maps of one frame at ``res``: position map G (3, res, res) in the capture's units
        and texture T (3, res, res) in [0, 1], texel-aligned (torch tensors)."""
        import torch
        import torch.nn.functional as F

        from ..synth import uvmaps as UV

        if self.topology is None:
            raise ValueError("ava-256: uv_maps needs topology=<ava-256>/assets/face_topology.obj (triangles and UVs)")
        verts = self.vertices(capture, frame)
        if len(verts) != self.topology.n_vertices:
            raise DatasetLayoutError(f"ava-256 capture {capture}, frame {frame}: {len(verts)} vertices, the topology has "
                                     f"{self.topology.n_vertices}; expected registrations in the topology's vertex order")
        if res not in self._rasters:
            self._rasters[res] = UV.uv_raster(self.topology.uv, self.topology.face_uvs, res)
        g = UV.position_map(verts[None], self.topology.faces, self._rasters[res])[0]
        tex = torch.as_tensor(self.texture(capture, frame), dtype=torch.float32).permute(2, 0, 1)[None] / 255
        return g, F.interpolate(tex, size=(res, res), mode="area")[0]

    def identity_maps(self, res: int, n_expr: int = 1, captures=None, seed: int = 0) -> dict:
        """Per capture the neutral maps and ``n_expr`` expressive ones (frames drawn with ``seed``):
        ``{"g": (n, 3, R, R), "t": ..., "g_exp": (n, k, 3, R, R), "t_exp": ..., "captures": [...]}``."""
        import torch

        rng = np.random.default_rng(seed)
        names = list(captures) if captures is not None else self.captures
        g, t, ge, te = [], [], [], []
        for c in names:
            expr = self.expression_frames(c)
            if len(expr) < n_expr:
                raise DatasetLayoutError(f"ava-256 capture {c}: {len(expr)} expression frames, {n_expr} asked for")
            g0, t0 = self.uv_maps(c, self.neutral_frames(c)[0], res)
            picks = [expr[i][1] for i in rng.choice(len(expr), n_expr, replace=False)]
            maps = [self.uv_maps(c, f, res) for f in picks]
            g.append(g0)
            t.append(t0)
            ge.append(torch.stack([m[0] for m in maps]))
            te.append(torch.stack([m[1] for m in maps]))
        return {"g": torch.stack(g), "t": torch.stack(t), "g_exp": torch.stack(ge), "t_exp": torch.stack(te),
                "captures": names}
