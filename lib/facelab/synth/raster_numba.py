"""The renderer's per-face work as one compiled CPU kernel (numba): shading, texture, z-buffer,
fragment stage and the box filter, each face rendered start to finish by one thread.

:func:`render_faces` is a ``prange`` over the faces of a batch; face ``i`` only reads shared,
read-only tables and writes its own slices of the outputs, so the result does not depend on
the number of threads or on scheduling (no races, bit-identical for a seed). Per face:

1. Vertex normals (area weighted, in the x-right/y-up/z-to-viewer frame), Lambert shade
   ``ambient + (1 - ambient) max(0, n.l)`` and a gloss-weighted Blinn sheen ``max(0, n.h)^24``
   per vertex (Gouraud), exactly as :func:`facelab.synth.render.render` does with torch.
2. The texture atlas, composed from the shared linear basis (``texture._linear_basis``) and
   the face's colour coefficients into a thread-local planar (3, R, R) buffer: a few
   vectorised multiply-adds over the atlas per non-zero coefficient row (hairline rows that a
   face does not use are skipped). A caller's own textures are used instead when given.
3. Visibility buffer at ``s`` x the output size: every front-facing triangle's bounding box
   is scanned with affine edge functions; a sample (pixel centre) inside the triangle (edges
   inclusive) whose interpolated depth is nearer than the z-buffer's (ties: the higher
   triangle index, as in :mod:`facelab.synth.raster`) stores depth and triangle index.
4. Fragment stage per output pixel: each of its s x s samples is either background or is
   shaded once (deferred: overdraw costs only the depth test) - barycentrics recomputed from
   the triangle, UV / shade / sheen interpolated, bilinear texture lookup, ``clamp(tex *
   shade + sheen)`` - and the samples are averaged straight into the uint8 output pixel and
   its coverage (2x2 supersampling by default: antialiased edges as in the torch path).

Geometry is evaluated in float64 (edge functions on 448 px grids stay exact to far below a
pixel), colours in float32. Importing this module imports numba; :mod:`facelab.synth.render`
does it lazily, after pointing ``NUMBA_CACHE_DIR`` at facelab's cache directory.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = ["render_faces"]

_EPS = 1e-7  # barycentric slack: samples on an edge belong to both triangles (no cracks)


@njit(cache=True, inline="always")
def _clamp01(x):
    return min(max(x, np.float32(0.0)), np.float32(1.0))


@njit(cache=True)
def _vertex_terms(v, tris, gloss, light, shade, spec, nz):
    """Per-vertex Lambert shade, gloss * sheen and normal z of one face (v: (V, 3) image
    coordinates, y down)."""
    nv = v.shape[0]
    nrm = np.zeros((nv, 3))
    for f in range(tris.shape[0]):
        a, b, c = tris[f, 0], tris[f, 1], tris[f, 2]
        # y-up frame: flip image y
        e1x = v[b, 0] - v[a, 0]
        e1y = -(v[b, 1] - v[a, 1])
        e1z = v[b, 2] - v[a, 2]
        e2x = v[c, 0] - v[a, 0]
        e2y = -(v[c, 1] - v[a, 1])
        e2z = v[c, 2] - v[a, 2]
        cx = e1y * e2z - e1z * e2y
        cy = e1z * e2x - e1x * e2z
        cz = e1x * e2y - e1y * e2x
        for k in (a, b, c):
            nrm[k, 0] += cx
            nrm[k, 1] += cy
            nrm[k, 2] += cz
    lx, ly, lz = float(light[0]), float(light[1]), float(light[2])
    ln = math.sqrt(lx * lx + ly * ly + lz * lz)
    lx, ly, lz = lx / ln, ly / ln, lz / ln
    hx, hy, hz = lx, ly, lz + 1.0
    hn = math.sqrt(hx * hx + hy * hy + hz * hz)
    hx, hy, hz = hx / hn, hy / hn, hz / hn
    amb = float(light[3])
    for k in range(nv):
        nn = max(math.sqrt(nrm[k, 0] ** 2 + nrm[k, 1] ** 2 + nrm[k, 2] ** 2), 1e-9)
        x, y, z = nrm[k, 0] / nn, nrm[k, 1] / nn, nrm[k, 2] / nn
        lam = max(x * lx + y * ly + z * lz, 0.0)
        shade[k] = amb + (1.0 - amb) * lam
        spec[k] = gloss[k] * max(x * hx + y * hy + z * hz, 0.0) ** 24
        nz[k] = z


@njit(cache=True)
def _compose_texture(basis, const, coef, out):
    """out (3, R*R) = clamp(const.T + coef.T @ basis): the atlas of one face, planar.

    Blocked over texels so that a block of the three planes stays in L1 while every
    non-zero coefficient row is added (rows a face does not use cost nothing)."""
    npx = basis.shape[1]
    nk = basis.shape[0]
    active = np.empty(nk, np.int64)
    na = 0
    for k in range(nk):
        if coef[k, 0] != 0.0 or coef[k, 1] != 0.0 or coef[k, 2] != 0.0:
            active[na] = k
            na += 1
    blk = 512
    o0, o1, o2 = out[0], out[1], out[2]
    for p0 in range(0, npx, blk):
        p1 = min(p0 + blk, npx)
        for p in range(p0, p1):
            o0[p] = const[0, p]
            o1[p] = const[1, p]
            o2[p] = const[2, p]
        for j in range(na):
            k = active[j]
            w0, w1, w2 = coef[k, 0], coef[k, 1], coef[k, 2]
            row = basis[k]
            for p in range(p0, p1):
                r = row[p]
                o0[p] += w0 * r
                o1[p] += w1 * r
                o2[p] += w2 * r
        for p in range(p0, p1):
            o0[p] = min(max(o0[p], np.float32(0.0)), np.float32(1.0))
            o1[p] = min(max(o1[p], np.float32(0.0)), np.float32(1.0))
            o2[p] = min(max(o2[p], np.float32(0.0)), np.float32(1.0))


@njit(cache=True)
def _rasterize(v, tris, zbuf, tbuf, coef, hs, ws):
    """Visibility buffer of one face: nearest depth and triangle index per sample. Also stores
    each drawn triangle's barycentric plane equations in ``coef`` (F, 6): b0 = c[0] x + c[1] y
    + c[2], b1 = c[3] x + c[4] y + c[5]."""
    for f in range(tris.shape[0]):
        a, b, c = tris[f, 0], tris[f, 1], tris[f, 2]
        x0, y0, z0 = float(v[a, 0]), float(v[a, 1]), float(v[a, 2])
        x1, y1, z1 = float(v[b, 0]), float(v[b, 1]), float(v[b, 2])
        x2, y2, z2 = float(v[c, 0]), float(v[c, 1]), float(v[c, 2])
        area = -((x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0))
        if not area > 1e-9:  # back-facing, degenerate (or nan)
            continue
        ylo = max(0, int(math.ceil(min(y0, y1, y2))))
        yhi = min(hs - 1, int(math.floor(max(y0, y1, y2))))
        xlo = max(0, int(math.ceil(min(x0, x1, x2) - 1e-6)))
        xhi = min(ws - 1, int(math.floor(max(x0, x1, x2) + 1e-6)))
        if ylo > yhi or xlo > xhi:
            continue
        inv = 1.0 / area
        # b0 = a0 x + c0 y + d0 (affine in the sample position), likewise b1
        a0 = (y2 - y1) * inv
        c0 = -(x2 - x1) * inv
        d0 = ((x2 - x1) * y1 - (y2 - y1) * x1) * inv
        a1 = (y0 - y2) * inv
        c1 = -(x0 - x2) * inv
        d1 = ((x0 - x2) * y2 - (y0 - y2) * x2) * inv
        coef[f, 0], coef[f, 1], coef[f, 2] = a0, c0, d0
        coef[f, 3], coef[f, 4], coef[f, 5] = a1, c1, d1
        # depth is affine too: z = b0 z0 + b1 z1 + (1 - b0 - b1) z2 (inside, where no clamping bites)
        for py in range(ylo, yhi + 1):
            r0 = c0 * py + d0
            r1 = c1 * py + d1
            row = py * ws
            for px in range(xlo, xhi + 1):
                b0 = a0 * px + r0
                b1 = a1 * px + r1
                b2 = 1.0 - b0 - b1
                if b0 < -_EPS or b1 < -_EPS or b2 < -_EPS:
                    continue
                b0 = min(max(b0, 0.0), 1.0)
                b1 = min(max(b1, 0.0), 1.0)
                b2 = min(max(b2, 0.0), 1.0)
                z = np.float32(b0 * z0 + b1 * z1 + b2 * z2)
                idx = row + px
                zo = zbuf[idx]
                if z > zo or (z == zo and f > tbuf[idx]):
                    zbuf[idx] = z
                    tbuf[idx] = f


@njit(cache=True)
def _render_one(v, tris, uv, gloss, light, basis, const, coef, tex_in, bg, s, image, cover, zbuf, nz, ss_out,
                keep_ss):
    nv = v.shape[0]
    h, w = image.shape[0], image.shape[1]
    hs, ws = h * s, w * s
    shade = np.empty(nv)
    spec = np.empty(nv)
    _vertex_terms(v, tris, gloss, light, shade, spec, nz)
    # what a fragment interpolates, packed per vertex: u, v, shade, sheen
    attr = np.empty((nv, 4), np.float32)
    for k in range(nv):
        attr[k, 0] = uv[k, 0]
        attr[k, 1] = uv[k, 1]
        attr[k, 2] = shade[k]
        attr[k, 3] = spec[k]
    if tex_in.shape[0] > 0:
        tex = tex_in
    else:
        tex = np.empty((3, const.shape[1]), np.float32)
        _compose_texture(basis, const, coef, tex)
    res = int(math.sqrt(tex.shape[1]) + 0.5)
    tbuf = np.full(hs * ws, -1, np.int32)
    for k in range(hs * ws):
        zbuf[k] = -np.inf
    plane = np.empty((tris.shape[0], 6))
    _rasterize(v, tris, zbuf, tbuf, plane, hs, ws)
    inv_n = np.float32(1.0 / (s * s))
    fres = np.float32(res)
    fmax = np.float32(res - 1.0001)
    t0 = tex[0]
    t1 = tex[1]
    t2 = tex[2]
    zero = np.float32(0.0)
    one = np.float32(1.0)
    for r in range(h):
        for c in range(w):
            acc0 = zero
            acc1 = zero
            acc2 = zero
            cov = 0
            for sy in range(s):
                py = r * s + sy
                for sx in range(s):
                    px = c * s + sx
                    t = tbuf[py * ws + px]
                    if t < 0:
                        col0 = bg[py, px, 0]
                        col1 = bg[py, px, 1]
                        col2 = bg[py, px, 2]
                    else:
                        cov += 1
                        ia, ib, ic = tris[t, 0], tris[t, 1], tris[t, 2]
                        b0 = plane[t, 0] * px + plane[t, 1] * py + plane[t, 2]
                        b1 = plane[t, 3] * px + plane[t, 4] * py + plane[t, 5]
                        b2 = np.float32(min(max(1.0 - b0 - b1, 0.0), 1.0))
                        b0 = np.float32(min(max(b0, 0.0), 1.0))
                        b1 = np.float32(min(max(b1, 0.0), 1.0))
                        u = b0 * attr[ia, 0] + b1 * attr[ib, 0] + b2 * attr[ic, 0]
                        vv = b0 * attr[ia, 1] + b1 * attr[ib, 1] + b2 * attr[ic, 1]
                        sh = b0 * attr[ia, 2] + b1 * attr[ib, 2] + b2 * attr[ic, 2]
                        sp = b0 * attr[ia, 3] + b1 * attr[ib, 3] + b2 * attr[ic, 3]
                        # bilinear lookup, texel centres at (k + 0.5) / res, clamped at the border
                        fx = min(max(u * fres - np.float32(0.5), zero), fmax)
                        fy = min(max(vv * fres - np.float32(0.5), zero), fmax)
                        ix = int(fx)
                        iy = int(fy)
                        ax = fx - np.float32(ix)
                        ay = fy - np.float32(iy)
                        p00 = iy * res + ix
                        p01 = p00 + 1
                        p10 = p00 + res
                        p11 = p01 + res
                        top = t0[p00] + (t0[p01] - t0[p00]) * ax
                        bot = t0[p10] + (t0[p11] - t0[p10]) * ax
                        col0 = min(max((top + (bot - top) * ay) * sh + sp, zero), one)
                        top = t1[p00] + (t1[p01] - t1[p00]) * ax
                        bot = t1[p10] + (t1[p11] - t1[p10]) * ax
                        col1 = min(max((top + (bot - top) * ay) * sh + sp, zero), one)
                        top = t2[p00] + (t2[p01] - t2[p00]) * ax
                        bot = t2[p10] + (t2[p11] - t2[p10]) * ax
                        col2 = min(max((top + (bot - top) * ay) * sh + sp, zero), one)
                    if keep_ss:
                        ss_out[py, px, 0] = col0
                        ss_out[py, px, 1] = col1
                        ss_out[py, px, 2] = col2
                    acc0 += col0
                    acc1 += col1
                    acc2 += col2
            image[r, c, 0] = np.uint8(min(max(acc0 * inv_n * np.float32(255.0) + np.float32(0.5), zero),
                                          np.float32(255.0)))
            image[r, c, 1] = np.uint8(min(max(acc1 * inv_n * np.float32(255.0) + np.float32(0.5), zero),
                                          np.float32(255.0)))
            image[r, c, 2] = np.uint8(min(max(acc2 * inv_n * np.float32(255.0) + np.float32(0.5), zero),
                                          np.float32(255.0)))
            cover[r, c] = cov * inv_n


@njit(parallel=True, cache=True)
def _render_batch(verts, tris, uv, gloss, light, basis, const, coefs, tex_in, bg, s, images, cover, depth, nz,
                  ss_out, keep_ss):
    n = verts.shape[0]
    for i in prange(n):
        tex = tex_in[i] if tex_in.shape[0] > 0 else tex_in[0:0].reshape((0, tex_in.shape[2]))
        _render_one(verts[i], tris, uv, gloss, light[i], basis, const, coefs[i], tex, bg[i], s, images[i],
                    cover[i], depth[i], nz[i], ss_out[i] if keep_ss else ss_out[0], keep_ss)


def render_faces(verts: np.ndarray, tris: np.ndarray, uv: np.ndarray, gloss: np.ndarray, light: np.ndarray,
                 background: np.ndarray, size: tuple[int, int], supersample: int, *,
                 basis: np.ndarray | None = None, const: np.ndarray | None = None, coefs: np.ndarray | None = None,
                 textures: np.ndarray | None = None, keep_supersampled: bool = False) -> dict:
    """Render n faces from supersampled screen-space vertices.

    verts (n, V, 3) float32: x, y in supersample pixels (sample (r, c) centred at x=c, y=r),
    z towards the viewer; tris (F, 3); uv (V, 2) atlas coordinates; gloss (V,); light (n, 4);
    background (n, H*s, W*s, 3) float32. The atlas is either ``textures`` (n, R, R, 3) or
    ``clamp(const + coefs^T basis)`` with basis (K, R*R), const (R*R, 3), coefs (n, K, 3).

    Returns images (n, H, W, 3) uint8, coverage (n, H, W) float32, depth (n, H*s, W*s) float32
    (-inf where empty), normal_z (n, V) float32 and, when asked, supersampled (n, H*s, W*s, 3).
    """
    H, W = size
    s = int(supersample)
    n = verts.shape[0]
    verts = np.ascontiguousarray(verts, np.float32)
    tris = np.ascontiguousarray(tris, np.int32)
    uv = np.ascontiguousarray(uv, np.float32)
    gloss = np.ascontiguousarray(gloss, np.float32)
    light = np.ascontiguousarray(light, np.float32)
    bg = np.ascontiguousarray(background, np.float32)
    if bg.shape != (n, H * s, W * s, 3):
        raise ValueError(f"background must be (n, H*s, W*s, 3) = {(n, H * s, W * s, 3)}, got {bg.shape}")
    if textures is not None:
        t = np.asarray(textures, np.float32)
        tex_in = np.ascontiguousarray(t.transpose(0, 3, 1, 2).reshape(n, 3, -1))
        basis = np.zeros((0, tex_in.shape[2]), np.float32)
        const = np.zeros((3, tex_in.shape[2]), np.float32)
        coefs = np.zeros((n, 0, 3), np.float32)
    else:
        basis = np.ascontiguousarray(basis, np.float32)
        const = np.ascontiguousarray(np.asarray(const, np.float32).T)  # planar (3, R*R)
        coefs = np.ascontiguousarray(coefs, np.float32)
        tex_in = np.zeros((0, 3, basis.shape[1]), np.float32)
    images = np.empty((n, H, W, 3), np.uint8)
    cover = np.empty((n, H, W), np.float32)
    depth = np.empty((n, H * s * W * s), np.float32)
    nz = np.empty((n, verts.shape[1]), np.float32)
    ss_out = np.empty((n, H * s, W * s, 3) if keep_supersampled else (1, 1, 1, 3), np.float32)
    _render_batch(verts, tris, uv, gloss, light, basis, const, coefs, tex_in, bg, s, images, cover, depth, nz,
                  ss_out, keep_supersampled)
    return {"images": images, "coverage": cover, "depth": depth.reshape(n, H * s, W * s), "normal_z": nz,
            "supersampled": ss_out if keep_supersampled else None}


# ---------------------------------------------------------------- backgrounds
# The same pictures as facelab.synth.backgrounds (gradient backdrop, multi-scale colour noise,
# clutter shapes, drawn at half size and bilinearly upsampled), evaluated per pixel for one
# face per thread from random numbers the caller drew in the torch path's order.

@njit(cache=True, inline="always")
def _src_index(dst, scale, n_in):
    """torch's bilinear (align_corners=False) source position: (i0, i1, weight of i1)."""
    x = max((dst + 0.5) * scale - 0.5, 0.0)
    i0 = min(int(x), n_in - 1)
    i1 = min(i0 + 1, n_in - 1)
    return i0, i1, x - i0


