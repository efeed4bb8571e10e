"""Face textures painted in UV space: shared feature masks (computed once per resolution)
and per-identity colours composited over them in a batch.

The atlas is square: atlas rows [0, 0.8) hold the face's frontal-projection UVs (so a mask
drawn around a vertex's UV lands on that vertex), the bottom strip holds the two eyeballs
(left squares) and the mouth interior (right half): see ``geometry.topology``.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from matplotlib.path import Path as _MplPath
from scipy.ndimage import gaussian_filter

from . import geometry as G

#: Names of the shared mask layers, in compositing order.
LAYERS = ("socket", "blush", "lips", "brows", "lashline", "nostrils", "sclera", "iris", "pupil",
          "teeth", "cavity", "tongue", "detail", "wrinkles")


def _atlas_uv(face_uv: np.ndarray) -> np.ndarray:
    return np.stack([face_uv[..., 0], face_uv[..., 1] * G.ATLAS_FACE_FRACTION], -1)


def _poly_mask(uv: np.ndarray, res: int) -> np.ndarray:
    c = (np.arange(res) + 0.5) / res
    uu, vv = np.meshgrid(c, c)
    inside = _MplPath(uv).contains_points(np.stack([uu.ravel(), vv.ravel()], -1))
    return inside.reshape(res, res).astype(np.float32)


def _polyline_dist(uv: np.ndarray, res: int, closed: bool = True) -> np.ndarray:
    """Distance (in atlas units) from every texel centre to a polyline."""
    c = (np.arange(res) + 0.5) / res
    uu, vv = np.meshgrid(c, c)
    p = np.stack([uu, vv], -1)[..., None, :]  # (res, res, 1, 2)
    a = uv
    b = np.roll(uv, -1, 0) if closed else uv[1:]
    a = a if closed else uv[:-1]
    ab = b - a
    t = np.clip(((p - a) * ab).sum(-1) / (ab * ab).sum(-1).clip(1e-12), 0, 1)
    d = np.linalg.norm(p - (a + t[..., None] * ab), axis=-1)
    return d.min(-1)


@lru_cache(maxsize=4)
def layer_masks(res: int) -> torch.Tensor:
    """(len(LAYERS), res, res) float masks in [0, 1] in atlas space."""
    topo = G.topology()
    fuv = _atlas_uv(topo.face_uv)
    sm = res / 256.0  # blur radii are given for a 256 texel atlas
    m = {}
    c = (np.arange(res) + 0.5) / res
    uu, vv = np.meshgrid(c, c)

    def gauss(center, su, sv):
        return np.exp(-((uu - center[0]) ** 2 / (2 * su ** 2) + (vv - center[1]) ** 2 / (2 * sv ** 2)))

    eye_r, eye_l = fuv[list(G.EYE_R)].mean(0), fuv[list(G.EYE_L)].mean(0)
    m["socket"] = (gauss(eye_r + [0, -0.01], 0.09, 0.05) + gauss(eye_l + [0, -0.01], 0.09, 0.05)).clip(0, 1)
    mouth = fuv[list(G.LIPS_OUTER)].mean(0)
    cheek_r = np.array([eye_r[0] - 0.02, (eye_r[1] + mouth[1]) / 2 + 0.02])
    cheek_l = np.array([eye_l[0] + 0.02, (eye_l[1] + mouth[1]) / 2 + 0.02])
    m["blush"] = gauss(cheek_r, 0.07, 0.05) + gauss(cheek_l, 0.07, 0.05)
    m["lips"] = gaussian_filter(_poly_mask(fuv[list(G.LIPS_OUTER)], res), 1.0 * sm)
    brows = np.maximum(_poly_mask(fuv[list(G.BROW_R)], res), _poly_mask(fuv[list(G.BROW_L)], res))
    # hair-like strokes: brows are denser at their lower edge and streaked, not a flat patch
    rng = np.random.default_rng(1234)
    streak = gaussian_filter(rng.random((res, res)), (0.6 * sm, 2.0 * sm))
    streak = (streak - streak.min()) / (np.ptp(streak) + 1e-9)
    m["brows"] = gaussian_filter(brows, 1.2 * sm) * (0.65 + 0.7 * streak).clip(0, 1)
    lash = np.minimum(_polyline_dist(fuv[list(G.EYE_R)], res), _polyline_dist(fuv[list(G.EYE_L)], res))
    # the upper lid carries a darker, thicker lash line than the lower one
    upper = (vv < np.interp(uu, [0, 1], [eye_r[1], eye_l[1]])).astype(np.float32)
    m["lashline"] = np.exp(-(lash / (0.006 + 0.004 * upper)) ** 2) * (0.55 + 0.45 * upper)
    nose = fuv[[98, 327, 2, 4]]
    nos_r = 0.6 * nose[0] + 0.4 * nose[2]
    nos_l = 0.6 * nose[1] + 0.4 * nose[2]
    m["nostrils"] = (gauss(nos_r + [0.0, -0.006], 0.016, 0.008) + gauss(nos_l + [0.0, -0.006], 0.016, 0.008)).clip(0, 1)

    # eyeballs: atlas squares u in [0, .25) and [.25, .5), v in [0.8, 1): disc centred at
    # (k*0.25+0.125, 0.9) with radii (0.12, 0.096) (see geometry.topology)
    h = G.ATLAS_FACE_FRACTION
    sclera = np.zeros((res, res))
    iris = np.zeros((res, res))
    pupil = np.zeros((res, res))
    for k in range(2):
        du = (uu - (k * 0.25 + 0.125)) / 0.12
        dv = (vv - (h + 0.1)) / 0.096
        r = np.sqrt(du ** 2 + dv ** 2)
        sclera = np.maximum(sclera, (r < 1.05).astype(float))
        # the disc spans 1.12 x 0.8 eye widths; an iris is ~0.42 eye widths across
        ri = np.sqrt((du * 0.56 / 0.4) ** 2 + dv ** 2) / (0.21 / 0.4)
        iris = np.maximum(iris, np.clip((1.0 - ri) / 0.08, 0, 1))
        pupil = np.maximum(pupil, np.clip((0.42 - ri) / 0.08, 0, 1))
    m["sclera"] = sclera
    m["iris"] = iris
    m["pupil"] = pupil
    # mouth interior: u in [0.52, 0.98], v rows at 0.82 + [0, .25, .75, 1] * 0.16
    mv = (vv - (h + 0.02)) / (1 - h - 0.04)
    mu = (uu - 0.52) / 0.46
    inside_mouth = (mu >= -0.02) & (mu <= 1.02) & (mv >= -0.02) & (mv <= 1.02)
    gaps = 0.5 + 0.5 * np.cos(np.clip(mu, 0, 1) * 2 * np.pi * 14) ** 8  # teeth separations
    teeth = (((mv < 0.25) | (mv > 0.75)) & inside_mouth).astype(float)
    teeth *= 1 - 0.35 * (1 - gaps) * (np.abs(mu - 0.5) < 0.36)
    teeth *= np.clip(1.0 - np.abs(mu - 0.5) / 0.5, 0, 1) ** 0.3  # molars recede into shadow
    m["teeth"] = teeth
    m["cavity"] = (inside_mouth & (mv >= 0.25) & (mv <= 0.75)).astype(float)
    m["tongue"] = m["cavity"] * np.exp(-((mu - 0.5) / 0.22) ** 2 - ((mv - 0.75) / 0.12) ** 2)
    detail = gaussian_filter(rng.standard_normal((res, res)), 1.6 * sm)
    m["detail"] = detail / (detail.std() + 1e-9)
    # forehead lines and crow's feet, used by the age parameter
    fore = gauss([0.5, 0.16 * h], 0.18, 0.06) * (0.5 + 0.5 * np.cos(vv * 2 * np.pi * 26 / h)) ** 6
    crow = (gauss(fuv[33] - [0.05, 0], 0.02, 0.03) + gauss(fuv[263] + [0.05, 0], 0.02, 0.03)) * (
        0.5 + 0.5 * np.cos(vv * 2 * np.pi * 40 + uu * 20)) ** 6
    naso = np.exp(-(np.minimum(_polyline_dist(fuv[[98, 216, 61]], res, closed=False),
                               _polyline_dist(fuv[[327, 436, 291]], res, closed=False)) / 0.016) ** 2) * 0.6
    m["wrinkles"] = np.clip(fore + crow + naso, 0, 1)
    m = {k: np.where(_face_or_atlas(k, vv), v, 0.0) for k, v in m.items()}
    return torch.tensor(np.stack([m[k] for k in LAYERS]), dtype=torch.float32)


def _face_or_atlas(layer: str, vv: np.ndarray) -> np.ndarray:
    """Face layers live above the atlas strip, eye/mouth layers below it."""
    strip = vv >= G.ATLAS_FACE_FRACTION
    return strip if layer in ("sclera", "iris", "pupil", "teeth", "cavity", "tongue") else ~strip


#: AU-driven appearance cues (FACS's "appearance changes" that survive at 48 px), painted in
#: UV space and darkening the skin (lip_fade: fading the lip colour) by an amount set by
#: the AU intensities: (name, {AU: weight}, darkening per unit of the weighted sum / 3).
#: Each is split into a subject-right and a subject-left half driven by that side's AUs.
#: synth-8 (issue 21, session 14) deepens five of them, chosen on the four tuning critics'
#: mean balanced recall of engine faces (``realism.TUNING_CRITICS``, 1,400 faces, the held-out
#: critic not consulted): nose wrinkles 0.5 -> 1.2, nasolabial folds 0.35 -> 0.6, forehead lines
#: 0.40 -> 0.6 (centre) and 0.35 -> 0.5 (sides), marionette lines 0.3 -> 0.5: 0.714 -> 0.741
#: (faces of another seed: 0.710 -> 0.736; fear 0.41 -> 0.49, disgust 0.63 -> 0.68 on average).
#: Deeper furrows (0.8), lip press (0.9), chin boss (0.7) or lower lids (0.5) on top moved it by
#: 0.002 or less; nasolabial 0.8 lowered it (0.729). The engine-trained model's read of real faces
#: did not move (synth->real on the FER2013 train subset 0.320 -> 0.318, one seed).
CUES = (
    ("furrows", {"AU04": 1.0}, 0.55),                 # vertical furrows and shadow between the brows
    ("brow_shadow", {"AU04": 0.7, "AU09": 0.3}, 0.35),  # the lowered brow shadows the upper lid
    ("forehead_mid", {"AU01": 1.0}, 0.6),             # horizontal forehead lines, centre (inner brow raiser)
    ("forehead_side", {"AU02": 1.0}, 0.5),            # ... lateral (outer brow raiser)
    ("nasolabial", {"AU09": 1.0, "AU10": 0.8, "AU12": 0.45}, 0.6),  # deepened nasolabial folds
    ("nose_wrinkles", {"AU09": 1.0}, 1.2),            # wrinkles across the nose root
    ("chin_boss", {"AU17": 1.0}, 0.45),               # chin boss: sulcus under the lip, dimpled chin
    ("lip_press", {"AU23": 0.6, "AU24": 1.0}, 0.6),   # pressed lips: a dark line where they meet
    ("lip_fade", {"AU23": 0.6, "AU24": 1.0}, 0.55),   # ... and narrowed, paler red margins
    ("marionette", {"AU15": 1.0, "AU17": 0.3}, 0.5),  # lines down from the depressed lip corners
    ("lower_lid", {"AU07": 1.0, "AU06": 0.3}, 0.3),   # the tightened lower lid's bulge line
)


@lru_cache(maxsize=4)
def cue_masks(res: int) -> np.ndarray:
    """(2 * len(CUES), res, res) masks in [-1, 1] (negative: a highlight, lightening the skin):
    each cue's subject-right half, then its left."""
    topo = G.topology()
    fuv = _atlas_uv(topo.face_uv)
    c = (np.arange(res) + 0.5) / res
    uu, vv = np.meshgrid(c, c)
    sm = res / 256.0

    def gauss(center, su, sv):
        return np.exp(-((uu - center[0]) ** 2 / (2 * su ** 2) + (vv - center[1]) ** 2 / (2 * sv ** 2)))

    def line(pts, width):
        return np.exp(-(_polyline_dist(np.asarray(pts, np.float64), res, closed=False) / width) ** 2)

    # folds as real ones look at 48 px: a wide, soft Gaussian-profile crease (a shadow, not a
    # stroke) with a light highlight on the bulging side (the cheek, lateral/above); negative
    # mask values lighten the skin
    def fold(pts, width, hi_offset, hi=0.45):
        pts = np.asarray(pts, np.float64)
        return line(pts, width) - hi * line(pts + np.asarray(hi_offset), 1.2 * width)

    def mirror(pts):
        return [(1 - p[0], p[1]) for p in pts]

    P = lambda i: fuv[i]  # noqa: E731
    m = {}
    g9, g8, g168 = P(9), P(8), P(168)
    fur = 0.45 * gauss((g9[0], (g9[1] + g8[1]) / 2), 0.045, 0.03)
    for dx in (-0.022, 0.022):
        fur = fur + 0.8 * fold([(g9[0] + dx * 1.2, g9[1] - 0.025), (g9[0] + dx, g8[1] + 0.005)], 0.011,
                               (np.sign(dx) * 0.018, 0.0), 0.35)
    fur = fur + 0.6 * line([(g168[0] - 0.03, g168[1] - 0.004), (g168[0] + 0.03, g168[1] - 0.004)], 0.006)
    m["furrows"] = fur
    bs = 0
    for lid in (159, 386):
        bs = bs + gauss((P(lid)[0], P(lid)[1] - 0.022), 0.06, 0.014)
    m["brow_shadow"] = bs
    brow_top = min(P(105)[1], P(334)[1]) - 0.03
    waves = (0.5 + 0.5 * np.cos((vv - brow_top) * 2 * np.pi / 0.03)) ** 4 * (vv < brow_top + 0.005)
    m["forehead_mid"] = gauss((0.5, brow_top - 0.05), 0.1, 0.045) * waves
    m["forehead_side"] = (gauss((0.3, brow_top - 0.045), 0.07, 0.04) + gauss((0.7, brow_top - 0.045), 0.07, 0.04)) * waves
    naso_r = [P(98) + (-0.012, -0.01), P(98) + (-0.04, 0.03), P(61) + (-0.03, 0.0), P(61) + (-0.035, 0.03)]
    naso_hi = (-0.035, -0.012)
    m["nasolabial"] = fold(naso_r, 0.022, naso_hi) + fold(mirror(naso_r), 0.022, (0.035, -0.012))
    m["nose_wrinkles"] = sum(line([(g168[0] - 0.045, v), (g168[0] + 0.045, v)], 0.008)
                             for v in np.linspace(g168[1] + 0.005, P(6)[1] + 0.01, 3)) * gauss((g168[0], P(6)[1]), 0.04, 0.05)
    lip17 = P(17)
    sulcus = [(lip17[0] - 0.09, lip17[1] + 0.005), (lip17[0], lip17[1] + 0.03), (lip17[0] + 0.09, lip17[1] + 0.005)]
    rng = np.random.default_rng(4321)
    dimples = gaussian_filter(rng.standard_normal((res, res)), 2.0 * sm)
    dimples = np.clip(dimples / (dimples.std() + 1e-9), 0, 3) / 3
    m["chin_boss"] = line(sulcus, 0.012) + 0.8 * dimples * gauss((P(199)[0], P(199)[1]), 0.06, 0.04)
    mid = (np.asarray([P(i) for i in G.LIP_UPPER_ROW]) + np.asarray([P(i) for i in G.LIP_LOWER_ROW])) / 2
    m["lip_press"] = line(mid, 0.008)
    m["lip_fade"] = gaussian_filter(_poly_mask(fuv[list(G.LIPS_OUTER)], res), 1.0 * sm)
    mar = [P(61) + (-0.005, 0.012), P(61) + (-0.012, 0.05), P(61) + (-0.01, 0.085)]
    m["marionette"] = fold(mar, 0.02, (-0.03, 0.0), 0.3) + fold(mirror(mar), 0.02, (0.03, 0.0), 0.3)
    ll = [P(i) + (0, 0.012) for i in (33, 7, 163, 144, 145, 153, 154, 155, 133)]
    m["lower_lid"] = fold(ll, 0.01, (0, 0.014), 0.4) + fold(mirror(ll), 0.01, (0, 0.014), 0.4)
    face = ~_face_or_atlas("sclera", vv)
    right = 1 / (1 + np.exp((uu - 0.5) / 0.01))  # subject's right = image left = small u
    out = []
    for side in (right, 1 - right):
        out += [np.clip(m[name], -1, 1) * side * face for name, _, _ in CUES]
    return np.stack(out).astype(np.float32)


