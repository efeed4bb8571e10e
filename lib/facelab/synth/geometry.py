"""Face geometry: the canonical mesh cut open at eyes and mouth, eyeballs and mouth interior,
UVs, the identity shape basis, the (optionally one-sided) AU basis, head pose and projection.

Everything here is a fixed table built once (``topology()``) plus batched, linear maps:

    mesh = PLS intercept + [AU_right, AU_left] @ B_au + identity @ B_id      (n, 468, 3)

``B_au`` is py-feat's PLS coefficient rows split smoothly into a subject-right and a
subject-left half, so equal left/right intensities reproduce ``mesh.au_mesh_model().mesh``
exactly (checked in the tests) while unequal ones give asymmetric expressions (contempt).

Frame: x right, y up, z towards the viewer (model units, ~175 across the face). The PLS
model's pose inputs are radians (a 1.0 input changes the frontalised output by up to ~75
units, impossible for degrees); because that output is frontalised, those inputs only add a
non-rigid residual, so we feed them 0 and rotate the head rigidly ourselves (exact pose truth).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .. import mesh as _mesh

N = _mesh.N_VERTICES

# Contours of the canonical MediaPipe mesh (subject's right = image left = negative x).
EYE_R = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
EYE_L = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
LIPS_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191)
LIPS_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
# Upper and lower inner-lip rows from corner to corner, paired column by column.
LIP_UPPER_ROW = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LIP_LOWER_ROW = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
BROW_R = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)
BROW_L = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400,
             377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
NOSE_TIP = 4
# Material ids, used by the shader (eyes and teeth are shinier, the mouth cavity darker).
MAT_SKIN, MAT_EYE, MAT_MOUTH = 0, 1, 2

#: Rings of the eyeball disc (fractions of the eye's corner-to-corner width) and the number
#: of directions around it.
_EYE_DIRS = 16
_EYE_RADII = (0.0, 0.35, 0.8)
_MOUTH_ROWS = 4


def _base_frontal() -> np.ndarray:
    """Neutral mesh (468, 3) of the PLS model at zero AUs, zero pose."""
    return _mesh.au_mesh_model().mesh(np.zeros(20, np.float32)).astype(np.float64)


@dataclass(frozen=True)
class Topology:
    """Fixed tables of the renderable face (face mesh + eyeballs + mouth interior)."""

    center: np.ndarray        # (3,) subtracted from model coordinates
    base: np.ndarray          # (468, 3) centred neutral mesh
    tris: np.ndarray          # (F, 3) all renderable triangles (face first)
    n_face_tris: int          # the first n_face_tris rows are the (cut) canonical face
    tri_material: np.ndarray  # (F,) MAT_* per triangle
    uv: np.ndarray            # (V_total, 2) atlas coordinates in [0,1]^2 (u right, v down)
    face_uv: np.ndarray       # (468, 2) the frontal-projection UVs in [0,1]^2
    n_vertices: int           # 468 + eyeball + mouth vertices
    atlas_face_height: float  # the face occupies atlas v in [0, atlas_face_height]


ATLAS_FACE_FRACTION = 0.8  # atlas rows [0, 0.8) face UVs, [0.8, 1) eyeballs + mouth interior


def face_uv_of(points: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Frontal projection of (..., 3) centred points normalised by the neutral mesh's extent."""
    lo, hi = base[:, :2].min(0), base[:, :2].max(0)
    u = (points[..., 0] - lo[0]) / (hi[0] - lo[0])
    v = (hi[1] - points[..., 1]) / (hi[1] - lo[1])
    return np.stack([u, v], -1)