@njit(cache=True)
def _src_table(n_out, n_in):
    i0 = np.empty(n_out, np.int64)
    i1 = np.empty(n_out, np.int64)
    wt = np.empty(n_out, np.float32)
    for k in range(n_out):
        a, b, t = _src_index(k, n_in / n_out, n_in)
        i0[k], i1[k], wt[k] = a, b, t
    return i0, i1, wt


@njit(cache=True)
def _background_one(kind, c0, c1, ang, grids, cells, amps, shapes, shape_col, out, h, w):
    hh, ww = out.shape[0], out.shape[1]
    small = np.empty((h, w, 3), np.float32)
    ca, sa = math.cos(ang), math.sin(ang)
    # linear gradient normalised to [0, 1] over the grid: its extremes are at the corners
    tmin = min(0.0, ca) + min(0.0, sa)
    tmax = max(0.0, ca) + max(0.0, sa)
    den = tmax - tmin + 1e-6
    for y in range(h):
        fy = y / (h - 1) if h > 1 else 0.0
        for x in range(w):
            fx = x / (w - 1) if w > 1 else 0.0
            t = np.float32((ca * fx + sa * fy - tmin) / den)
            for ch in range(3):
                small[y, x, ch] = c0[ch] * (np.float32(1.0) - t) + c1[ch] * t
    if kind == 1:
        for k in range(cells.shape[0]):
            m = cells[k]
            amp = np.float32(amps[k])
            xi0, xi1, xw = _src_table(w, m)
            for y in range(h):
                y0, y1, ly = _src_index(y, m / h, m)
                ly = np.float32(ly)
                for ch in range(3):
                    g0 = grids[k, ch, y0]
                    g1 = grids[k, ch, y1]
                    for x in range(w):
                        a0, a1, lx = xi0[x], xi1[x], xw[x]
                        top = g0[a0] + (g0[a1] - g0[a0]) * lx
                        bot = g1[a0] + (g1[a1] - g1[a0]) * lx
                        small[y, x, ch] += amp * (top + (bot - top) * ly)
        for y in range(h):
            for x in range(w):
                for ch in range(3):
                    small[y, x, ch] = min(max(small[y, x, ch], np.float32(0.0)), np.float32(1.0))
    elif kind == 2:
        # shapes in order, later ones over earlier ones: (cx, cy, rx, ry, kind) in [0,1] units
        for j in range(shapes.shape[0]):
            cx, cy, rx, ry, sk = shapes[j, 0], shapes[j, 1], shapes[j, 2], shapes[j, 3], int(shapes[j, 4])
            ex = rx if sk != 2 else 0.12 * rx
            ey = ry if sk != 2 else 3.0 * ry
            ylo = max(0, int(math.floor((cy - ey) * (h - 1))))
            yhi = min(h - 1, int(math.ceil((cy + ey) * (h - 1))))
            xlo = max(0, int(math.floor((cx - ex) * (w - 1))))
            xhi = min(w - 1, int(math.ceil((cx + ex) * (w - 1))))
            for y in range(ylo, yhi + 1):
                dy = (y / (h - 1) - cy) / ry
                for x in range(xlo, xhi + 1):
                    dx = (x / (w - 1) - cx) / rx
                    if sk == 0:
                        hit = dx * dx + dy * dy < 1.0
                    elif sk == 1:
                        hit = abs(dx) < 1.0 and abs(dy) < 1.0
                    else:
                        hit = abs(dx) < 0.12 and abs(dy) < 3.0
                    if hit:
                        for ch in range(3):
                            small[y, x, ch] = shape_col[j, ch]
    xi0, xi1, xw = _src_table(ww, w)
    for y in range(hh):
        y0, y1, ly = _src_index(y, h / hh, h)
        ly = np.float32(ly)
        r0 = small[y0]
        r1 = small[y1]
        o = out[y]
        for x in range(ww):
            a0, a1, lx = xi0[x], xi1[x], xw[x]
            for ch in range(3):
                top = r0[a0, ch] + (r0[a1, ch] - r0[a0, ch]) * lx
                bot = r1[a0, ch] + (r1[a1, ch] - r1[a0, ch]) * lx
                o[x, ch] = top + (bot - top) * ly


