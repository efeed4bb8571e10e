"""The AU heatmap explorer (notebook 05): a face, its AU heatmap, and the CAMs of two models.

Every callback is a plain function of plain values, so it is unit-tested without a browser:

* :class:`HeatmapState` - what the controls hold (face index, active AUs, blur, ellipse scale,
  CAM method); :func:`select_face`, :func:`toggle_au`, :func:`set_blur`,
  :func:`set_ellipse_scale` return a new state.
* :func:`heatmap_for` - the AU heatmap of a face for a state (``facelab.faces.au_heatmap``).
* :func:`overlay_png` - PNG bytes of a face with a heatmap and its landmarks drawn over it.
* :func:`cam_panels` - per model, PNG bytes of its CAM over the face and its CAM-COS against
  the current heatmap.
* :func:`render` - all of the above for one state: what the widget shows.

:class:`AUHeatmapWidget` (an ``ipywidgets.VBox``) wires them to checkboxes, sliders, a file
upload and ``ipywidgets.Image`` panels; :meth:`AUHeatmapWidget.from_run` builds one from what
notebook 05 saves (``models.pt``, ``widget_samples.npz``), or from synthetic faces alone.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, NamedTuple

import numpy as np

from ..config import BASIC7, EXPRESSIONS
from ..faces.au import AU_REGIONS, codebook_aus

#: Every AU with a region, in the order the checkboxes show them.
AU_NAMES: tuple[str, ...] = tuple(AU_REGIONS)
DISPLAY = 192


class Face(NamedTuple):
    """One face: RGB uint8 (H, W, 3), 68 landmarks in its pixels, canonical label (-1: unknown)."""

    image: np.ndarray
    landmarks68: np.ndarray
    label: int
    landmarks_found: bool = True


@dataclass(frozen=True)
class HeatmapState:
    index: int = 0
    aus: tuple[str, ...] = ()
    blur: int = 3
    ellipse_scale: float = 1.0
    method: str = "cam"


def _base_aus(label: int) -> tuple[str, ...]:
    """The codebook AUs of a label without side suffixes (a checkbox is a whole AU)."""
    if label is None or int(label) < 0:
        return ()
    out: list[str] = []
    for a in codebook_aus(int(label)):
        if a[:4] not in out:
            out.append(a[:4])
    return tuple(out)


class FaceSource:
    """Faces to pick from: images (N, H, W, 3) uint8, landmarks (N, 68, 2), labels (N,)."""

    def __init__(self, images, landmarks68, labels) -> None:
        images, lm, labels = np.asarray(images), np.asarray(landmarks68, np.float32), np.asarray(labels, np.int64)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"FaceSource: expected images of shape (N, H, W, 3) uint8, got {images.shape} {images.dtype}")
        if lm.shape != (len(images), 68, 2) or labels.shape != (len(images),):
            raise ValueError(f"FaceSource: expected ({len(images)}, 68, 2) landmarks and ({len(images)},) labels, "
                             f"got {lm.shape} and {labels.shape}")
        if len(images) == 0:
            raise ValueError("FaceSource: no faces")
        self.images, self.landmarks68, self.labels = images, lm, labels

    def __len__(self) -> int:
        return len(self.images)

    def face(self, index: int) -> Face:
        if not 0 <= int(index) < len(self):
            raise IndexError(f"face index {index} out of range 0..{len(self) - 1}")
        i = int(index)
        return Face(self.images[i], self.landmarks68[i], int(self.labels[i]))

    @property
    def mean_shape(self) -> np.ndarray:
        return self.landmarks68.mean(0)

    @classmethod
    def from_npz(cls, path: str | Path) -> "FaceSource":
        with np.load(path) as z:
            return cls(z["images"], z["landmarks68"], z["labels"])

    @classmethod
    def synthetic(cls, n: int = 14, size: int = 96, seed: int = 0) -> "FaceSource":
        from ..synth import faces

        b = faces(n, size, expressions=list(range(len(BASIC7))), seed=seed, supersample=1, backgrounds="plain")
        return cls(b.images, b.landmarks68, b.label)


# -- callbacks: state in, state out -------------------------------------------------------------
def select_face(state: HeatmapState, source: FaceSource, index: int) -> HeatmapState:
    """Pick face ``index``; its AUs become its label's codebook entry."""
    face = source.face(index)
    return replace(state, index=int(index), aus=_base_aus(face.label))