@lru_cache(maxsize=1)
def topology() -> Topology:
    raw = _base_frontal()
    lo, hi = raw.min(0), raw.max(0)
    center = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, 0.0])
    base = raw - center
    tris = _mesh.triangles()
    # The canonical tessellation bridges the eye and mouth openings; cut those polygons out
    # so that lids and lips can part over the eyeballs and mouth interior placed behind.
    holes = [set(EYE_R), set(EYE_L), set(LIPS_INNER)]
    keep = np.array([not any(all(v in h for v in t) for h in holes) for t in tris])
    face_tris = tris[keep]
    # The tessellation is consistently wound; orient it counter-clockwise in the (x right,
    # y up) frontal view as a whole. (A few triangles under the nose face away from a frontal
    # camera; flipping them one by one would punch holes when the head tips back.)
    p = base[:, :2]
    area = ((p[face_tris[:, 1], 0] - p[face_tris[:, 0], 0]) * (p[face_tris[:, 2], 1] - p[face_tris[:, 0], 1])
            - (p[face_tris[:, 2], 0] - p[face_tris[:, 0], 0]) * (p[face_tris[:, 1], 1] - p[face_tris[:, 0], 1]))
    if (area < 0).sum() > (area > 0).sum():
        face_tris = face_tris[:, [0, 2, 1]]

    face_uv = face_uv_of(base, base)
    h = ATLAS_FACE_FRACTION
    uv = [np.stack([face_uv[:, 0], face_uv[:, 1] * h], -1)]
    extra_tris, mats = [], []
    nxt = N
    # Eyeballs: a disc of rings around the eye centre; atlas squares at the bottom left.
    for k in range(2):
        ring_tris, ring_uv = _disc_tris(nxt)
        extra_tris.append(ring_tris)
        mats.append(np.full(len(ring_tris), MAT_EYE))
        # atlas square k: u in [k*0.25, k*0.25+0.25), v in [h, 1)
        uv.append(np.stack([k * 0.25 + 0.125 + ring_uv[:, 0] * 0.12,
                            h + 0.1 + ring_uv[:, 1] * 0.096], -1))
        nxt += len(ring_uv)
    # Mouth interior: a grid of _MOUTH_ROWS rows x 11(+2) columns; atlas at u in [0.5, 1).
    cols = len(LIP_UPPER_ROW) + 2
    grid = np.arange(_MOUTH_ROWS * cols).reshape(_MOUTH_ROWS, cols) + nxt
    mt = []
    for r in range(_MOUTH_ROWS - 1):
        for c in range(cols - 1):
            a, b, cc, d = grid[r, c], grid[r, c + 1], grid[r + 1, c], grid[r + 1, c + 1]
            # rows go downwards (decreasing y): (a, cc, b) is counter-clockwise in x-right/y-up
            mt += [(a, cc, b), (b, cc, d)]
    extra_tris.append(np.array(mt))
    mats.append(np.full(len(mt), MAT_MOUTH))
    gu, gv = np.meshgrid(np.linspace(0, 1, cols), np.array([0.0, 0.25, 0.75, 1.0]))
    uv.append(np.stack([0.52 + gu.ravel() * 0.46, h + 0.02 + gv.ravel() * (1 - h - 0.04)], -1))
    nxt += _MOUTH_ROWS * cols

    all_tris = np.concatenate([face_tris] + extra_tris).astype(np.int64)
    mat = np.concatenate([np.full(len(face_tris), MAT_SKIN)] + mats).astype(np.int64)
    return Topology(center=center, base=base, tris=all_tris, n_face_tris=len(face_tris),
                    tri_material=mat, uv=np.concatenate(uv).astype(np.float32), face_uv=face_uv,
                    n_vertices=nxt, atlas_face_height=h)


def _disc_tris(start: int) -> tuple[np.ndarray, np.ndarray]:
    """Triangles and unit-disc coordinates (u right, v down, in [-1,1]) of an eyeball disc."""
    ang = np.linspace(0, 2 * np.pi, _EYE_DIRS, endpoint=False)
    pts = [np.zeros(2)]
    for r in _EYE_RADII[1:]:
        pts += [np.array([np.cos(a), -np.sin(a)]) * r / _EYE_RADII[-1] for a in ang]
    tris = []
    for j in range(_EYE_DIRS):
        j2 = (j + 1) % _EYE_DIRS
        tris.append((start, start + 1 + j, start + 1 + j2))
        for ring in range(len(_EYE_RADII) - 2):
            a0 = start + 1 + ring * _EYE_DIRS
            a1 = a0 + _EYE_DIRS
            tris += [(a0 + j, a1 + j, a1 + j2), (a0 + j, a1 + j2, a0 + j2)]
    return np.array(tris), np.array(pts)


