"""The avatar editor (notebook 06): AU, identity, colour and view sliders plus a UV-texture brush.

Every callback is a plain function of plain values, so it is unit-tested without a browser:

* :class:`EditorState` - what the controls hold: AU intensities, identity and colour code
  offsets (along one direction each), the yaw, and the painted strokes.
* :func:`set_au` (one clear error for an unknown AU), :func:`set_identity`, :func:`set_colour`,
  :func:`set_yaw`, :func:`paint`, :func:`clear_paint` return a new state.
* :func:`paint_layer` - the strokes rasterised as an RGBA layer over the UV texture.
* :func:`apply_paint` - a (3, H, W) texture with the layer composited over it.
* :func:`render_state` - uint8 (res, res, 3) image of the avatar for a state.

The avatar is any object with ``codes(aus (20,), identity, colour) -> (z_geo, z_exp, z_col)``,
``texture(z_col) -> (3, H, W)`` tensor in [0, 1] and ``render(z_geo, z_exp, texture, yaw, res)
-> (res, res, 3)`` float array in [0, 1]. Because the stroke lives on the texture map, it
shows from every view and with every expression.

:class:`AvatarEditorWidget` wires them to ``ipywidgets`` sliders, a colour picker, a paint
button and an ``Image``.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from ..mesh import AU_INDEX, AU_NAMES

#: The AUs the editor shows sliders for (all 20 of the AU-to-mesh model are accepted).
SLIDER_AUS = ("AU01", "AU02", "AU04", "AU06", "AU09", "AU12", "AU15", "AU20", "AU25", "AU26")
YAW_RANGE = (-60.0, 60.0)


@dataclass(frozen=True)
class Stroke:
    points: tuple[tuple[float, float], ...]   # UV polyline, u right, v down, in [0, 1]
    rgb: tuple[float, float, float]
    radius: float


@dataclass(frozen=True)
class EditorState:
    aus: tuple[float, ...] = (0.0,) * len(AU_NAMES)
    identity: float = 0.0
    colour: float = 0.0
    yaw: float = 0.0
    strokes: tuple[Stroke, ...] = field(default_factory=tuple)

    @property
    def au_vector(self) -> np.ndarray:
        return np.asarray(self.aus, np.float32)


def set_au(state: EditorState, au: str, value: float) -> EditorState:
    if au not in AU_INDEX:
        raise ValueError(f"unknown AU {au!r}: the editor knows {', '.join(AU_NAMES)}")
    if not 0.0 <= float(value) <= 5.0:
        raise ValueError(f"{au} intensity {value!r} out of range: expected 0..5")
    aus = list(state.aus)
    aus[AU_INDEX[au]] = float(value)
    return replace(state, aus=tuple(aus))


def _ranged(name: str, value: float, lo: float, hi: float) -> float:
    if not lo <= float(value) <= hi:
        raise ValueError(f"{name}={value!r} out of range: expected {lo:g}..{hi:g}")
    return float(value)


def set_identity(state: EditorState, value: float) -> EditorState:
    return replace(state, identity=_ranged("identity", value, -3, 3))


def set_colour(state: EditorState, value: float) -> EditorState:
    return replace(state, colour=_ranged("colour", value, -3, 3))


def set_yaw(state: EditorState, yaw: float) -> EditorState:
    return replace(state, yaw=_ranged("yaw", yaw, *YAW_RANGE))


def paint(state: EditorState, points: Sequence[Sequence[float]], rgb: Sequence[float], radius: float = 0.03) -> EditorState:
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if len(pts) == 0 or (pts < 0).any() or (pts > 1).any():
        raise ValueError(f"stroke points must be UV pairs in [0, 1], got {np.asarray(points).tolist()!r}")
    col = tuple(float(c) for c in rgb)
    if len(col) != 3 or not all(0 <= c <= 1 for c in col):
        raise ValueError(f"stroke colour must be three numbers in [0, 1], got {rgb!r}")
    s = Stroke(tuple(map(tuple, pts.tolist())), col, _ranged("radius", radius, 1e-3, 0.5))
    return replace(state, strokes=state.strokes + (s,))


def clear_paint(state: EditorState) -> EditorState:
    return replace(state, strokes=())


def paint_layer(strokes: Sequence[Stroke], res: int) -> np.ndarray:
    """(res, res, 4) float RGBA: each stroke is a capsule of its radius around its polyline."""
    layer = np.zeros((res, res, 4), np.float32)
    c = (np.arange(res) + 0.5) / res
    v, u = np.meshgrid(c, c, indexing="ij")
    q = np.stack([u, v], -1)
    for s in strokes:
        pts = np.asarray(s.points)
        segs = [(pts[i], pts[i + 1]) for i in range(len(pts) - 1)] or [(pts[0], pts[0])]
        d = np.full((res, res), np.inf)
        for a, b in segs:
            ab = b - a
            t = np.clip(((q - a) @ ab) / max(ab @ ab, 1e-12), 0, 1)
            d = np.minimum(d, np.linalg.norm(q - (a + t[..., None] * ab), axis=-1))
        on = d <= s.radius
        layer[on, :3] = s.rgb
        layer[on, 3] = 1.0
    return layer


def apply_paint(texture, strokes: Sequence[Stroke]):
    """The (3, H, W) texture (torch) with the strokes composited over it."""
    import torch

    if not strokes:
        return texture
    layer = torch.as_tensor(paint_layer(strokes, texture.shape[-1]), dtype=texture.dtype).permute(2, 0, 1)
    if texture.shape[-2] != texture.shape[-1]:
        layer = torch.nn.functional.interpolate(layer[None], size=texture.shape[-2:], mode="nearest")[0]
    a = layer[3:]
    return texture * (1 - a) + layer[:3] * a


def render_state(avatar: Any, state: EditorState, res: int = 64) -> np.ndarray:
    zg, ze, zc = avatar.codes(state.au_vector, state.identity, state.colour)
    tex = apply_paint(avatar.texture(zc), state.strokes)
    img = np.asarray(avatar.render(zg, ze, tex, state.yaw, res), np.float64)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def png(img: np.ndarray, size: int | None = None) -> bytes:
    from PIL import Image

    im = Image.fromarray(np.asarray(img, np.uint8))
    if size:
        im = im.resize((size, size), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


class AvatarEditorWidget:
    """Sliders (AUs, identity, colour, yaw), a brush (u, v, colour, paint / clear) and the image."""

    def __init__(self, avatar: Any, size: int = 64, display: int = 256, aus: Sequence[str] = SLIDER_AUS) -> None:
        import ipywidgets as w

        for a in aus:
            set_au(EditorState(), a, 0.0)  # one clear error for an unknown AU
        self.avatar, self.size, self.display = avatar, size, display
        self.state = EditorState()
        self.au_sliders = {a: w.FloatSlider(0.0, min=0, max=5, step=0.25, description=a, continuous_update=False)
                           for a in aus}
        self.identity = w.FloatSlider(0.0, min=-3, max=3, step=0.25, description="identity", continuous_update=False)
        self.colour = w.FloatSlider(0.0, min=-3, max=3, step=0.25, description="colour", continuous_update=False)
        self.yaw = w.FloatSlider(0.0, min=YAW_RANGE[0], max=YAW_RANGE[1], step=5, description="view yaw",
                                 continuous_update=False)
        self.brush_u = w.FloatSlider(0.5, min=0, max=1, step=0.01, description="brush u")
        self.brush_v = w.FloatSlider(0.4, min=0, max=1, step=0.01, description="brush v")
        self.brush_colour = w.ColorPicker(value="#2040e0", description="brush")
        self.paint_button = w.Button(description="paint stroke")
        self.clear_button = w.Button(description="clear paint")
        self.image = w.Image(format="png", width=display, height=display)
        for a, s in self.au_sliders.items():
            s.observe(lambda ch, a=a: self._apply(set_au(self.state, a, ch["new"])), names="value")
        self.identity.observe(lambda ch: self._apply(set_identity(self.state, ch["new"])), names="value")
        self.colour.observe(lambda ch: self._apply(set_colour(self.state, ch["new"])), names="value")
        self.yaw.observe(lambda ch: self._apply(set_yaw(self.state, ch["new"])), names="value")
        self.paint_button.on_click(lambda _: self.paint_at(self.brush_u.value, self.brush_v.value))
        self.clear_button.on_click(lambda _: self._apply(clear_paint(self.state)))
        controls = w.VBox(list(self.au_sliders.values()) + [self.identity, self.colour, self.yaw, self.brush_u,
                                                            self.brush_v, self.brush_colour,
                                                            w.HBox([self.paint_button, self.clear_button])])
        self.box = w.HBox([controls, self.image])
        self.refresh()

    def paint_at(self, u: float, v: float, length: float = 0.15) -> None:
        h = self.brush_colour.value.lstrip("#")
        rgb = tuple(int(h[i:i + 2], 16) / 255 for i in (0, 2, 4))
        pts = [(max(0.0, u - length / 2), v), (min(1.0, u + length / 2), v)]
        self._apply(paint(self.state, pts, rgb, 0.03))

    def _apply(self, state: EditorState) -> None:
        self.state = state
        self.refresh()

    def refresh(self) -> np.ndarray:
        img = render_state(self.avatar, self.state, self.size)
        self.image.value = png(img, self.display)
        return img

    def _repr_mimebundle_(self, **kw):
        return self.box._repr_mimebundle_(**kw)


# ----------------------------------------------------------------------------- notebook 07: generative avatars
def set_aus(state: EditorState, aus: Sequence[float]) -> EditorState:
    """All 20 AUs at once (e.g. one frame of a driving clip); values in 0..5."""
    v = np.asarray(aus, np.float64).reshape(-1)
    if v.shape != (len(AU_NAMES),) or not np.isfinite(v).all() or v.min() < 0 or v.max() > 5:
        raise ValueError(f"set_aus: expected {len(AU_NAMES)} AU intensities in 0..5 ({', '.join(AU_NAMES)}), "
                         f"got shape {v.shape}")
    return replace(state, aus=tuple(float(x) for x in v))


def region_mask(u0: float, v0: float, u1: float, v1: float, res: int) -> np.ndarray:
    """(res, res) float mask, 1 inside the UV rectangle [u0, u1] x [v0, v1] (u right, v down)."""
    for name, x in (("u0", u0), ("v0", v0), ("u1", u1), ("v1", v1)):
        _ranged(name, x, 0.0, 1.0)
    if u1 <= u0 or v1 <= v0:
        raise ValueError(f"region: expected u0 < u1 and v0 < v1, got u {u0}..{u1}, v {v0}..{v1}")
    c = (np.arange(res) + 0.5) / res
    return ((c[:, None] >= v0) & (c[:, None] <= v1) & (c[None] >= u0) & (c[None] <= u1)).astype(np.float32)


class GenerativeAvatarEditorWidget(AvatarEditorWidget):
    """Notebook 06's editor plus: a description box and *generate* button, a UV-region inpaint
    (rectangle sliders + *inpaint region*, using the description), and a driving-clip frame slider.

    The avatar additionally provides ``generate(text)``, ``inpaint(mask (R, R), text)`` with
    ``uv_res`` = R, and optionally ``clip_aus`` ((m, 20) AUs of a driving clip, or None). Errors
    (an empty description, ...) are shown in the status label instead of raising in a callback."""

    def __init__(self, avatar: Any, size: int = 64, display: int = 256, aus: Sequence[str] = SLIDER_AUS,
                 description: str = "") -> None:
        import ipywidgets as w

        super().__init__(avatar, size, display, aus)
        self.description = w.Text(value=description, description="describe", layout=w.Layout(width="420px"))
        self.generate_button = w.Button(description="generate")
        self.status = w.Label(value="")
        self.status.add_class("avatar-editor-status")      # a stable hook for browser tests
        self.region = {k: w.FloatSlider(v, min=0, max=1, step=0.05, description=k)
                       for k, v in (("u0", 0.2), ("v0", 0.05), ("u1", 0.8), ("v1", 0.3))}
        self.inpaint_button = w.Button(description="inpaint region")
        clip = getattr(avatar, "clip_aus", None)
        n = 0 if clip is None else len(clip)
        self.clip_frame = w.IntSlider(0, min=0, max=max(n - 1, 0), description="clip frame", disabled=n == 0,
                                      continuous_update=False)
        self.generate_button.on_click(lambda _: self.generate(self.description.value))
        self.inpaint_button.on_click(lambda _: self.inpaint(*(s.value for s in self.region.values())))
        self.clip_frame.observe(lambda ch: self.drive_frame(ch["new"]), names="value")
        gen_box = w.VBox([w.HBox([self.description, self.generate_button]), w.HBox(list(self.region.values())[:2]),
                          w.HBox(list(self.region.values())[2:] + [self.inpaint_button]), self.clip_frame, self.status])
        self.box = w.VBox([gen_box, self.box])

    def _guard(self, fn, ok: str) -> bool:
        try:
            fn()
        except ValueError as e:
            self.status.value = f"error: {e}"
            return False
        self.status.value = ok
        self.refresh()
        return True

    def generate(self, text: str) -> bool:
        return self._guard(lambda: self.avatar.generate(text), f"generated: {text.strip()[:60]}")

    def inpaint(self, u0: float, v0: float, u1: float, v1: float) -> bool:
        def run():
            mask = region_mask(u0, v0, u1, v1, self.avatar.uv_res)
            self.avatar.inpaint(mask, self.description.value)
        return self._guard(run, f"inpainted u {u0:.2f}-{u1:.2f}, v {v0:.2f}-{v1:.2f}")

    def drive_frame(self, i: int) -> bool:
        clip = getattr(self.avatar, "clip_aus", None)
        if clip is None:
            self.status.value = "error: no driving clip loaded"
            return False
        self.state = set_aus(self.state, np.clip(clip[int(i)], 0, 5))
        self.status.value = f"driven by clip frame {int(i)}"
        self.refresh()
        return True