def _cue_weights() -> np.ndarray:
    """(len(CUES), 20): AU weights of each cue divided by 3 (a weighted sum of 3 is full strength)."""
    from ..mesh import AU_INDEX
    w = np.zeros((len(CUES), 20), np.float32)
    for j, (_, aus, _) in enumerate(CUES):
        for a, x in aus.items():
            w[j, AU_INDEX[a]] = x / 3.0
    return w


def cue_coefficients(ident: dict, aus_right: np.ndarray, aus_left: np.ndarray) -> np.ndarray:
    """(n, 2 * len(CUES), 3) colours for :func:`cue_masks` rows: skin darkened by each cue's
    strength (its AU-weighted sum, capped at 1.3), lip colour faded towards the skin."""
    skin = np.asarray(ident["skin_rgb"], np.float32)
    lip = np.asarray(ident["lip_rgb"], np.float32)
    w = _cue_weights()
    k = np.array([c[2] for c in CUES], np.float32)
    fade = np.array([c[0] == "lip_fade" for c in CUES])
    rows = []
    for aus in (aus_right, aus_left):
        s = np.clip(np.asarray(aus, np.float32) @ w.T, 0, 1.3) * k  # (n, C)
        col = -s[..., None] * skin[:, None]
        col[:, fade] = s[:, fade, None] * 0.9 * (skin - lip)[:, None]
        rows.append(col)
    return np.concatenate(rows, 1).astype(np.float32)