def add_inner_parts(verts: np.ndarray) -> np.ndarray:
    """Append eyeball and mouth-interior vertices to deformed (n, 468, 3) face meshes.

    They are built from the deformed eye corners and inner-lip rows, so they follow identity
    and expression: eyeballs ride with the eye corners (not the lids, which slide over them),
    upper teeth with the upper lip, lower teeth with the lower lip, the cavity stretches.
    """
    n = verts.shape[0]
    out = [verts]
    ang = np.linspace(0, 2 * np.pi, _EYE_DIRS, endpoint=False)
    dirs = np.stack([np.cos(ang), np.sin(ang)], -1)  # y up in model space
    for corners, contour in (((33, 133), EYE_R), ((263, 362), EYE_L)):
        c0, c1 = verts[:, corners[0]], verts[:, corners[1]]
        mid = (c0 + c1) / 2
        width = np.linalg.norm((c1 - c0)[:, :2], axis=-1)[:, None]  # (n, 1)
        zc = verts[:, list(contour), 2].mean(1)
        pts = [np.concatenate([mid[:, :2], (zc + 0.02 * width[:, 0])[:, None]], -1)[:, None]]
        for r in _EYE_RADII[1:]:
            xy = mid[:, None, :2] + dirs[None] * np.array([0.56, 0.4])[None, None] * width[:, :, None] * (r / _EYE_RADII[-1])
            # sit just behind the lid skin: the depth of the contour plus a bulge inward
            z = (zc - (0.04 + 0.3 * (r / _EYE_RADII[-1]) ** 2) * width[:, 0])[:, None].repeat(_EYE_DIRS, 1)
            pts.append(np.concatenate([xy, z[..., None]], -1))
        out.append(np.concatenate(pts, 1))
    up = verts[:, list(LIP_UPPER_ROW)]
    lo = verts[:, list(LIP_LOWER_ROW)]
    mouth_w = np.linalg.norm(up[:, -1, :2] - up[:, 0, :2], axis=-1)[:, None, None]
    depth = 0.08 * mouth_w
    # extend the row one column beyond each corner so the corners never show a gap
    def extend(row: np.ndarray) -> np.ndarray:
        left = row[:, :1] + (row[:, :1] - row[:, 1:2]) * 1.0
        right = row[:, -1:] + (row[:, -1:] - row[:, -2:-1]) * 1.0
        return np.concatenate([left, row, right], 1)
    up, lo = extend(up), extend(lo)
    dz = np.array([0.0, 0.0, 1.0])
    dy = np.array([0.0, 1.0, 0.0])
    teeth = 0.09 * mouth_w
    rows = [up + dy * 0.12 * mouth_w - dz * depth,            # hidden above/behind the upper lip
            up - dy * teeth - dz * depth,                     # upper teeth edge
            lo + dy * teeth - dz * depth,                     # lower teeth edge
            lo - dy * 0.12 * mouth_w - dz * depth]            # hidden below/behind the lower lip
    out.append(np.concatenate(rows, 1))
    res = np.concatenate(out, 1)
    assert res.shape[1] == topology().n_vertices
    return res


# ---------------------------------------------------------------- identity shape basis
#: Names of the identity shape parameters; each is roughly in [-1, 1] for plausible faces.
SHAPE_PARAMS = ("face_width", "face_length", "jaw_width", "chin_length", "nose_width",
                "nose_length", "eye_spacing", "eye_size", "mouth_width", "lip_fullness",
                "brow_height", "cheek_fullness", "forehead_height")


def _gauss(p: np.ndarray, c: np.ndarray, sigma: float) -> np.ndarray:
    return np.exp(-((p[:, :2] - c[:2]) ** 2).sum(-1) / (2 * sigma ** 2))


