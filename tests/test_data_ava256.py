"""facelab.data.ava256 (GenCA's paper-profile reader) on an ava-256-layout fixture written here."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from facelab.data.ava256 import AVA256Captures, read_ply_vertices
from facelab.data.base import DatasetLayoutError

# a unit quad: vertex k at (x, y) = (u, v); the UV corners are listed in another order than the
# vertices (vt 1 is vertex 3's), so faces and face_uvs differ, as in ava-256's topology
TOPOLOGY = """v 0 0 0
v 1 0 0
v 1 1 0
v 0 1 0
vt 0 0
vt 0 1
vt 1 0
vt 1 1
f 1/1 2/3 3/4
f 1/1 3/4 4/2
"""
QUAD = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float32)


def ply_bytes(verts, fmt="binary_little_endian", faces=True):
    head = ["ply", f"format {fmt} 1.0", f"element vertex {len(verts)}", "property float x", "property float y",
            "property float z", "property uchar red"]
    if faces:
        head += ["element face 2", "property list uchar int vertex_indices"]
    head.append("end_header")
    out = ("\n".join(head) + "\n").encode()
    if fmt == "ascii":
        return out + "".join(f"{x} {y} {z} 7\n" for x, y, z in verts).encode()
    order = "<" if fmt == "binary_little_endian" else ">"
    rec = np.zeros(len(verts), [("x", order + "f4"), ("y", order + "f4"), ("z", order + "f4"), ("r", "u1")])
    rec["x"], rec["y"], rec["z"] = verts.T
    return out + rec.tobytes()


def avif(colour):
    b = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), colour, np.uint8)).save(b, format="AVIF", quality=100)
    return b.getvalue()


def make_capture(root, name, frames, fmt="binary_little_endian"):
    dec = root / name / "decoder"
    (dec / "kinematic_tracking").mkdir(parents=True)
    (dec / "uv_image").mkdir()
    (dec / "frame_list.csv").write_text("seg_id,frame_id\n" + "".join(f"{s},{f}\n" for s, f in frames))
    with zipfile.ZipFile(dec / "kinematic_tracking" / "registration_vertices.zip", "w") as zv, \
            zipfile.ZipFile(dec / "uv_image" / "color.zip", "w") as zt:
        for _, f in frames:
            zv.writestr(f"{f:06d}.ply", ply_bytes(QUAD + [0, 0, f], fmt))
            zt.writestr(f"color/{f:06d}.avif", avif(10 * f))
    return dec


FRAMES = [("EXP_neutral_peak", 1), ("EXP_smile", 2), ("EXP_smile", 3), ("EXP_jaw_open", 4)]


@pytest.fixture()
def root(tmp_path):
    make_capture(tmp_path, "20210223--1023--AVW368", FRAMES)
    make_capture(tmp_path, "20220101--0900--XYZ001", FRAMES, fmt="ascii")
    (tmp_path / "notes").mkdir()
    (tmp_path / "face_topology.obj").write_text(TOPOLOGY)
    return tmp_path


def test_captures_frames_vertices_and_textures(root):
    ds = AVA256Captures(root)
    assert ds.captures == ["20210223--1023--AVW368", "20220101--0900--XYZ001"] and len(ds) == 2
    assert ds.skipped == ["notes: not <mcd>--<mct>--<SID>"]
    assert ds.neutral_frames("20210223--1023--AVW368") == [1]
    assert ds.expression_frames("20220101--0900--XYZ001") == FRAMES[1:]
    for c in ds.captures:                                      # binary and ascii PLY read alike
        assert np.allclose(ds.vertices(c, 3), QUAD + [0, 0, 3])
    tex = ds.texture("20210223--1023--AVW368", 2)
    assert tex.shape == (16, 16, 3) and abs(float(tex.mean()) - 20) < 3
    assert AVA256Captures(root, captures=["xyz001"]).captures == ["20220101--0900--XYZ001"]


def test_big_endian_ply_and_its_errors():
    assert np.allclose(read_ply_vertices(ply_bytes(QUAD, "binary_big_endian")), QUAD)
    with pytest.raises(DatasetLayoutError, match="not a PLY"):
        read_ply_vertices(b"solid stl")
    faces_first = b"ply\nformat ascii 1.0\nelement face 0\nproperty list uchar int vertex_indices\nend_header\n"
    with pytest.raises(DatasetLayoutError, match="first PLY element is not 'vertex'"):
        read_ply_vertices(faces_first)
    with pytest.raises(DatasetLayoutError, match="1 vertices need"):
        read_ply_vertices(b"ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty float x\nproperty float y\n"
                          b"property float z\nend_header\n\x00\x00")
    no_z = b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nend_header\n0 0\n"
    with pytest.raises(DatasetLayoutError, match="expected x, y and z"):
        read_ply_vertices(no_z)


def test_uv_maps_are_the_position_map_of_the_topology(root):
    ds = AVA256Captures(root, topology=root / "face_topology.obj")
    g, t = ds.uv_maps("20210223--1023--AVW368", 3, 8)
    assert g.shape == (3, 8, 8) and t.shape == (3, 8, 8)
    centres = (torch.arange(8) + 0.5) / 8
    # x = u along columns; y = v up in the OBJ, so rows (v down) read 1 - v; z = the frame's offset
    assert torch.allclose(g[0], centres[None].expand(8, 8), atol=1e-5)
    assert torch.allclose(g[1], 1 - centres[:, None].expand(8, 8), atol=1e-5)
    assert torch.allclose(g[2], torch.full((8, 8), 3.0))
    assert abs(float(t.mean()) - 30 / 255) < 0.02
    maps = ds.identity_maps(8, n_expr=2)
    assert maps["g"].shape == (2, 3, 8, 8) and maps["t_exp"].shape == (2, 2, 3, 8, 8)
    assert torch.allclose(maps["g"][:, 2], torch.ones(2, 8, 8))          # the neutral frame (1)
    assert set(maps["g_exp"][:, :, 2, 0, 0].flatten().tolist()) <= {2.0, 3.0, 4.0}


def test_layout_errors_name_what_was_expected(root, tmp_path_factory):
    with pytest.raises(DatasetLayoutError, match="is not a folder"):
        AVA256Captures(root / "missing")
    empty = tmp_path_factory.mktemp("empty")
    (empty / "notes").mkdir()
    with pytest.raises(DatasetLayoutError, match=r"(?s)no captures under .*1 folders skipped.*frame_list.csv"):
        AVA256Captures(empty)
    with pytest.raises(ValueError, match="needs topology="):
        AVA256Captures(root).uv_maps("20210223--1023--AVW368", 1, 8)
    with pytest.raises(KeyError, match="unknown capture 'nope'"):
        AVA256Captures(root).vertices("nope", 1)
    with pytest.raises(DatasetLayoutError, match="no member '000009.ply'"):
        AVA256Captures(root).vertices("20210223--1023--AVW368", 9)
    bad = tmp_path_factory.mktemp("bad")
    dec = make_capture(bad, "20210223--1023--AVW368", [("EXP_smile", 2)])
    with pytest.raises(DatasetLayoutError, match="no frame of segment 'EXP_neutral_peak'"):
        AVA256Captures(bad).neutral_frames("20210223--1023--AVW368")
    (dec / "frame_list.csv").write_text("segment,frame\nEXP_smile,2\n")
    with pytest.raises(DatasetLayoutError, match="expected 'seg_id,frame_id'"):
        AVA256Captures(bad)
    (dec / "uv_image" / "color.zip").unlink()
    with pytest.raises(DatasetLayoutError, match="missing decoder/uv_image/color.zip"):
        AVA256Captures(bad)
    (root / "face_topology.obj").write_text(TOPOLOGY.replace("v 0 1 0\n", "v 0 1 0\nv 2 2 2\n"))
    with pytest.raises(DatasetLayoutError, match="4 vertices, the topology has 5"):
        AVA256Captures(root, topology=root / "face_topology.obj").uv_maps("20210223--1023--AVW368", 1, 8)
