"""facelab.data.FaceScapeTU / read_textured_obj on a FaceScape-layout fixture written here."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from facelab.data import DatasetLayoutError, FaceScapeTU, read_textured_obj

QUAD = """mtllib {stem}.obj.mtl
v 0 0 0
v 1 0 0
v 1 1 0
v 0 1 {z}
vt 0 0
vt 1 0
vt 1 1
vt 0 1
f 1/1 2/2 3/3 4/4
"""


def make_scan(root, ident, k, name, z=0.0, mtl=True):
    reg = root / str(ident) / "models_reg"
    reg.mkdir(parents=True, exist_ok=True)
    stem = f"{k}_{name}"
    (reg / f"{stem}.obj").write_text(QUAD.format(stem=stem, z=z))
    tex = np.zeros((8, 8, 3), np.uint8)
    tex[..., 0] = 10 * k
    if mtl:
        (reg / f"{stem}.obj.mtl").write_text(f"newmtl m\nmap_Kd tex_{stem}.png\n")
        Image.fromarray(tex).save(reg / f"tex_{stem}.png")
    else:
        Image.fromarray(tex).save(reg / f"{stem}.jpg")
    return reg / f"{stem}.obj"


def test_scans_are_listed_and_loaded_with_their_textures(tmp_path):
    for ident in (1, 2, 10):
        make_scan(tmp_path, ident, 1, "neutral")
        make_scan(tmp_path, ident, 2, "smile", z=0.5, mtl=False)
        make_scan(tmp_path, ident, 14, "sadness")
    (tmp_path / "notes").mkdir()
    ds = FaceScapeTU(tmp_path)
    assert len(ds) == 9 and ds.identities == ["1", "2", "10"]
    assert [e for i, e, _ in ds.items[:3]] == ["neutral", "smile", "sadness"]
    assert [ds.label(i) for i in range(3)] == [0, 1, 2]
    mesh = ds.load(1)
    assert mesh.vertices.shape == (4, 3) and mesh.faces.tolist() == [[0, 1, 2], [0, 2, 3]]
    assert mesh.face_uvs.tolist() == [[0, 1, 2], [0, 2, 3]] and np.allclose(mesh.uvs[2], [1, 1])
    assert mesh.vertices[3, 2] == pytest.approx(0.5) and mesh.texture[0, 0, 0] == 20      # 2_smile.jpg
    assert ds.load(0).texture[0, 0, 0] == 10                                              # via map_Kd
    assert "notes: no models_reg/" in ds.skipped
    sub = FaceScapeTU(tmp_path, identities=[2], expressions=["smile"])
    assert [(i, e) for i, e, _ in sub.items] == [("2", "smile")]


def test_wrong_layouts_are_refused_with_the_expected_tree(tmp_path):
    with pytest.raises(DatasetLayoutError, match="models_reg"):
        FaceScapeTU(tmp_path)                                          # empty folder
    with pytest.raises(DatasetLayoutError, match="not a folder"):
        FaceScapeTU(tmp_path / "missing")
    make_scan(tmp_path, 1, 1, "neutral")
    with pytest.raises(ValueError, match="unknown expressions"):
        FaceScapeTU(tmp_path, expressions=["happy"])
    obj = tmp_path / "plain.obj"
    obj.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    with pytest.raises(DatasetLayoutError, match="without texture coordinates"):
        read_textured_obj(obj)
    notex = make_scan(tmp_path, 3, 1, "neutral", mtl=False)
    notex.with_suffix(".jpg").unlink()
    with pytest.raises(DatasetLayoutError, match="no texture found"):
        read_textured_obj(notex)
    assert read_textured_obj(notex, texture=False).texture is None