@lru_cache(maxsize=1)
def identity_basis() -> np.ndarray:
    """(len(SHAPE_PARAMS), 468, 3) displacement per unit of each shape parameter."""
    b = topology().base
    X, Y = b[:, 0], b[:, 1]
    out = np.zeros((len(SHAPE_PARAMS), N, 3))
    eye_r, eye_l = b[list(EYE_R)].mean(0), b[list(EYE_L)].mean(0)
    mouth = b[list(LIPS_OUTER)].mean(0)
    nose = b[NOSE_TIP]
    brow_r, brow_l = b[list(BROW_R)].mean(0), b[list(BROW_L)].mean(0)
    lower = 1 / (1 + np.exp(-(-Y - 20) / 12))
    out[0, :, 0] = 0.09 * X
    out[1, :, 1] = 0.07 * Y
    out[2, :, 0] = 0.12 * X * lower
    out[3, :, 1] = -10 * np.clip((mouth[1] - Y) / 45, 0, 1)
    g = _gauss(b, nose, 16)
    out[4, :, 0] = 0.22 * (X - nose[0]) * g
    out[5, :, 2] = 9 * _gauss(b, nose, 22)
    out[5, :, 1] = -3 * _gauss(b, nose, 22)
    ge_r, ge_l = _gauss(b, eye_r, 16), _gauss(b, eye_l, 16)
    out[6, :, 0] = -4 * ge_r + 4 * ge_l
    out[7] = 0.16 * ((b - eye_r) * ge_r[:, None] + (b - eye_l) * ge_l[:, None])
    out[7, :, 2] = 0
    gm = _gauss(b, mouth, 22)
    out[8, :, 0] = 0.14 * (X - mouth[0]) * gm
    gl = _gauss(b, mouth, 14)
    out[9, :, 1] = 0.25 * (Y - mouth[1]) * gl
    out[9, :, 2] = 2.5 * gl
    out[10, :, 1] = 5 * (_gauss(b, brow_r, 14) + _gauss(b, brow_l, 14))
    cheek_r = np.array([eye_r[0] - 5, (eye_r[1] + mouth[1]) / 2])
    cheek_l = np.array([eye_l[0] + 5, (eye_l[1] + mouth[1]) / 2])
    gc_r, gc_l = _gauss(b, cheek_r, 25), _gauss(b, cheek_l, 25)
    out[11, :, 0] = -5 * gc_r + 5 * gc_l
    out[11, :, 2] = 4 * (gc_r + gc_l)
    out[12, :, 1] = 9 * np.clip((Y - 30) / 60, 0, 1)
    return out.astype(np.float32)


@lru_cache(maxsize=1)
def au_side_basis() -> np.ndarray:
    """(40, 468, 3): rows 0-19 are each AU's PLS displacement on the subject's right half,
    rows 20-39 on the left half; the halves blend smoothly across the midline and sum to the
    full displacement."""
    m = _mesh.au_mesh_model()
    full = np.stack([m.displacement(a, 1.0) for a in _mesh.AU_NAMES])  # (20, 468, 3)
    X = topology().base[:, 0]
    w_right = 1 / (1 + np.exp(X / 8.0))  # subject's right = negative x
    return np.concatenate([full * w_right[None, :, None], full * (1 - w_right)[None, :, None]]).astype(np.float32)