#: Photometric constants of the eye and mouth regions: SCLERA_RGB / TEETH_RGB, albedo of the eye
#: whites and teeth (sRGB); SOCKET_DARKEN / LASH_DARKEN, how much the eye sockets (grows with age)
#: and the upper lash line darken the skin (fractions of the skin colour); LIP_SHADE, the lip
#: albedo's scale.
#:
#: Measured against FER2013 (issue 21, session 8) and kept: the median brightness of landmark
#: boxes relative to the cheek (one detector, ``facelab.faces.mesh68_crops``, on 1,400 FER2013
#: train faces and 700 engine faces, 48 px grey, FER framing) is eye 0.597, brow 0.719, nostrils
#: 0.810, mouth 0.737 on real faces; these values give eye 0.857 and mouth 0.867 (white eyes and
#: teeth). Sclera 0.40, socket 0.25, lash 1.3, lips 0.5, teeth 0.60 match the real ratios (0.608,
#: 0.684, 0.776, 0.717), but did not help the tuning side of ``facelab.synth.realism``: real->synth
#: 0.661 -> 0.658 with the tuning critic, synth->real on the train subset 0.277 -> 0.250. So the
#: engine kept them, until synth-6 (issue 21, session 13): on synth-5, the model trained on engine
#: faces called 27 % of real faces "sad" (eyes without bright whites look closed to it), and
#: darker eye whites alone (0.93 -> 0.55) cut that to 16 %. With sockets 0.18 -> 0.25 too: 10 %,
#: the tuning critics' real->synth 0.735 -> 0.767 (SmallCNN) and 0.642 -> 0.666 (plain CNN),
#: synth->real on the train subset 0.311 -> 0.320 (16,000 faces; sclera 0.45 gave the same, 0.759
#: / 0.652 / 0.319). Lips and teeth keep their values.
SCLERA_RGB = (0.55, 0.53, 0.50)
SOCKET_DARKEN = 0.25
LASH_DARKEN = 0.75
LIP_SHADE = 1.0
TEETH_RGB = (0.92, 0.9, 0.84)