@njit(parallel=True, cache=True)
def _background_batch(kinds, c0, c1, ang, noise_of, grids, cells, amps, clutter_of, shapes, shape_col, out, h, w):
    for i in prange(kinds.shape[0]):
        k = kinds[i]
        gi = max(noise_of[i], 0)
        ci = max(clutter_of[i], 0)
        _background_one(k, c0[i], c1[i], ang[i], grids[gi], cells, amps, shapes[ci], shape_col[ci], out[i], h, w)


def backgrounds(kinds: np.ndarray, c0: np.ndarray, c1: np.ndarray, ang: np.ndarray, noise_grids: list,
                amps: tuple, shapes: np.ndarray, shape_col: np.ndarray, small_hw: tuple[int, int],
                out_hw: tuple[int, int]) -> np.ndarray:
    """(n, H, W, 3) float32 backgrounds from pre-drawn parameters (see
    :func:`facelab.synth.backgrounds.backgrounds`): ``noise_grids`` one (n_noisy, 3, m, m) array
    per scale (already mixed to mostly-brightness), ``shapes`` (n_clutter, S, 5) = cx, cy, rx,
    ry, kind and ``shape_col`` (n_clutter, S, 3)."""
    kinds = np.ascontiguousarray(kinds, np.int64)
    n = len(kinds)
    h, w = small_hw
    noise_of = np.cumsum(kinds == 1) - 1
    clutter_of = np.cumsum(kinds == 2) - 1
    mc = max([g.shape[-1] for g in noise_grids] + [1])
    nn = max(int((kinds == 1).sum()), 1)
    grids = np.zeros((nn, max(len(noise_grids), 1), 3, mc, mc), np.float32)
    for k, g in enumerate(noise_grids):
        grids[:len(g), k, :, :g.shape[-1], :g.shape[-1]] = g
    cells = np.array([g.shape[-1] for g in noise_grids], np.int64)
    if len(shapes) == 0:
        shapes = np.zeros((1, 1, 5), np.float64)
        shape_col = np.zeros((1, 1, 3), np.float32)
    out = np.empty((n, out_hw[0], out_hw[1], 3), np.float32)
    _background_batch(kinds, np.ascontiguousarray(c0, np.float32), np.ascontiguousarray(c1, np.float32),
                      np.ascontiguousarray(ang, np.float64), noise_of, grids, cells,
                      np.asarray(amps, np.float64), clutter_of, np.ascontiguousarray(shapes, np.float64),
                      np.ascontiguousarray(shape_col, np.float32), out, h, w)
    return out
