"""One plotting helper: figures are saved under ``figures/<notebook>/`` and shown inline."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .cache import atomic_write


def pyplot():
    """``matplotlib.pyplot``, with a file backend where nothing can show a window (scripts,
    tests, CI) and Jupyter's inline backend inside a notebook. Notebooks call
    ``plt = viz.pyplot()`` instead of importing pyplot themselves."""
    import matplotlib

    if not os.environ.get("DISPLAY") and "ipykernel" not in os.environ.get("MPLBACKEND", "") \
            and matplotlib.get_backend().lower() not in ("module://matplotlib_inline.backend_inline",):
        # Headless scripts and tests: a file backend. Inside Jupyter the inline backend stays.
        try:
            get_ipython  # type: ignore[name-defined]  # noqa: F821
        except NameError:
            matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def savefig(fig, out_dir: str | os.PathLike, name: str, *, show: bool = True, dpi: int = 110) -> None:
    """Save ``fig`` as ``out_dir/name.png`` atomically (temp file, then rename); show it inline.

    Returns nothing, so a cell ending with it shows the figure and no path (the path is
    ``out_dir/name.png``)."""
    path = Path(out_dir) / (name if name.endswith(".png") else name + ".png")
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi, bbox_inches="tight"), suffix=".png")
    plt = pyplot()
    if show and plt.get_backend().lower().endswith("inline"):
        plt.show()
    else:
        plt.close(fig)


def to_display(img) -> np.ndarray:
    """A torch/np image in CHW or HWC, float or uint8, grey or RGB -> HWC float in [0,1] (or HW)."""
    try:
        import torch

        if isinstance(img, torch.Tensor):
            img = img.detach().float().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    a = a.astype(np.float32)
    if a.max(initial=0) > 1.5:
        a = a / 255.0
    elif a.min(initial=0) < -0.01:  # [-1, 1] normalised
        a = (a + 1) / 2
    return np.clip(a, 0, 1)


def image_grid(images: Sequence, titles: Sequence[str] | None = None, ncols: int = 8,
               size: float = 1.4, cmap: str = "gray", overlays: Sequence | None = None,
               overlay_alpha: float = 0.45, suptitle: str | None = None):
    """A grid of images with optional titles and heatmap overlays; returns the figure."""
    plt = pyplot()
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols)) if n else 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.3 if suptitle else 0)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        im = to_display(images[i])
        ax.imshow(im, cmap=cmap if im.ndim == 2 else None, vmin=0, vmax=1)
        if overlays is not None and overlays[i] is not None:
            ov = to_display(overlays[i])
            ax.imshow(ov, cmap="jet", alpha=overlay_alpha, extent=(-0.5, im.shape[1] - 0.5, im.shape[0] - 0.5, -0.5))
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=7)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    return fig


def curves(history: dict[str, Sequence[float]], title: str = "", xlabel: str = "step"):
    """Line plot of named series (e.g. a training history); returns the figure."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3))
    for name, ys in history.items():
        ax.plot(np.arange(1, len(ys) + 1), ys, label=name)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