#: Hairline heights (face-UV v at the centre of the forehead) a face can pick from.
HAIRLINES = np.linspace(0.04, 0.22, 7)


@lru_cache(maxsize=4)
def _linear_basis(res: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The atlas as a linear function of per-face colours: ``tex = const + sum_k W_k c_k``.

    Layers are composited "over" in a fixed order; with fixed masks that composite is
    linear in the colours as long as each layer's underlay is known (skin under face
    features, sclera under the iris, iris under the pupil), which lets one matrix product
    texture a whole batch. Returns W (K, res*res) and const (res*res, 3).
    """
    M = {k: layer_masks(res)[i].numpy().astype(np.float64) for i, k in enumerate(LAYERS)}
    c = (np.arange(res) + 0.5) / res
    vv, uu = np.meshgrid(c / G.ATLAS_FACE_FRACTION, c, indexing="ij")
    face = (vv < 1.0).astype(float)
    rows = [face, M["detail"] * face, M["socket"], M["wrinkles"], M["blush"], 0.9 * M["lips"],
            M["brows"], 0.85 * M["lashline"], 0.95 * M["nostrils"]]
    for hl in HAIRLINES:
        line = hl + 0.55 * (uu - 0.5) ** 2
        h = 1 / (1 + np.exp(-(line - vv) / 0.012)) * face
        rows += [h, h * np.clip(M["detail"], -1, 1)]
    iris_vis = M["iris"] * (1 - M["pupil"])
    rows.append(iris_vis * (0.8 + 0.3 * np.clip(M["detail"], -1, 1)))
    rows += list(cue_masks(res).astype(np.float64))  # AU cues last (zero colours when no AU acts)
    W = np.stack(rows).reshape(len(rows), -1)
    # identity-independent colours of the strip: sclera (iris left black), pupil, mouth
    const = np.zeros((res, res, 3))
    def over(img, m, col):
        return img * (1 - m[..., None]) + m[..., None] * np.asarray(col)
    const = over(const, M["sclera"], list(SCLERA_RGB))
    const = over(const, M["iris"], [0.0, 0.0, 0.0])
    const = over(const, M["pupil"], [0.03, 0.03, 0.03])
    const = over(const, M["cavity"], [0.22, 0.06, 0.06])
    const = over(const, 0.9 * M["tongue"], [0.62, 0.28, 0.3])
    const = over(const, M["teeth"], list(TEETH_RGB))
    return torch.tensor(W, dtype=torch.float32), torch.tensor(const.reshape(-1, 3), dtype=torch.float32)


@lru_cache(maxsize=4)
def linear_basis_np(res: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_linear_basis` as contiguous float32 numpy arrays (for the compiled renderer)."""
    W, const = _linear_basis(res)
    return np.ascontiguousarray(W.numpy()), np.ascontiguousarray(const.numpy())