def _lip_line(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per vertex of ``b`` (by its x): the rest mesh's inner-lip gap (0 beyond the corners) and the
    height of the line between the lips, interpolated along the inner-lip rows."""
    up, lo = b[list(LIP_UPPER_ROW)], b[list(LIP_LOWER_ROW)]
    xs = (up[:, 0] + lo[:, 0]) / 2
    order = np.argsort(xs)
    gap = np.interp(b[:, 0], xs[order], (up[:, 1] - lo[:, 1])[order], left=0, right=0)
    mid_y = np.interp(b[:, 0], xs[order], ((up[:, 1] + lo[:, 1]) / 2)[order])
    return gap, mid_y


@lru_cache(maxsize=1)
def mouth_closure() -> np.ndarray:
    """(468, 3) displacement that closes the PLS mean face's parted lips (its inner lips are
    ~8 units apart at zero AUs, which renders as a half-open mouth showing teeth). Each
    vertex near the mouth moves towards the lip line by half the local gap, fading with
    distance from the inner-lip rows, so a neutral face has closed lips and AU26 (jaw drop) and
    AU25 (lips part, :func:`_lips_part`; the PLS model's own AU25 pressed them together up to
    synth-3) open them.
    """
    b = topology().base
    up, lo = b[list(LIP_UPPER_ROW)], b[list(LIP_LOWER_ROW)]
    g, my = _lip_line(b)
    side = np.sign(b[:, 1] - my)  # +1 above the lip line, -1 below
    dist = np.abs(b[:, 1] - my)
    mouth_c = (up.mean(0) + lo.mean(0)) / 2
    fall = np.exp(-np.maximum(dist - g / 2, 0) ** 2 / (2 * 9.0 ** 2))
    fall *= np.exp(-np.maximum(np.abs(b[:, 0] - mouth_c[0]) - 30, 0) ** 2 / (2 * 8.0 ** 2))
    out = np.zeros_like(b)
    out[:, 1] = -side * g / 2 * fall
    return out.astype(np.float32)


#: AUs whose PLS displacement is too weak where it matters and noisy far from it (AU09 at 1
#: moves the jaw outline ~26 units): :func:`au_boost_basis` keeps their PLS motion only inside
#: the AU's own region (centre, sigma_x, sigma_y in model units) and adds a stronger, local,
#: hand-made displacement that follows FACS's description of the action.
BOOST_REGIONS = {"AU04": ((0.0, 55.0), 60.0, 25.0), "AU07": ((0.0, 35.0), 60.0, 18.0),
                 "AU09": ((0.0, 10.0), 45.0, 45.0), "AU15": ((0.0, -55.0), 50.0, 25.0),
                 "AU20": ((0.0, -50.0), 55.0, 28.0)}


#: AU25 lips part, per AU unit (model units): how far the lower lip moves down and the upper lip
#: up at the midline. The PLS model's own AU25 is replaced: it presses the inner lips 2.1 units
#: together per unit (so AU25 rendered as pressed lips) and shifts the whole face ~1.3 units.
LIPS_PART = (2.5, 1.0)


def _lips_part() -> np.ndarray:
    """(468, 3) AU25 displacement per unit: the lips move apart along the lip line, most at the
    midline and not at all at the corners (a parabola over the mouth's width), the motion fading
    with distance from the inner-lip rows (sigma 10 below, 8 above) so the chin and nose barely
    move. At AU25 = 1/2/3/4 the inner lips are 3.5/7.0/10.5/14.0 units apart (neutral: 0)."""
    b = topology().base
    gap, mid_y = _lip_line(b)
    xs = (b[list(LIP_UPPER_ROW), 0] + b[list(LIP_LOWER_ROW), 0]) / 2
    above = b[:, 1] > mid_y
    beyond = np.maximum(np.abs(b[:, 1] - mid_y) - gap / 2, 0)
    half_width = (xs.max() - xs.min()) / 2
    across = np.clip(1 - ((b[:, 0] - xs.mean()) / half_width) ** 2, 0, 1)
    lower, upper = LIPS_PART
    out = np.zeros_like(b)
    out[:, 1] = np.where(above, upper * np.exp(-beyond ** 2 / (2 * 8.0 ** 2)),
                         -lower * np.exp(-beyond ** 2 / (2 * 10.0 ** 2))) * across
    return out


def _g2(b: np.ndarray, cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    return np.exp(-((b[:, 0] - cx) ** 2 / (2 * sx ** 2) + (b[:, 1] - cy) ** 2 / (2 * sy ** 2)))


@lru_cache(maxsize=1)
def au_boost_basis() -> np.ndarray:
    """(40, 468, 3) extra displacement per unit AU (rows as :func:`au_side_basis`): zero except
    for the AUs in :data:`BOOST_REGIONS`, where it removes the PLS motion outside the region
    and adds (per AU unit, model units; the face is ~175 wide, brow-to-lid ~20):

    * AU04 brow lowerer: brows down ~1.3 (inner ends ~3.1) and inner ends 1.3 towards the
      midline, the glabella bulging forward -- the lowered, knitted brows of anger and sadness;
    * AU07 lid tightener: lower lids up 1.5, upper lids down 0.5 -- narrowed eyes;
    * AU09 nose wrinkler: nose wings up 2.0, upper lip centre up 0.8, inner brows down 1.2,
      infraorbital cheeks up 0.8;
    * AU15 lip corner depressor: corners down 2.2 (the tissue below them 0.8) and out 0.3;
    * AU20 lip stretcher: corners out 1.6 and down 0.5, the lips pulled flat.
    * AU25 lips part: replaced outright by :func:`_lips_part` (lower lip down 2.5, upper lip up
      1.0 at the midline), because the PLS model's AU25 presses the lips together.

    Falloffs are Gaussians wide compared with the displacement (gradients well below 1), so
    the mesh does not fold up to AU intensity ~4 (checked in the tests: no triangle flips).
    """
    b = topology().base
    pls = np.stack([_mesh.au_mesh_model().displacement(a, 1.0) for a in _mesh.AU_NAMES])  # (20, 468, 3)
    out = np.zeros((20, N, 3))
    for au, ((cx, cy), sx, sy) in BOOST_REGIONS.items():
        out[_mesh.AU_INDEX[au]] = -pls[_mesh.AU_INDEX[au]] * (1 - _g2(b, cx, cy, sx, sy))[:, None]
    X = b[:, 0]
    for side in (-1.0, 1.0):  # -1: subject's right (image left)
        inward = -side  # towards the midline along x
        d = out[_mesh.AU_INDEX["AU04"]]
        brow = _g2(b, side * 40, 63, 24, 7)  # falls off before the upper lid (y ~41)
        inner = _g2(b, side * 20, 62, 11, 7)
        d[:, 1] -= 1.3 * brow + 1.8 * inner
        d[:, 0] += inward * 1.3 * inner
        d[:, 2] += 0.8 * _g2(b, side * 10, 56, 8, 8)
        d = out[_mesh.AU_INDEX["AU07"]]
        d[:, 1] += 1.5 * _g2(b, side * 40, 29, 14, 4.5) - 0.5 * _g2(b, side * 42, 42, 14, 4)
        d = out[_mesh.AU_INDEX["AU09"]]
        d[:, 1] += 2.0 * _g2(b, side * 18, -10, 9, 9) + 0.8 * _g2(b, side * 30, 8, 12, 9)
        d[:, 1] -= 1.2 * _g2(b, side * 17, 58, 10, 8)
        d = out[_mesh.AU_INDEX["AU15"]]
        c = _g2(b, side * 33, -47, 9, 8)
        d[:, 1] -= 2.2 * c + 0.8 * _g2(b, side * 30, -62, 10, 9)
        d[:, 0] += side * 0.3 * c
        d = out[_mesh.AU_INDEX["AU20"]]
        c = _g2(b, side * 33, -46, 14, 11)
        d[:, 0] += side * 1.6 * c
        d[:, 1] -= 0.5 * c
    # AU09 also lifts the upper lip's centre (the side loop above adds each half's wings)
    out[_mesh.AU_INDEX["AU09"], :, 1] += 0.8 * _g2(b, 0, -30, 14, 6)
    out[_mesh.AU_INDEX["AU25"]] = -pls[_mesh.AU_INDEX["AU25"]] + _lips_part()
    del X
    w_right = 1 / (1 + np.exp(b[:, 0] / 8.0))
    return np.concatenate([out * w_right[None, :, None], out * (1 - w_right)[None, :, None]]).astype(np.float32)


@lru_cache(maxsize=1)
def _au_basis_flat() -> np.ndarray:
    return (au_side_basis() + au_boost_basis()).reshape(40, -1)


def face_meshes(aus_right: np.ndarray, aus_left: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """Centred (n, 468, 3) meshes from per-side AU intensities (n, 20) and shape params (n, S):
    the PLS model (:func:`au_side_basis`) plus the region-limited boost (:func:`au_boost_basis`)."""
    topo = topology()
    coeff = np.concatenate([aus_right, aus_left], 1).astype(np.float32)
    disp = coeff @ _au_basis_flat() + shape.astype(np.float32) @ identity_basis().reshape(len(SHAPE_PARAMS), -1)
    rest = topo.base.astype(np.float32) + mouth_closure()
    return rest[None] + disp.reshape(-1, N, 3)



def mesh_fold_stats(verts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For face meshes (n, 468, 3) (or one, (468, 3)): the number of face triangles whose normal
    turns against the rest face's, and the shortest and longest edge relative to the rest face."""
    topo = topology()
    t = topo.tris[:topo.n_face_tris]
    rest = topo.base + mouth_closure()

    def normals(v):
        n = np.cross(v[..., t[:, 1], :] - v[..., t[:, 0], :], v[..., t[:, 2], :] - v[..., t[:, 0], :])
        return n / np.linalg.norm(n, axis=-1, keepdims=True).clip(1e-9)

    def edges(v):
        return np.concatenate([np.linalg.norm(v[..., t[:, i], :] - v[..., t[:, (i + 1) % 3], :], axis=-1)
                               for i in range(3)], -1)

    flips = ((normals(verts) * normals(rest)).sum(-1) < 0).sum(-1)
    r = edges(verts) / edges(rest)
    return flips, r.min(-1), r.max(-1)


def fold_stats(aus: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`mesh_fold_stats` of AU vectors (n, 20) applied to both sides of the mean face. The
    neutral face gives (0, 1, 1); a prototype that folds the mesh renders creases and pinches
    (issue 21)."""
    aus = np.atleast_2d(np.asarray(aus, np.float32))
    return mesh_fold_stats(face_meshes(aus, aus, np.zeros((len(aus), len(SHAPE_PARAMS)), np.float32)))

# ---------------------------------------------------------------- pose and projection
#: The head turns about a point this far behind the face's front plane (model units).
PIVOT = np.array([0.0, -20.0, -90.0], np.float32)


def rotation(pose: np.ndarray) -> np.ndarray:
    """(n, 3, 3) rotations from (n, 3) pitch/yaw/roll radians: R = Rz(roll) Ry(yaw) Rx(pitch).

    In the x-right, y-up, z-to-viewer frame: positive pitch tips the nose down, positive yaw
    turns the nose towards image right, positive roll turns the top of the head towards
    image left (counter-clockwise on screen)."""
    p, y, r = (np.asarray(pose, np.float64)[:, i] for i in range(3))
    one, zero = np.ones_like(p), np.zeros_like(p)
    c, s = np.cos, np.sin
    rx = np.stack([one, zero, zero, zero, c(p), -s(p), zero, s(p), c(p)], -1).reshape(-1, 3, 3)
    ry = np.stack([c(y), zero, s(y), zero, one, zero, -s(y), zero, c(y)], -1).reshape(-1, 3, 3)
    rz = np.stack([c(r), -s(r), zero, s(r), c(r), zero, zero, zero, one], -1).reshape(-1, 3, 3)
    return (rz @ ry @ rx).astype(np.float32)


def pose_and_project(verts: np.ndarray, pose: np.ndarray, scale: np.ndarray, center_xy: np.ndarray) -> np.ndarray:
    """Rotate (n, V, 3) model-space vertices and project orthographically to image pixels.

    Returns (n, V, 3): x, y in output-image pixel coordinates (pixel (r, c) has its centre at
    x=c, y=r) and z = depth towards the viewer in pixel units (bigger is nearer).
    """
    R = rotation(pose)
    v = np.einsum("nij,nvj->nvi", R, verts - PIVOT) + PIVOT
    s = np.asarray(scale, np.float32)[:, None]
    x = center_xy[:, None, 0] + s * v[..., 0]
    y = center_xy[:, None, 1] - s * v[..., 1]
    return np.stack([x, y, s * v[..., 2]], -1).astype(np.float32)