def toggle_au(state: HeatmapState, au: str, on: bool) -> HeatmapState:
    """Switch one AU on or off (order kept as in :data:`AU_NAMES`)."""
    name = codebook_aus((au,))[0][:4]
    active = set(state.aus)
    active.add(name) if on else active.discard(name)
    return replace(state, aus=tuple(a for a in AU_NAMES if a in active))


def set_blur(state: HeatmapState, blur: int) -> HeatmapState:
    blur = int(blur)
    if blur < 1 or blur % 2 == 0:
        raise ValueError(f"blur must be an odd width >= 1 (1 = none), got {blur}")
    return replace(state, blur=blur)


def set_ellipse_scale(state: HeatmapState, scale: float) -> HeatmapState:
    scale = float(scale)
    if not 0.05 <= scale <= 10:
        raise ValueError(f"ellipse scale must be in [0.05, 10], got {scale}")
    return replace(state, ellipse_scale=scale)


def heatmap_for(face: Face, state: HeatmapState, size: int = DISPLAY) -> np.ndarray:
    """(size, size) float32 in [0, 1]: the AU heatmap of ``face`` for ``state`` (zeros without AUs)."""
    if not state.aus:
        return np.zeros((size, size), np.float32)
    from ..faces import au_heatmap

    return au_heatmap(face.landmarks68, tuple(state.aus), size, image_size=face.image.shape[:2],
                      ellipse_scale=state.ellipse_scale, blur=state.blur)


def _resize_rgb(image: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(np.asarray(image, np.uint8)).convert("RGB").resize((size, size), Image.BILINEAR))