def colour_coefficients(ident: dict, aus_right: np.ndarray | None = None,
                        aus_left: np.ndarray | None = None) -> np.ndarray:
    """(n, K, 3) per-face colours for the rows of :func:`_linear_basis`; the AU-cue rows get
    :func:`cue_coefficients` of the per-side AUs (zeros without AUs: no cues)."""
    skin = np.asarray(ident["skin_rgb"], np.float32)
    col = lambda k: np.asarray(ident[k], np.float32)  # noqa: E731
    agef = np.clip((col("age") - 20) / 60, 0, 1)[:, None]
    red = np.array([0.85, 0.35, 0.35], np.float32)
    rows = [skin, col("skin_detail")[:, None] * skin, -SOCKET_DARKEN * (0.6 + agef) * skin, -0.25 * agef * skin,
            col("blush")[:, None] * (skin * red * 1.15 - skin), LIP_SHADE * col("lip_rgb") - skin,
            col("brow_density")[:, None] * (col("brow_rgb") - skin), -LASH_DARKEN * skin, -0.8 * skin]
    level = np.abs(col("hairline")[:, None] - HAIRLINES[None]).argmin(1)
    hair = col("hair_rgb")
    for j in range(len(HAIRLINES)):
        on = ((level == j) & (col("has_hair") > 0.5)).astype(np.float32)[:, None]
        rows += [on * (hair - skin), on * 0.15 * hair]
    rows.append(col("iris_rgb"))
    base = np.stack(rows, 1)
    if aus_right is None:
        cues = np.zeros((len(skin), 2 * len(CUES), 3), np.float32)
    else:
        cues = cue_coefficients(ident, aus_right, aus_right if aus_left is None else aus_left)
    return np.concatenate([base, cues], 1)


def compose(ident: dict, res: int, device: torch.device | str = "cpu", aus_right: np.ndarray | None = None,
            aus_left: np.ndarray | None = None) -> torch.Tensor:
    """Per-face atlases (n, res, res, 3) float in [0, 1] from identity colour parameters and
    (optionally) per-side AUs for the appearance cues (:data:`CUES`)."""
    W, const = _linear_basis(res)
    C = torch.as_tensor(colour_coefficients(ident, aus_right, aus_left), device=device)  # (n, K, 3)
    tex = torch.matmul(C.transpose(1, 2), W.to(device)).transpose(1, 2) + const.to(device)
    return tex.clamp(0, 1).reshape(len(C), res, res, 3)
