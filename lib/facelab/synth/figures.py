"""Contact sheets: a grid of rendered faces per expression, and a helper saving them all."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import EXPRESSIONS, repo_root
from . import expressions as E
from .generators import faces


def contact_sheet(expression: str = "happy", n: int = 16, size: int = 96, seed: int = 0, cols: int = 8,
                  landmarks: bool = False, **kw):
    """A matplotlib figure of ``n`` random faces showing ``expression`` (titles: AU summary)."""
    import matplotlib.pyplot as plt

    b = faces(n, size, [expression], seed=seed, **kw)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.4, rows * 1.55), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(b.images[i])
        if landmarks:
            lm = b.landmarks68[i]
            ax.scatter(lm[:, 0], lm[:, 1], s=1, c=np.where(b.visibility68[i], "lime", "red"))
        top = np.argsort(-b.aus[i])[:2]
        ax.set_title(" ".join(f"{E.AU_NAMES[j][2:]}:{b.aus[i, j]:.1f}" for j in top if b.aus[i, j] > 0.3),
                     fontsize=6)
    fig.suptitle(f"facelab.synth: {expression.replace('_', ' ')} ({size}px, seed {seed})", fontsize=9)
    fig.tight_layout()
    return fig


def save_contact_sheets(out_dir: str | Path | None = None, expressions=None, n: int = 16, size: int = 96,
                        seed: int = 0) -> list[Path]:
    """Write ``<out_dir>/<expression>.png`` (default figures/synth/) for each expression."""
    import matplotlib.pyplot as plt

    out = Path(out_dir) if out_dir else repo_root() / "figures" / "synth"
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for e in expressions or EXPRESSIONS:
        fig = contact_sheet(e, n=n, size=size, seed=seed)
        p = out / f"{e}.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)
    return paths


if __name__ == "__main__":  # python -m facelab.synth.figures
    for p in save_contact_sheets(expressions=list(EXPRESSIONS) + ["happily_surprised", "sadly_angry",
                                                                  "fearfully_surprised", "angrily_disgusted"]):
        print(p)
