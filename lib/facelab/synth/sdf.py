"""Signed distances, normals and texture colours around a watertight synthetic face.

The face surface is the canonical MediaPipe tessellation (898 triangles, so the eye and mouth
openings are bridged exactly as the canonical triangles do), deformed by identity and
expression (``geometry.face_meshes``), in the model frame (x right, y up, z towards the
viewer; ~175 units across; no head pose).

Closing it (``closed_face``): the open boundary of the tessellation is one loop of 36
vertices around the face oval. Each boundary vertex is **extruded straight backwards**
(along -z) to a flat back plane ``back`` units behind the deepest face vertex; the side
wall between the loop and its copy is two triangles per boundary edge, and the back is
capped by a fan around the copy's centroid. The result is a closed, consistently
outward-oriented, 2-manifold "mask" solid: every edge is shared by exactly two triangles.
Triangle ``part`` is 0 (face), 1 (side wall) or 2 (back cap).

Distances are exact point-triangle distances to candidate triangles: those owning the
nearest of dense surface samples (a k-d tree over samples at most ``spacing`` apart), so a
distance can only be over-estimated when the true nearest triangle owns none of the ``k``
nearest samples, and then by at most the sample spacing. The sign comes from the winding number,
counted along a ray (+1 for each outward-facing triangle it leaves through, -1 for each it
enters through), vectorised over a uniform 2D grid of the triangles' projections; the median
of three slightly different ray directions is used (so a ray grazing an edge or the vertical
wall cannot flip it). Inside is winding >= 1, so where an extreme expression pushes skin
through itself (the PLS model's pressed lips, e.g.) the doubly covered pocket counts as
inside rather than flipping sign as ray parity would. Negative inside.

Texture: face-part points get the atlas UV of ``geometry.topology().uv`` interpolated over
their triangle and the colour of ``texture.compose`` at that UV (bilinear, the renderer's
convention). Side and back points get uv (-1, -1) and a flat colour: the hair colour if the
identity has hair, else the skin colour.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy.spatial import cKDTree

from .. import mesh as _mesh
from . import expressions as E
from . import geometry as G
from . import identity as I
from . import texture as _texture

PART_FACE, PART_SIDE, PART_BACK = 0, 1, 2
_RAY_DIRS = ((0.0131, 0.0213, 1.0), (-0.0247, 0.0089, 1.0), (0.0071, -0.0311, 1.0))


@lru_cache(maxsize=1)
def _face_topology() -> tuple[np.ndarray, np.ndarray]:
    """The oriented canonical triangles (front faces counter-clockwise seen from +z) and the
    boundary loop in the direction it runs in those triangles."""
    tris = _mesh.triangles().copy()
    p = G.topology().base[:, :2]
    a, b, c = p[tris[:, 0]], p[tris[:, 1]], p[tris[:, 2]]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
    if (area < 0).sum() > (area > 0).sum():
        tris = tris[:, [0, 2, 1]]
    directed = {(int(t[i]), int(t[(i + 1) % 3])) for t in tris for i in range(3)}
    bd = {u: v for (u, v) in directed if (v, u) not in directed}
    start = min(bd)
    loop = [start]
    while bd[loop[-1]] != start:
        loop.append(bd[loop[-1]])
    if len(loop) != len(bd):
        raise RuntimeError("the canonical face's boundary is not a single loop")
    return tris, np.array(loop, np.int64)


@dataclass
class ClosedFace:
    """A watertight face solid with its texture. Coordinates are model units."""

    vertices: np.ndarray      # (V, 3) float64
    triangles: np.ndarray     # (F, 3) int64, outward oriented
    part: np.ndarray          # (F,) PART_FACE / PART_SIDE / PART_BACK
    uv: np.ndarray            # (V, 2) atlas UV (face vertices; -1 elsewhere)
    texture: np.ndarray       # (R, R, 3) float32 atlas in [0, 1]
    back_rgb: np.ndarray      # (3,) colour of side/back points
    aus: np.ndarray           # (20,) expression AUs
    identity: dict            # the identity (arrays with first axis 1)
    spacing: float = 2.0
    _cache: dict = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------ geometry tables
    @property
    def corners(self) -> np.ndarray:
        return self.vertices[self.triangles]  # (F, 3, 3)

    @property
    def face_normals(self) -> np.ndarray:
        c = self.corners
        n = np.cross(c[:, 1] - c[:, 0], c[:, 2] - c[:, 0])
        return n / np.linalg.norm(n, axis=1, keepdims=True).clip(1e-12)

    @property
    def areas(self) -> np.ndarray:
        c = self.corners
        return 0.5 * np.linalg.norm(np.cross(c[:, 1] - c[:, 0], c[:, 2] - c[:, 0]), axis=1)

    def edge_counts(self) -> np.ndarray:
        """How many triangles share each undirected edge (all 2 for a watertight mesh)."""
        e = np.sort(self.triangles[:, [[0, 1], [1, 2], [2, 0]]].reshape(-1, 2), 1)
        _, counts = np.unique(e, axis=0, return_counts=True)
        return counts

    def volume(self) -> float:
        c = self.corners
        return float(np.einsum("ij,ij->i", c[:, 0], np.cross(c[:, 1], c[:, 2])).sum() / 6)

    # ------------------------------------------------------------ distance
    def _samples(self):
        if "tree" not in self._cache:
            pts, owner = [], []
            c = self.corners
            edge = np.linalg.norm(c - np.roll(c, 1, 1), axis=2).max(1)
            # the face is sampled 3x finer: its small triangles lie close together (lips, lids)
            step = np.where(self.part == PART_FACE, self.spacing / 3, self.spacing)
            m_all = np.maximum(2, np.ceil(edge / step).astype(int))
            for m in np.unique(m_all):
                idx = np.nonzero(m_all == m)[0]
                i, j = np.meshgrid(np.arange(m + 1), np.arange(m + 1), indexing="ij")
                keep = (i + j) <= m
                w = np.stack([i[keep], j[keep], m - i[keep] - j[keep]], 1) / m  # (S, 3)
                pts.append(np.einsum("sk,tkd->tsd", w, c[idx]).reshape(-1, 3))
                owner.append(np.repeat(idx, len(w)))
            # every triangle also owns its centroid, so small and thin triangles (whose grid
            # points are all shared with neighbours) are found from inside them too
            pts.append(c.mean(1))
            owner.append(np.arange(len(c)))
            self._cache["owner"] = np.concatenate(owner)
            # unbalanced trees with big leaves answer far-away queries (the bounding box
            # samples) several times faster on these planar sample sets
            self._cache["tree"] = cKDTree(np.concatenate(pts), leafsize=48, balanced_tree=False,
                                          compact_nodes=False)
        return self._cache["tree"], self._cache["owner"]

    def closest(self, points: np.ndarray, k: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Nearest surface point of each (P, 3) point: (distance (P,), triangle (P,),
        barycentric (P, 3), closest point (P, 3))."""
        q = np.asarray(points, np.float64).reshape(-1, 3)
        tree, owner = self._samples()
        _, nn = tree.query(q, k=k)
        cand = owner[nn]                                       # (P, k) triangles (with repeats)
        c = self.corners[cand]                                 # (P, k, 3, 3)
        cp, bary = closest_point_on_triangles(np.broadcast_to(q[:, None], cand.shape + (3,)),
                                              c[..., 0, :], c[..., 1, :], c[..., 2, :])
        d2 = ((cp - q[:, None]) ** 2).sum(-1)
        best = d2.argmin(1)
        r = np.arange(len(q))
        return np.sqrt(d2[r, best]), cand[r, best], bary[r, best], cp[r, best]

    # ------------------------------------------------------------ sign
    def _grid(self, ray: int):
        key = ("grid", ray)
        if key not in self._cache:
            dx, dy, dz = _RAY_DIRS[ray]
            c = self.corners
            xy = np.stack([c[..., 0] - dx / dz * c[..., 2], c[..., 1] - dy / dz * c[..., 2]], -1)  # (F, 3, 2)
            lo, hi = xy.reshape(-1, 2).min(0) - 1e-6, xy.reshape(-1, 2).max(0) + 1e-6
            g = 64
            cell = (hi - lo) / g
            c0 = np.floor((xy.min(1) - lo) / cell).astype(int).clip(0, g - 1)
            c1 = np.floor((xy.max(1) - lo) / cell).astype(int).clip(0, g - 1)
            tri_ids, cells = [], []
            for t in range(len(xy)):  # ~1000 triangles: cheap, done once per face
                ii, jj = np.meshgrid(np.arange(c0[t, 0], c1[t, 0] + 1), np.arange(c0[t, 1], c1[t, 1] + 1))
                cells.append((ii * g + jj).ravel())
                tri_ids.append(np.full(ii.size, t))
            cells, tri_ids = np.concatenate(cells), np.concatenate(tri_ids)
            order = np.argsort(cells, kind="stable")
            starts = np.searchsorted(cells[order], np.arange(g * g + 1))
            self._cache[key] = (xy, lo, cell, g, tri_ids[order], starts)
        return self._cache[key]

    def _winding_ray(self, q: np.ndarray, ray: int) -> np.ndarray:
        xy, lo, cell, g, tri_sorted, starts = self._grid(ray)
        dx, dy, dz = _RAY_DIRS[ray]
        px, py = q[:, 0] - dx / dz * q[:, 2], q[:, 1] - dy / dz * q[:, 2]
        ci = np.floor((px - lo[0]) / cell[0]).astype(int)
        cj = np.floor((py - lo[1]) / cell[1]).astype(int)
        ok = (ci >= 0) & (ci < g) & (cj >= 0) & (cj < g)
        cid = np.where(ok, ci * g + cj, 0)
        cnt = np.where(ok, starts[cid + 1] - starts[cid], 0)
        pt = np.repeat(np.arange(len(q)), cnt)
        off = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        tri = tri_sorted[starts[cid][pt] + off]
        a, b, c = xy[tri, 0], xy[tri, 1], xy[tri, 2]
        x, y = px[pt], py[pt]
        det = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
        good = np.abs(det) > 1e-12
        det = np.where(good, det, 1.0)
        w1 = ((x - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (y - a[:, 1])) / det
        w2 = ((b[:, 0] - a[:, 0]) * (y - a[:, 1]) - (x - a[:, 0]) * (b[:, 1] - a[:, 1])) / det
        w0 = 1 - w1 - w2
        # half-open barycentric test: a ray through a shared edge counts for one triangle
        hit = good & (w0 >= 0) & (w1 >= 0) & (w2 > 0)
        z = self.corners[tri, :, 2]
        zint = w0 * z[:, 0] + w1 * z[:, 1] + w2 * z[:, 2]
        hit &= zint > q[pt, 2]
        # the ray leaves through outward triangles facing it (+1) and enters through the
        # others (-1): the signed count is the winding number of the closed surface
        return np.bincount(pt[hit], weights=np.sign(det[hit]), minlength=len(q)).round().astype(np.int64)

    def winding(self, points: np.ndarray) -> np.ndarray:
        """(P,) integer winding numbers of the closed surface (1 inside, 0 outside; 2 where
        the expression folds skin through itself), the median of three ray directions."""
        q = np.asarray(points, np.float64).reshape(-1, 3)
        return np.median(np.stack([self._winding_ray(q, r) for r in range(len(_RAY_DIRS))]), 0).astype(np.int64)

    def inside(self, points: np.ndarray) -> np.ndarray:
        """(P,) bool: winding number >= 1."""
        return self.winding(points) >= 1

    def sdf(self, points: np.ndarray) -> np.ndarray:
        """Signed distance (P,), negative inside, in model units."""
        d, *_ = self.closest(points)
        return np.where(self.inside(points), -d, d)

    # ------------------------------------------------------------ texture
    def uv_rgb(self, tri: np.ndarray, bary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """UV (P, 2) and colour (P, 3) at barycentric points of triangles."""
        uv = (self.uv[self.triangles[tri]] * bary[..., None]).sum(1)
        face = self.part[tri] == PART_FACE
        rgb = np.where(face[:, None], bilinear(self.texture, np.where(face[:, None], uv, 0.0)), self.back_rgb)
        uv = np.where(face[:, None], uv, -1.0)
        return uv.astype(np.float32), rgb.astype(np.float32)

    def lookup(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """UV and colour of the nearest surface point of each point."""
        _, tri, bary, _ = self.closest(points)
        return self.uv_rgb(tri, bary)


def bilinear(tex: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear lookup of an (R, R, C) atlas at uv (P, 2) in [0, 1]^2 (u right, v down), with
    texel (r, c) centred at ((c + 0.5) / R, (r + 0.5) / R) like the renderer's sampler."""
    ht, wt = tex.shape[:2]
    fx = np.clip(uv[:, 0] * wt - 0.5, 0, wt - 1.0001)
    fy = np.clip(uv[:, 1] * ht - 0.5, 0, ht - 1.0001)
    ix, iy = fx.astype(int), fy.astype(int)
    ax, ay = (fx - ix)[:, None], (fy - iy)[:, None]
    top = tex[iy, ix] * (1 - ax) + tex[iy, ix + 1] * ax
    bot = tex[iy + 1, ix] * (1 - ax) + tex[iy + 1, ix + 1] * ax
    return top * (1 - ay) + bot * ay


def closest_point_on_triangles(p, a, b, c):
    """Closest points on triangles (a, b, c) to points p, all (..., 3); returns the points and
    their barycentric weights (..., 3). Vectorised Voronoi-region test (vertex, edge, face)."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    bp = p - b
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    cp = p - c
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    eps = 1e-30
    # face interior
    den = va + vb + vc
    den = np.where(np.abs(den) > eps, den, eps)
    v_f, w_f = vb / den, vc / den
    u_f = 1 - v_f - w_f
    bary = np.stack([u_f, v_f, w_f], -1)

    def setw(mask, u, v, w):
        nonlocal bary
        new = np.stack([np.broadcast_to(u, mask.shape), np.broadcast_to(v, mask.shape),
                        np.broadcast_to(w, mask.shape)], -1)
        bary = np.where(mask[..., None], new, bary)

    def sdiv(x, y):
        return x / np.where(np.abs(y) > eps, y, eps)

    # edges (in reverse precedence: later assignments win)
    t_bc = sdiv(d4 - d3, (d4 - d3) + (d5 - d6))
    setw((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0), 0.0, 1 - t_bc, t_bc)
    t_ac = sdiv(d2, d2 - d6)
    setw((vb <= 0) & (d2 >= 0) & (d6 <= 0), 1 - t_ac, 0.0, t_ac)
    t_ab = sdiv(d1, d1 - d3)
    setw((vc <= 0) & (d1 >= 0) & (d3 <= 0), 1 - t_ab, t_ab, 0.0)
    # vertices
    setw((d6 >= 0) & (d5 <= d6), 0.0, 0.0, 1.0)
    setw((d3 >= 0) & (d4 <= d3), 0.0, 1.0, 0.0)
    setw((d1 <= 0) & (d2 <= 0), 1.0, 0.0, 0.0)
    bary = np.clip(bary, 0, 1)
    pt = bary[..., :1] * a + bary[..., 1:2] * b + bary[..., 2:] * c
    return pt, bary


# ---------------------------------------------------------------- construction
def _resolve_identity(identity, rng: np.random.Generator) -> dict:
    if identity is None:
        return I.sample_identities(1, rng)
    if isinstance(identity, (int, np.integer)) and not isinstance(identity, bool):
        return I.sample_identities(1, np.random.default_rng(int(identity)))
    if isinstance(identity, dict):
        out = {}
        for k, v in identity.items():
            v = np.asarray(v)
            if v.ndim == 0 or (k in ("shape", "skin_rgb", "lip_rgb", "brow_rgb", "hair_rgb", "iris_rgb") and v.ndim == 1):
                v = v[None]
            if len(v) != 1:
                raise ValueError(f"identity[{k!r}] holds {len(v)} identities: pass one (e.g. identity.take(ident, [i]))")
            out[k] = v
        missing = set(I.sample_identities(1, np.random.default_rng(0))) - set(out)
        if missing:
            raise ValueError(f"identity dict lacks {', '.join(sorted(missing))} (see identity.sample_identities)")
        return out
    raise ValueError(f"identity must be None, an int seed or a dict from identity.sample_identities, got {type(identity).__name__}")


def resolve_expression(expression) -> np.ndarray:
    """A name or id from expressions.ALL_EXPRESSIONS, a {"AU12": 2.0, ...} dict or a (20,) AU vector."""
    if isinstance(expression, dict):
        return _mesh.aus_from_dict(expression)
    if isinstance(expression, (str, int, np.integer)):
        return E.PROTOTYPES[E.resolve(expression)[0]].copy()
    arr = np.asarray(expression, np.float32)
    if arr.shape != (20,):
        raise ValueError(f"expression must be a name, id, AU dict or a (20,) AU vector; got shape {arr.shape}")
    return _mesh.check_aus(arr, where="expression")


def closed_face(identity=None, expression="neutral", seed: int = 0, *, back: float = 25.0,
                tex_res: int = 256, spacing: float = 2.0) -> ClosedFace:
    """The watertight face solid of ``identity`` (None: random from ``seed``; an int seed; or
    a one-identity dict) showing ``expression``; see the module docstring for the closure."""
    rng = np.random.default_rng(seed)
    ident = _resolve_identity(identity, rng)
    aus = resolve_expression(expression)
    verts = G.face_meshes(aus[None], aus[None], ident["shape"])[0].astype(np.float64)
    tris, loop = _face_topology()
    nb = len(loop)
    z_back = verts[:, 2].min() - back
    copy = verts[loop].copy()
    copy[:, 2] = z_back
    centre = np.array([copy[:, 0].mean(), copy[:, 1].mean(), z_back])
    V = np.concatenate([verts, copy, centre[None]])
    cidx = np.arange(nb) + len(verts)
    ci = len(V) - 1
    a, b = loop, np.roll(loop, -1)              # boundary edges a -> b as the face triangles run them
    ca, cb = cidx, np.roll(cidx, -1)
    side = np.concatenate([np.stack([b, a, ca], 1), np.stack([b, ca, cb], 1)])
    back_t = np.stack([np.full(nb, ci), cb, ca], 1)
    T = np.concatenate([tris, side, back_t]).astype(np.int64)
    part = np.concatenate([np.zeros(len(tris)), np.ones(len(side)), np.full(nb, 2)]).astype(np.int64)
    uv = np.full((len(V), 2), -1.0)
    uv[:G.N] = G.topology().uv[:G.N]
    import torch
    with torch.inference_mode():
        tex = _texture.compose(ident, tex_res)[0].numpy()
    back_rgb = ident["hair_rgb"][0] if ident["has_hair"][0] > 0.5 else ident["skin_rgb"][0]
    cf = ClosedFace(vertices=V, triangles=T, part=part, uv=uv, texture=tex, back_rgb=np.asarray(back_rgb, np.float32),
                    aus=aus, identity=ident, spacing=spacing)
    # the back fan must wind one way (the loop is star-shaped about its centroid)
    cc = V[back_t]
    z = (cc[:, 1, 0] - cc[:, 0, 0]) * (cc[:, 2, 1] - cc[:, 0, 1]) - (cc[:, 2, 0] - cc[:, 0, 0]) * (cc[:, 1, 1] - cc[:, 0, 1])
    if not ((z < 0).all() or (z > 0).all()):
        raise RuntimeError("the face boundary is not star-shaped about its centroid; cannot cap the back with a fan")
    if cf.volume() < 0:  # the face triangles faced away: flip everything
        cf.triangles = cf.triangles[:, [0, 2, 1]]
    return cf


# ---------------------------------------------------------------- samples
@dataclass
class SDFSamples:
    """Points around one face. With ``normalize`` the coordinates are ``(model - center) *
    scale`` (the solid fits in [-0.9, 0.9]^3) and ``sdf`` is in the same units."""

    points: np.ndarray     # (n, 3) float32
    sdf: np.ndarray        # (n,) float32, negative inside, 0 on the surface
    normals: np.ndarray    # (n, 3) unit gradient of the sdf (surface points: the triangle normal)
    kind: np.ndarray       # (n,) 0 surface, 1 near (Gaussian offset), 2 box
    part: np.ndarray       # (n,) part of the nearest surface point (0 face, 1 side, 2 back)
    uv: np.ndarray         # (n, 2) atlas UV of the nearest surface point (-1 off the face part)
    rgb: np.ndarray        # (n, 3) colour of the nearest surface point
    center: np.ndarray     # (3,) model-space centre
    scale: float           # normalised units per model unit
    aus: np.ndarray        # (20,)
    identity: dict
    face: ClosedFace = field(repr=False, default=None)

    def __len__(self) -> int:
        return len(self.points)


def sdf_samples(identity=None, expression="neutral", n: int = 16384, seed: int = 0, *,
                fractions=(0.4, 0.4, 0.2), near_sigma=(0.01, 0.04), face_weight: float = 0.8,
                normalize: bool = True, back: float = 25.0, box: float = 1.0, tex_res: int = 256,
                face: ClosedFace | None = None) -> SDFSamples:
    """``n`` points near one closed face: ``fractions`` (surface, near, box) of them on the
    surface (sdf 0; ``face_weight`` of those on the face part, the rest on sides and back,
    area-weighted), near it (a surface point plus an isotropic Gaussian offset, half with each
    of the two ``near_sigma`` scales, in normalised units), and uniform in the box
    [-``box``, ``box``]^3 (normalised units). See :func:`closed_face` for the other arguments.
    Deterministic for ``seed``."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n <= 0:
        raise ValueError(f"n must be a positive int (number of points), got {n!r}")
    fr = np.asarray(fractions, np.float64)
    if fr.shape != (3,) or (fr < 0).any() or fr.sum() <= 0:
        raise ValueError(f"fractions must be three non-negative numbers (surface, near, box), got {fractions!r}")
    if not 0 <= face_weight <= 1:
        raise ValueError(f"face_weight must be in [0, 1], got {face_weight!r}")
    rng = np.random.default_rng(seed)
    cf = face if face is not None else closed_face(identity, expression, seed, back=back, tex_res=tex_res)
    lo, hi = cf.vertices.min(0), cf.vertices.max(0)
    center = (lo + hi) / 2
    scale = 0.9 / ((hi - lo).max() / 2) if normalize else 1.0
    counts = np.floor(fr / fr.sum() * n).astype(int)
    counts[0] += n - counts.sum()
    n_s, n_near, n_box = counts

    # surface samples (also the seeds of the near samples)
    m = n_s + n_near
    areas = cf.areas
    on_face = cf.part == PART_FACE
    w = np.where(on_face, face_weight * areas / areas[on_face].sum(),
                 (1 - face_weight) * areas / max(areas[~on_face].sum(), 1e-12))
    tri = rng.choice(len(areas), size=m, p=w / w.sum())
    r1, r2 = rng.random(m), rng.random(m)
    s1 = np.sqrt(r1)
    bary = np.stack([1 - s1, s1 * (1 - r2), s1 * r2], 1)
    c = cf.corners[tri]
    surf = (bary[:, :, None] * c).sum(1)
    sigma = np.where(np.arange(n_near) % 2 == 0, near_sigma[0], near_sigma[1]) / scale
    near = surf[n_s:] + rng.standard_normal((n_near, 3)) * sigma[:, None]
    boxp = center + rng.uniform(-box, box, (n_box, 3)) / scale
    off = np.concatenate([near, boxp])
    # exact values for the off-surface points
    d, tri_o, bary_o, cp = cf.closest(off)
    ins = cf.inside(off)
    sd = np.where(ins, -d, d)
    fn = cf.face_normals
    grad = (off - cp) / np.maximum(d, 1e-12)[:, None] * np.where(ins, -1.0, 1.0)[:, None]
    grad = np.where((d > 1e-6)[:, None], grad, fn[tri_o])
    pts = np.concatenate([surf[:n_s], off])
    sdf = np.concatenate([np.zeros(n_s), sd])
    normals = np.concatenate([fn[tri[:n_s]], grad])
    all_tri = np.concatenate([tri[:n_s], tri_o])
    all_bary = np.concatenate([bary[:n_s], bary_o])
    uv, rgb = cf.uv_rgb(all_tri, all_bary)
    kind = np.repeat([0, 1, 2], counts)
    return SDFSamples(points=((pts - center) * scale).astype(np.float32), sdf=(sdf * scale).astype(np.float32),
                      normals=normals.astype(np.float32), kind=kind, part=cf.part[all_tri], uv=uv, rgb=rgb,
                      center=center.astype(np.float32), scale=float(scale), aus=cf.aus, identity=cf.identity,
                      face=cf)