def overlay_png(image: np.ndarray, heat: np.ndarray | None, landmarks68: np.ndarray | None = None, *,
                alpha: float = 0.5, size: int = DISPLAY, title: str | None = None) -> bytes:
    """PNG bytes: ``image`` at ``size`` px, ``heat`` (any size, [0, 1]) as a jet overlay, landmarks as dots."""
    import matplotlib
    from PIL import Image, ImageDraw

    base = _resize_rgb(image, size).astype(np.float32) / 255.0
    if heat is not None:
        h = np.asarray(heat, np.float32)
        if h.shape != (size, size):
            h = np.asarray(Image.fromarray(h).resize((size, size), Image.BILINEAR))
        rgb = matplotlib.colormaps["jet"](np.clip(h, 0, 1))[..., :3]
        a = alpha * np.clip(h, 0, 1)[..., None] ** 0.5     # keep the face visible where the map is low
        base = base * (1 - a) + rgb * a
    img = Image.fromarray(np.clip(base * 255 + 0.5, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    if landmarks68 is not None:
        k = size / float(image.shape[1])
        for x, y in (np.asarray(landmarks68) + 0.5) * k - 0.5:
            draw.ellipse([x - 1.3, y - 1.3, x + 1.3, y + 1.3], fill=(255, 255, 255))
    if title:
        draw.rectangle([0, 0, size, 13], fill=(0, 0, 0))
        draw.text((3, 1), title, fill=(255, 255, 255))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


# -- models ---------------------------------------------------------------------------------------
def load_models(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``models.pt`` from notebook 05 -> ({"unguided": net, "guided": net}, meta)."""
    import torch

    from ..nn.backbones import fer_classifier

    ck = torch.load(path, map_location="cpu", weights_only=False)
    meta = {k: v for k, v in ck.items() if k not in ("unguided", "guided")}
    nets = {}
    for name in ("unguided", "guided"):
        if ck["arch"] == "small":
            net = fer_classifier("small", ck["num_classes"], width=ck["width"])
        else:
            net = fer_classifier(ck["arch"], ck["num_classes"], small_input=ck["small_input"])
        net.load_state_dict(ck[name])
        nets[name] = net.eval()
    return nets, meta


def cam_panels(face: Face, heat_small: np.ndarray, models: Mapping[str, Any], meta: Mapping[str, Any],
               method: str = "cam", size: int = DISPLAY) -> dict[str, dict[str, Any]]:
    """Per model: ``{"png", "cos", "pred"}``: its CAM (for the face's label, else its prediction)
    over the face, and CAM-COS against ``heat_small`` (the heatmap at ``meta['hm_size']``; None
    when the heatmap is empty)."""
    import torch

    from ..nn import cams

    s = int(meta["size"])
    x = torch.from_numpy(_resize_rgb(face.image, s).copy()).float()[None].permute(0, 3, 1, 2) / 255.0
    x = (x - torch.tensor(meta["mean"]).view(1, 3, 1, 1)) / torch.tensor(meta["std"]).view(1, 3, 1, 1)
    classes = meta.get("classes", list(BASIC7))
    out = {}
    for name, net in models.items():
        cls = None if face.label < 0 or face.label >= len(classes) else torch.tensor([face.label])
        maps, logits = cams.explain(net, x, method, classes=cls)
        m = cams.normalize_maps(cams.resize_maps(maps.float(), int(meta["hm_size"])))[0].numpy()
        cos = None
        if heat_small is not None and float(np.max(heat_small)) > 0:
            cos = float((m * heat_small).sum() / (np.linalg.norm(m) * np.linalg.norm(heat_small) + 1e-8))
        pred = classes[int(logits.argmax(1))]
        title = f"{name}: CAM-COS {cos:.2f}" if cos is not None else f"{name} (no AU map)"
        out[name] = {"png": overlay_png(face.image, m, None, size=size, title=title), "cos": cos, "pred": pred}
    return out


def render(face: Face, state: HeatmapState, models: Mapping[str, Any] | None = None,
           meta: Mapping[str, Any] | None = None, size: int = DISPLAY) -> dict[str, Any]:
    """Everything the widget shows for ``state``: the heatmap PNG, the CAM panels, a status line."""
    heat = heatmap_for(face, state, size)
    label = EXPRESSIONS[face.label] if 0 <= face.label < len(EXPRESSIONS) else "unknown label"
    aus = ", ".join(state.aus) or "none"
    out = {"heatmap": heat, "heatmap_png": overlay_png(face.image, heat, face.landmarks68, size=size,
                                                        title=f"{label}: {aus}"), "cams": {}}
    text = f"face {state.index} ({label}); AUs: {aus}; blur {state.blur}; ellipse x{state.ellipse_scale:.2f}"
    if not face.landmarks_found:
        text += "; no landmarks found: mean shape"
    if models:
        small = heatmap_for(face, state, int(meta["hm_size"])) if state.aus else None
        out["cams"] = cam_panels(face, small, models, meta, state.method, size)
        text += "; " + "; ".join(f"{k}: pred {v['pred']}, CAM-COS " + ("-" if v["cos"] is None else f"{v['cos']:.3f}")
                                 for k, v in out["cams"].items())
    out["text"] = text
    return out


def face_from_upload(data: bytes, size: int, mean_shape: np.ndarray) -> Face:
    """An uploaded image -> a face at ``size`` px: the first detected face aligned on its 5 points
    (``facelab.faces``), else the whole image resized with the ``mean_shape`` landmarks."""
    from PIL import Image

    from ..faces import align_face, five_from_68, landmarks68, transform_points

    try:
        rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    except Exception as err:  # noqa: BLE001 - say what was expected
        raise ValueError(f"the upload is not an image PIL can read ({err}); expected a JPEG or PNG") from err
    try:
        lms = landmarks68(rgb)
    except Exception:  # noqa: BLE001 - detector trouble means "no landmarks", not a crash
        lms = np.zeros((0, 68, 2))
    if len(lms):
        crop, m = align_face(rgb, five_from_68(lms[0]), size, zoom=0.9)
        return Face(crop, transform_points(lms[0], m).astype(np.float32), -1, True)
    return Face(_resize_rgb(rgb, size), np.asarray(mean_shape, np.float32), -1, False)


# -- the widget -----------------------------------------------------------------------------------
def _widgets():
    import ipywidgets

    return ipywidgets


class AUHeatmapWidget:
    """Controls + panels around :func:`render`. ``.box`` is the ipywidgets container; the object
    itself displays as it in Jupyter."""

    def __init__(self, source: FaceSource, models: Mapping[str, Any] | None = None,
                 meta: Mapping[str, Any] | None = None, size: int = DISPLAY) -> None:
        w = _widgets()
        self.source, self.models, self.meta, self.size = source, dict(models or {}), meta, size
        self.state = select_face(HeatmapState(), source, 0)
        self.face = source.face(0)
        # continuous_update=False: a redraw (heatmap + CAMs of two models) happens on release only
        self.index = w.IntSlider(value=0, min=0, max=len(source) - 1, description="face", continuous_update=False)
        self.upload = w.FileUpload(accept="image/*", multiple=False, description="upload")
        self.checks = {au: w.Checkbox(value=au in self.state.aus, description=au, indent=False,
                                      layout=w.Layout(width="70px")) for au in AU_NAMES}
        self.blur = w.IntSlider(value=3, min=1, max=15, step=2, description="blur", continuous_update=False)
        self.scale = w.FloatSlider(value=1.0, min=0.3, max=2.5, step=0.05, description="ellipse x",
                                   continuous_update=False)
        self.method = w.Dropdown(options=[("CAM", "cam"), ("GradCAM", "gradcam"), ("GradCAM++", "gradcam++"),
                                          ("LayerCAM", "layercam")], value="cam", description="CAM")
        self.heat_img = w.Image(format="png", width=size, height=size)
        self.cam_imgs = {k: w.Image(format="png", width=size, height=size) for k in self.models}
        self.status = w.HTML()
        self.last_error: str | None = None
        self._busy = False
        self.index.observe(self._guarded(self._on_index), names="value")
        self.upload.observe(self._guarded(self._on_upload), names="value")
        for au, cb in self.checks.items():
            cb.observe(self._guarded(lambda ch, au=au: self._apply(toggle_au(self.state, au, ch["new"]))), names="value")
        self.blur.observe(self._guarded(lambda ch: self._apply(set_blur(self.state, ch["new"]))), names="value")
        self.scale.observe(self._guarded(lambda ch: self._apply(set_ellipse_scale(self.state, ch["new"]))),
                           names="value")
        self.method.observe(self._guarded(lambda ch: self._apply(replace(self.state, method=ch["new"]))),
                            names="value")
        panels = [self.heat_img] + list(self.cam_imgs.values())
        note = [] if self.models else [w.HTML("<i>no trained models found: run the notebook to see their CAMs</i>")]
        self.box = w.VBox([w.HBox([self.index, self.upload]),
                           w.GridBox(list(self.checks.values()), layout=w.Layout(grid_template_columns="repeat(8, 75px)")),
                           w.HBox([self.blur, self.scale, self.method]), w.HBox(panels), self.status] + note)
        self.refresh()

    # observers
    def _guarded(self, callback):
        """A callback whose error is shown in the widget's status line (ipywidgets would only
        log it where nobody looks); the previous picture stays."""
        def run(change):
            try:
                callback(change)
                self.last_error = None
            except Exception as err:  # noqa: BLE001 - shown to the user, who can act on it
                import html

                self.last_error = f"{type(err).__name__}: {err}"
                self.status.value = f"<span style='color:#b00020'>{html.escape(self.last_error)}</span>"
        return run

    def _on_index(self, change) -> None:
        self.face = self.source.face(change["new"])
        self._apply(select_face(self.state, self.source, change["new"]))

    def _on_upload(self, change) -> None:
        files = change["new"]
        if not files:
            return
        item = files[0] if isinstance(files, (list, tuple)) else next(iter(files.values()))
        try:
            size = int(self.meta["size"]) if self.meta else self.source.images.shape[1]
            shape = self.source.mean_shape * (size / self.source.images.shape[1])
            self.face = face_from_upload(bytes(item["content"]), size, shape)
        finally:  # handled (or refused): clear it, so the same file can be uploaded again
            self.upload.value = () if isinstance(files, (list, tuple)) else {}
        self._apply(replace(self.state, index=-1))

    def _apply(self, state: HeatmapState) -> None:
        self.state = state
        if self._busy:
            return
        self._busy = True
        try:  # keep the checkboxes in step with the state (a new face brings its own AUs)
            for au, cb in self.checks.items():
                cb.value = au in state.aus
        finally:
            self._busy = False
        self.refresh()

    def refresh(self) -> dict[str, Any]:
        out = render(self.face, self.state, self.models, self.meta, self.size)
        self.heat_img.value = out["heatmap_png"]
        for k, v in out["cams"].items():
            self.cam_imgs[k].value = v["png"]
        self.status.value = out["text"]
        self.last = out
        return out

    def _repr_mimebundle_(self, **kw):
        return self.box._repr_mimebundle_(**kw)

    @classmethod
    def from_run(cls, run_dir: str | Path, size: int = DISPLAY) -> "AUHeatmapWidget":
        """From notebook 05's ``run_dir``: its saved faces and models when present; else
        synthetic faces and no CAM panels."""
        run_dir = Path(run_dir)
        samples, ckpt = run_dir / "widget_samples.npz", run_dir / "models.pt"
        source = FaceSource.from_npz(samples) if samples.exists() else FaceSource.synthetic()
        models, meta = load_models(ckpt) if ckpt.exists() else (None, None)
        return cls(source, models, meta, size)
